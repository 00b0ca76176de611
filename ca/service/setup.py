"""`kinko service setup`: hands a CA home to its service account and prepares the socket's directory.

Run as root once: the account and the officers' group are created when missing (system
accounts, no login shell), the home is chowned to the account and closed (0700, files 0600),
the passphrase file follows it, and the socket's directory admits the officers' group only
(2750: new files there keep that group). Running it again changes nothing that is already right.
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
    home: str
    socket_dir: str
    passphrase_file: str | None
    unit: str


def set_up(home: Home, account: str, group: str, socket_dir: Path) -> Setup:
    """Creates what is missing, fixes ownership and modes; returns what was set up and the unit."""
    if os.geteuid() != 0:
        raise ConfigError("`kinko service setup` creates accounts and changes owners: run it as root")
    home.require()
    home.store.change_token()  # a home this Kinko cannot serve (e.g. an older schema) is refused first
    for name, what in ((account, "account"), (group, "officers' group")):
        if not _NAME.match(name):
            raise InputError(f"{what} name {name!r} is not a valid system name")
    if not _exists(grp.getgrnam, group):
        _run(["groupadd", "--system", group])
    if not _exists(pwd.getpwnam, account):
        _run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                str(home.path),
                "--shell",
                "/usr/sbin/nologin",
                account,
            ]
        )
    entry, officers = pwd.getpwnam(account), grp.getgrnam(group)
    for path in [home.path, *home.path.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
        if path.is_symlink():
            continue
        # Nothing in the home is for anyone but the service: directories 0700, files 0600.
        path.chmod(0o700 if path.is_dir() else 0o600)
    passphrase = home.config.ca.passphrase_file or None
    if passphrase:
        os.chown(passphrase, entry.pw_uid, entry.pw_gid)
        Path(passphrase).chmod(0o600)
    socket_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
    os.chown(socket_dir, entry.pw_uid, officers.gr_gid)
    socket_dir.chmod(0o2750)
    unit_text = unit(home.path, account, group, socket_dir / "kinko.sock")
    return Setup(account, group, str(home.path), str(socket_dir), passphrase, unit_text)


def unit(home: Path, account: str, group: str, socket: Path) -> str:
    """The CA service's systemd unit for this home."""
    from importlib import resources

    template = resources.files("kinko.config").joinpath("systemd", "kinko-service.service").read_text("utf-8")
    kinko = shutil.which("kinko") or f"{sys.executable} -m kinko.cli"
    values = {"@HOME@": str(home), "@ACCOUNT@": account, "@GROUP@": group, "@KINKO@": kinko, "@SOCKET@": str(socket)}
    for placeholder, value in values.items():
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
