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

The API's account gets nothing in the home: it joins the officers' group to reach the socket,
is registered with the `api` role (the front end's operations only), and gets its bearer
token file (made once, 0600, its own).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kinko.ca.errors import ConfigError, InputError
from kinko.ca.home import Home
from kinko.ca.locations import kinko_command
from kinko.ca.officers import API_ROLE, add_officer

_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class Accounts:
    """Who is who: the service (owns the home), the officers' group (may use the socket), the
    responder (reads what it serves) and the API (the front end's operations, through the socket)."""

    service: str = "kinko"
    officers_group: str = "kinko-officers"
    responder: str = "kinko-ocsp"
    api: str = "kinko-api"


@dataclass(frozen=True)
class Setup:
    """What `service setup` made: the accounts, the home's owner, the socket's directory and the units."""

    account: str
    officers_group: str
    responder_account: str
    api_account: str
    home: str
    socket_dir: str
    passphrase_file: str | None
    api_token_file: str
    unit: str
    responder_unit: str
    api_unit: str


def set_up(home: Home, accounts: Accounts, socket_dir: Path, api_token: Path, actor: str, now: str) -> Setup:
    """Creates what is missing, fixes ownership and modes; returns what was set up and the units."""
    if os.geteuid() != 0:
        raise ConfigError("`kinko service setup` creates accounts and changes owners: run it as root")
    home.require()
    home.store.change_token()  # a home this Kinko cannot serve (e.g. an older schema) is refused first
    a = accounts
    if not _NAME.match(a.service):
        raise InputError("account name {name!r} is not a valid system name", name=a.service)
    if not _NAME.match(a.officers_group):
        raise InputError("officers' group name {name!r} is not a valid system name", name=a.officers_group)
    if not _NAME.match(a.responder):
        raise InputError("responder account name {name!r} is not a valid system name", name=a.responder)
    if not _NAME.match(a.api):
        raise InputError("API account name {name!r} is not a valid system name", name=a.api)
    if len({a.service, a.responder, a.api}) != 3:
        raise InputError("the service, the responder and the API each need an account of their own")
    role = home.store.officer_role(a.api)
    if role not in (None, API_ROLE):
        raise InputError("{login} is an officer ({role}): the API needs an account of its own", login=a.api, role=role)
    # Everything that can be refused is refused before anything is created or changed.
    if _exists(pwd.getpwnam, a.responder):
        _require_private_group(pwd.getpwnam(a.responder))
    if api_token.is_symlink() or (api_token.exists() and not api_token.is_file()):
        raise InputError("--api-token-file {path} must be a regular file (a symlink is not followed)", path=api_token)
    if not _exists(grp.getgrnam, a.officers_group):
        _run(["groupadd", "--system", a.officers_group])
    for login in (a.service, a.responder, a.api):
        if not _exists(pwd.getpwnam, login):
            _run(_useradd(login, home.path))
    _run(["usermod", "--append", "--groups", a.officers_group, a.api])  # the API reaches the socket
    if role is None:
        add_officer(home, a.api, API_ROLE, actor, now)  # in the ledger: officer.added, role api
    entry, officers, reader = pwd.getpwnam(a.service), grp.getgrnam(a.officers_group), pwd.getpwnam(a.responder)
    shared = _responder_files(home)
    for path in [home.path, *home.path.rglob("*")]:
        os.chown(path, entry.pw_uid, reader.pw_gid, follow_symlinks=False)
        if not path.is_symlink():
            path.chmod(_mode(home, path, shared))
    passphrase = home.config.ca.passphrase_file or None
    # The database's libpq password file, like the passphrase: the service account's alone.
    for secret in (passphrase, home.database_password_file):
        if secret:
            os.chown(secret, entry.pw_uid, entry.pw_gid)
            Path(secret).chmod(0o600)
    socket_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
    os.chown(socket_dir, entry.pw_uid, officers.gr_gid)
    socket_dir.chmod(0o2750)
    _api_token(api_token, pwd.getpwnam(a.api))
    values = {
        "@HOME@": str(home.path),
        "@ACCOUNT@": a.service,
        "@GROUP@": a.officers_group,
        "@SOCKET@": str(socket_dir / "kinko.sock"),
        "@TOKEN@": str(api_token),
    }
    return Setup(
        a.service,
        a.officers_group,
        a.responder,
        a.api,
        str(home.path),
        str(socket_dir),
        passphrase,
        str(api_token),
        unit("kinko-service.service", values),
        unit("kinko-ocsp.service", {**values, "@ACCOUNT@": a.responder}),
        unit("kinko-api.service", {**values, "@ACCOUNT@": a.api}),
    )


def _require_private_group(reader: pwd.struct_passwd) -> None:
    """The home's group is the responder's own: anyone else in it would read the database and the
    OCSP signers' keys."""
    group = grp.getgrgid(reader.pw_gid)
    others = sorted(
        {m for m in group.gr_mem if m != reader.pw_name}
        | {u.pw_name for u in pwd.getpwall() if u.pw_gid == reader.pw_gid and u.pw_name != reader.pw_name}
    )
    if others:
        raise InputError(
            "the responder's group {group} also holds {logins}, who would read the database: "
            "give the responder an account with a group of its own",
            group=group.gr_name,
            logins=", ".join(others),
        )


def _api_token(path: Path, owner: pwd.struct_passwd) -> None:
    """The API's bearer token, made once (never printed): 0600, the API account's; the front end
    is given a copy by root."""
    import secrets

    from kinko.ca.files import make_dir, write_new

    if not path.exists():
        if not path.parent.exists():
            make_dir(path.parent, 0o755)
        write_new(path, (secrets.token_urlsafe(32) + "\n").encode(), 0o600)
    os.chown(path, owner.pw_uid, owner.pw_gid, follow_symlinks=False)
    path.chmod(0o600)  # not a symlink: set_up refused one


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
    for placeholder, value in {**values, "@KINKO@": kinko_command()}.items():
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
        raise ConfigError("{command} failed: {reason}", command=argv[0], reason=result.stderr.strip())
