"""Files Kinko writes and secrets it reads: explicit modes whatever the umask, never following a
planted symlink, and secret files refused when others may read them (as ssh refuses keys)."""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from kinko.ca.errors import ConfigError

_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class FileContents:
    """A file the caller read for an operation: its name (for messages only) and its bytes. Through
    the CA service it travels as data: the service never opens a path a caller names."""

    name: str
    data: bytes


def write_new(path: Path, data: bytes, mode: int) -> None:
    """Creates a file that must not exist yet (a symlink there is refused, not followed), with `mode`."""
    fd = os.open(path, _NEW, mode)
    try:
        # On the descriptor, not the path: the umask narrowed the mode at creation, and a chmod
        # by name would follow whatever a local user put there meanwhile.
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replaces a file so that a reader sees the old or the new bytes, never half."""
    # A random name created O_EXCL|O_NOFOLLOW: a symlink planted under a predictable name
    # (".name.PID.tmp") once made root's `crl publish` overwrite a root-only file.
    import secrets  # here: `kinko` commands that write no files start without it

    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    write_new(temporary, data, mode)
    try:
        temporary.replace(path)  # rename(2) replaces a symlink at `path`; it never follows it
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    sync_directory(path.parent)


def sync_directory(path: Path) -> None:
    """Makes a rename in a directory durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dir(path: Path, mode: int) -> None:
    """Creates a directory (and its missing parents, 0755) with exactly `mode`, or sets the mode of an existing one."""
    if not path.parent.exists():
        make_dir(path.parent, 0o755)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def check_private(path: Path, what: str) -> None:
    """Refuses a secret file that is not a regular file or that group or others may read or write."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError("{what} file {path} does not exist", what=what, path=path) from None
    except OSError as exc:
        raise ConfigError(
            "{what} file {path} cannot be read: {reason}", what=what, path=path, reason=exc.strerror
        ) from None
    _check_mode(info, path, what)


def read_secret(path: Path, what: str, limit: int) -> bytes:
    """Reads at most `limit` + 1 bytes of a private regular file (a FIFO, a device or a file others
    can read is refused); the caller decides what an over-long content means."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below anyway.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError("{what} file {path} does not exist", what=what, path=path) from None
    except OSError as exc:
        raise ConfigError(
            "{what} file {path} cannot be read: {reason}", what=what, path=path, reason=exc.strerror
        ) from None
    try:
        _check_mode(os.fstat(fd), path, what)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except IsADirectoryError:
        raise ConfigError("{what} file {path} is a directory", what=what, path=path) from None
    finally:
        os.close(fd)


def _check_mode(info: os.stat_result, path: Path, what: str) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(
            "{what} file {path} is not a regular file (a FIFO, device or directory is refused)", what=what, path=path
        )
    if info.st_mode & 0o077:
        raise ConfigError(
            "{what} file {path} is mode {mode}: group and others may read it; chmod 600 {path}",
            what=what,
            path=path,
            mode=format(stat.S_IMODE(info.st_mode), "04o"),
        )
