"""`kinko service setup`: hands a CA home to its service account and prepares the socket's directory.

Run as root once: the accounts and the officers' group are created when missing (system
accounts, no login shell), the home is chowned to the service account, the passphrase file
follows it, and the socket's directory admits the officers' group only (2750: new files there
keep that group). Running it again changes nothing that is already right.

The OCSP responder's account gets read access to what it serves and nothing else, through its
group on the home: the directories it passes are 2710 (it can enter, not list; new files
inherit the group), the database and its WAL files, the configuration and public/ are 0640 and
the OCSP signers' keys 0640; the CA keys, the audit key, the lock files and the passphrase stay
0600, the service account's alone. SQLite gives the WAL files the database's mode, and a
read-only connection works as long as they exist (the responder's own connection keeps them).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kinko.ca.errors import ConfigError, InputError
from kinko.ca.home import Home

_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class Setup:
    """What `service setup` made: the accounts, the home's owner, the socket's directory and the unit."""

    account: str
    officers_group: str
    responder_account: str
    home: str
    socket_dir: str
    passphrase_file: str | None
    unit: str
    responder_unit: str


def set_up(home: Home, account: str, group: str, socket_dir: Path, responder: str = "kinko-ocsp") -> Setup:
    """Creates what is missing, fixes ownership and modes; returns what was set up and the units."""
    if os.geteuid() != 0:
        raise ConfigError("`kinko service setup` creates accounts and changes owners: run it as root")
    home.require()
    home.store.change_token()  # a home this Kinko cannot serve (e.g. an older schema) is refused first
    for name, what in ((account, "account"), (group, "officers' group"), (responder, "responder account")):
        if not _NAME.match(name):
            raise InputError(f"{what} name {name!r} is not a valid system name")
    if responder == account:
        raise InputError("the responder needs an account of its own, not the service's")
    if not _exists(grp.getgrnam, group):
        _run(["groupadd", "--system", group])
    for login in (account, responder):
        if not _exists(pwd.getpwnam, login):
            _run(_useradd(login, home.path))
    entry, officers, reader = pwd.getpwnam(account), grp.getgrnam(group), pwd.getpwnam(responder)
    shared = _responder_files(home)
    for path in [home.path, *home.path.rglob("*")]:
        os.chown(path, entry.pw_uid, reader.pw_gid, follow_symlinks=False)
        if not path.is_symlink():
            path.chmod(_mode(home, path, shared))
    passphrase = home.config.ca.passphrase_file or None
    if passphrase:
        os.chown(passphrase, entry.pw_uid, entry.pw_gid)
        Path(passphrase).chmod(0o600)
    socket_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
    os.chown(socket_dir, entry.pw_uid, officers.gr_gid)
    socket_dir.chmod(0o2750)
    values = {
        "@HOME@": str(home.path),
        "@ACCOUNT@": account,
        "@GROUP@": group,
        "@SOCKET@": str(socket_dir / "kinko.sock"),
    }
    return Setup(
        account,
        group,
        responder,
        str(home.path),
        str(socket_dir),
        passphrase,
        unit("kinko-service.service", values),
        unit("kinko-ocsp.service", {**values, "@ACCOUNT@": responder}),
    )


def _useradd(login: str, home: Path) -> list[str]:
    return [
        "useradd",
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        str(home),
        "--shell",
        "/usr/sbin/nologin",
        login,
    ]


def _responder_files(home: Home) -> set[Path]:
    """What the responder reads: the database and its WAL files, the configuration, public/ and
    the OCSP signers' current keys."""
    files = {home.db_file, home.path / "kinko.db-wal", home.path / "kinko.db-shm", home.config_file}
    files.add(home.path / "profiles.toml")
    for role in ("ocsp:issuing", "ocsp:root"):
        found = home.store.authority(role)
        if found is not None:
            files.add(home.keys_dir / found[1])
    return files


def _mode(home: Home, path: Path, shared: set[Path]) -> int:
    """The mode of a path in a service home: readable by the responder's group only where it must be."""
    public = path == home.public_dir or home.public_dir in path.parents
    if path.is_dir():
        # Entered by the responder, listed only in public/; setgid: what the service creates keeps the group.
        return 0o2750 if public else 0o2710
    return 0o640 if public or path in shared else 0o600


def unit(name: str, values: dict[str, str]) -> str:
    """A systemd unit from config/systemd/ for this home and its accounts."""
    from importlib import resources

    template = resources.files("kinko.config").joinpath("systemd", name).read_text("utf-8")
    kinko = shutil.which("kinko") or f"{sys.executable} -m kinko.cli"
    for placeholder, value in {**values, "@KINKO@": kinko}.items():
        template = template.replace(placeholder, value)
    return template


def _exists(lookup: Callable[[str], object], name: str) -> bool:
    try:
        lookup(name)
    except KeyError:
        return False
    return True


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ConfigError(f"{argv[0]} failed: {result.stderr.strip()}")
