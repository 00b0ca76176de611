"""Files an operation writes where its caller asked (a ledger export and its companions), opened by
the caller: through the CA service they travel as descriptors, so that the service never opens a
path a caller names, and every file is written with the caller's own rights.

Each destination gets a temporary file beside it (a random name, O_EXCL, never a symlink); the
operation writes into those; on success each file it produced is renamed over its destination, and
each it did not produce is removed there (a stale companion must not vouch for a new export).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from kinko.ca.errors import InputError
from kinko.ca.files import sync_directory

_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Destination:
    """Where one output goes, and the mode it gets there."""

    path: Path
    mode: int


class OutputFile:
    """One output as the operation sees it: a descriptor to write to, and whether it was produced."""

    def __init__(self, fd: int, name: str) -> None:
        self.fd, self.name = fd, name
        self.produced = False

    def write(self, data: bytes) -> None:
        """Writes all of `data` (marks the file produced, even for no bytes)."""
        self.produced = True
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def finish(self) -> None:
        """Makes what was written durable."""
        os.fsync(self.fd)


def received(fds: list[int], names: list[str]) -> list[OutputFile]:
    """The outputs a caller sent as descriptors: each must be a regular file open for writing."""
    if len(fds) != len(names):
        raise InputError("{named} output files were named, {count} descriptors came", named=len(names), count=len(fds))
    for fd, name in zip(fds, names, strict=True):
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError("the descriptor for {name} is not a regular file", name=name)
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE not in (os.O_WRONLY, os.O_RDWR):
            raise InputError("the descriptor for {name} is not open for writing", name=name)
    return [OutputFile(fd, name) for fd, name in zip(fds, names, strict=True)]


class Outputs:
    """Temporary files beside each destination, held until the operation's outcome is known."""

    def __init__(self, destinations: list[Destination]) -> None:
        self.destinations = destinations
        self.temporaries: list[Path] = []
        self.files: list[OutputFile] = []
        try:
            for destination in destinations:
                temporary = destination.path.with_name(f".{destination.path.name}.{secrets.token_hex(8)}.part")
                try:
                    fd = os.open(temporary, _NEW, 0o600)
                except OSError as exc:
                    raise InputError(
                        "cannot write {path}: {reason}", path=destination.path, reason=exc.strerror
                    ) from None
                self.temporaries.append(temporary)
                os.fchmod(fd, 0o600)  # private until renamed: an export holds the holders' names
                self.files.append(OutputFile(fd, destination.path.name))
        except BaseException:
            self.abort()
            raise

    def fds(self) -> list[int]:
        """The descriptors, in the order of the destinations."""
        return [f.fd for f in self.files]

    def commit(self, produced: list[bool]) -> None:
        """Puts each produced file in place with its mode; removes each destination not produced."""
        for file, temporary, destination, made in zip(
            self.files, self.temporaries, self.destinations, produced, strict=True
        ):
            if made:
                os.fchmod(file.fd, destination.mode)
                os.fsync(file.fd)
                temporary.replace(destination.path)  # rename(2): a symlink there is replaced, not followed
            else:
                temporary.unlink(missing_ok=True)
                destination.path.unlink(missing_ok=True)
        for directory in {d.path.parent for d in self.destinations}:
            sync_directory(directory)
        self._close()

    def abort(self) -> None:
        """Removes the temporary files; the destinations are left as they were."""
        for temporary in self.temporaries:
            temporary.unlink(missing_ok=True)
        self._close()

    def _close(self) -> None:
        for file in self.files:
            with contextlib.suppress(OSError):  # already closed by whoever sent it
                os.close(file.fd)
        self.files = []
