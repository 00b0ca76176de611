"""Who may run what: every command of `kinko` against every role, and real OS accounts.

The matrix runs in-process with an injected identity (CliRunner obj={"clock", "actor"}) on a
fresh copy of one prepared home per case. A refusal must exit 1 with one line naming the
role needed, and change nothing but one `command.refused` event (and its checkpoint).
The last test creates two OS accounts and runs real processes as them with runuser: the
operator is the account of the effective uid, whatever $USER says.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from kinko import cli
from kinko.ca.audit import verify_database
from kinko.ca.clock import FixedClock, to_text
from kinko.ca.commands.registry import required_roles
from kinko.ca.hierarchy import InitOptions, create_home
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from kinko.ca.officers import allows, current_login
from tests.conftest import ORG, ROOT, make_csr

LOGINS = {"admin": "t_admin", "officer": "t_officer", "auditor": "t_auditor", "unknown": "t_stranger"}
CUSTOMER = "C001"
OS_AUDITOR = "kinko_t_auditor"
OS_STRANGER = "kinko_t_stranger"
START = dt.datetime.now(dt.UTC).replace(microsecond=0)


# ---------------------------------------------------------------- helpers


def invoke(home: Path | None, login: str | None, *args: Any, clock: FixedClock | None = None) -> Any:
    """`kinko [--home HOME] ARGS` in-process as `login` (None: the OS account running the tests)."""
    obj: dict[str, Any] = {"clock": clock or FixedClock(START + dt.timedelta(minutes=1))}
    if login is not None:
        obj["actor"] = login
    prefix = ["--home", str(home)] if home is not None else []
    return CliRunner().invoke(cli.cli, [*prefix, *map(str, args)], obj=obj)


def snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, straight from the SQLite file."""
    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: list(conn.execute(f'SELECT * FROM "{t}" ORDER BY rowid')) for t in tables}  # noqa: S608
    finally:
        conn.close()


def files(directory: Path) -> dict[str, str]:
    """SHA-256 of every file under a directory but the database's own files."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and not p.name.startswith("kinko.db")
    }


def refusal(path: str, needed: str, login: str, role: str | None) -> str:
    if role is None:
        return (
            f"`kinko {path}` needs the {needed} role; {login} is not a registered operator of this CA "
            "(an admin adds accounts with `kinko officer add`)"
        )
    return f"`kinko {path}` needs the {needed} role; {login} is {role}"


def is_role_refusal(text: str) -> bool:
    return " role; " in text or "not a registered operator" in text


# The least role each command needs, as the command registry defines it.
REQUIRED_ROLES = required_roles()


def leaf_commands(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None
        path = f"{prefix} {name}".strip()
        if isinstance(command, click.Group):
            yield from leaf_commands(command, path)
        else:
            yield path, command


# ---------------------------------------------------------------- one prepared home, copied per case


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, test_logins: tuple[str, ...]) -> dict[str, Any]:
    """A home made by t_admin with t_officer and t_auditor registered through `officer add`,
    a valid and a held certificate, a customer whose administrator holds a certificate, an
    unused enrollment code, a CSR, and an API token file (so `api serve` gets as far as serving)."""
    base = tmp_path_factory.mktemp("roles")
    passphrase = base / "pass.txt"
    passphrase.write_text("correct horse battery staple\n", encoding="utf-8")
    passphrase.chmod(0o600)
    token = base / "api-token"
    token.write_text("0123456789abcdef0123456789abcdef\n", encoding="ascii")
    token.chmod(0o600)
    clock = FixedClock(START)
    home = create_home(base / "home", InitOptions(organization=ORG, passphrase_file=passphrase), clock, LOGINS["admin"])
    config = home.config_file.read_text(encoding="utf-8")
    assert 'token_file = ""' in config
    home.config_file.write_text(config.replace('token_file = ""', f'token_file = "{token}"'), encoding="utf-8")
    for role in ("officer", "auditor"):
        result = invoke(home.path, LOGINS["admin"], "officer", "add", LOGINS[role], "--role", role, clock=clock)
        assert result.exit_code == 0, result.output
    kinko = Kinko(home, clock=clock, actor=LOGINS["officer"])
    valid = kinko.issue(make_csr(), name="山田 太郎").record.serial
    held = kinko.issue(make_csr(), name="佐藤 花子").record.serial
    kinko.hold(held)
    kinko.add_customer(CUSTOMER, "株式会社テスト")
    admin_code = kinko.enroll_administrator(CUSTOMER, "管理者 花子", "ADM1").code
    kinko.acquire(admin_code, make_csr())
    unused_code = kinko.enroll_administrator(CUSTOMER, "管理者 次郎", "ADM2").code
    csr = base / "request.csr"
    csr.write_bytes(make_csr())
    profiles = base / "profiles.toml"
    added = '\n[client-7d]\nvalidity = "7d"\nkey_usage = ["digital_signature"]\nextended_key_usage = ["client_auth"]\n'
    profiles.write_text((home.path / "profiles.toml").read_text("utf-8") + added, encoding="utf-8")
    home.store.close()
    home.readonly_store.close()
    conn = sqlite3.connect(home.db_file)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert verify_database(Home(home.path)).ok
    return {
        "home": home.path,
        "valid": valid,
        "held": held,
        "code": unused_code,
        "csr": csr,
        "pass": passphrase,
        "profiles": profiles,
    }


def arguments(path: str, t: dict[str, Any], home: Path, work: Path) -> list[Any]:
    """Plausible arguments for each command (all of them parse, so the role check is reached)."""
    received = to_text(START)
    table: dict[str, list[Any]] = {
        "init": ["--home", work / "new-home", "init", "--org", ORG, "--passphrase-file", t["pass"]],
        "quickstart": ["quickstart", "--dir", work / "demo", "--no-serve"],
        "issue": ["issue", "--csr", t["csr"], "--name", "鈴木 一郎", "--out", work / "issued.pem"],
        "revoke": ["revoke", t["valid"], "--reason", "superseded"],
        "hold": ["hold", t["valid"]],
        "release": ["release", t["held"]],
        "crl publish": ["crl", "publish"],
        "crl show": ["crl", "show"],
        "customer add": ["customer", "add", "C002", "--name", "有限会社みなと商会"],
        "customer list": ["customer", "list"],
        "customer show": ["customer", "show", CUSTOMER],
        "customer suspend": ["customer", "suspend", CUSTOMER],
        "customer resume": ["customer", "resume", CUSTOMER],
        "customer terminate": ["customer", "terminate", CUSTOMER, "--yes"],
        "enroll administrator": ["enroll", "administrator", "--customer", CUSTOMER, "--name", "管理者 三郎"],
        "enroll user": ["enroll", "user", "--customer", CUSTOMER, "--name", "利用者 一郎", "--by", "ADM1"],
        "acquire": ["acquire", "--code", t["code"], "--csr", t["csr"], "--out", work / "acquired.pem"],
        "renew": ["renew", "--serial", t["valid"], "--csr", t["csr"]],
        "reacquire": ["reacquire", "--subscriber", "ADM1", "--csr", t["csr"]],
        "reissue": ["reissue", "--subscriber", "ADM1"],
        "incident report": ["incident", "report", "--subscriber", "ADM1", "--kind", "lost", "--received-at", received],
        "incident list": ["incident", "list"],
        "status": ["status", t["valid"]],
        "report expiring": ["report", "expiring"],
        "report enrollments": ["report", "enrollments"],
        "api serve": ["api", "serve", "--port", "18081"],
        "ocsp serve": ["ocsp", "serve", "--port", "18080"],
        "ocsp refresh": ["ocsp", "refresh"],
        "ocsp signer rotate": ["ocsp", "signer", "rotate"],
        "cert show": ["cert", "show", t["valid"]],
        "cert list": ["cert", "list"],
        "ca show": ["ca", "show"],
        "ca chain": ["ca", "chain", "--out", work / "chain.pem"],
        "officer add": ["officer", "add", "t_new", "--role", "auditor"],
        "officer remove": ["officer", "remove", LOGINS["auditor"]],
        "officer list": ["officer", "list"],
        "enroll locks": ["enroll", "locks"],
        "enroll unlock": ["enroll", "unlock", "api:192.0.2.9"],
        "officer set-role": ["officer", "set-role", LOGINS["auditor"], "--role", "officer"],
        "ledger verify": ["ledger", "verify"],
        "ledger export": ["ledger", "export", "--format", "csv", "--out", work / "ledger.csv"],
        "ledger checkpoint": ["ledger", "checkpoint"],
        "ledger signer rotate": ["ledger", "signer", "rotate"],
        "db upgrade": ["db", "upgrade"],
        "db migrate": ["db", "migrate", "--to", work / "elsewhere.db"],
        "service run": ["service", "run", "--listen", work / "kinko.sock"],
        "service status": ["service", "status"],
        "api status": ["api", "status", t["valid"]],
        "api acquire": ["api", "acquire", "--csr", t["csr"], "--client", "api:192.0.2.1"],
        "api renew": ["api", "renew", "--certificate", t["csr"], "--csr", t["csr"]],
        "api reacquire": ["api", "reacquire", "--subscriber", "ADM1", "--csr", t["csr"], "--signature", t["csr"]],
        "api enroll": ["api", "enroll", "--certificate", t["csr"], "--customer", CUSTOMER, "--name", "利用者 二郎"],
        "config show": ["config", "show"],
        "config apply": ["config", "apply", "--profiles", t["profiles"]],
        # A name refused before anything is created: the matrix must not add accounts to the machine.
        "service setup": ["service", "setup", "--account", "Not A Name", "--socket-dir", work / "run"],
    }
    args = table[path]
    return args if path == "init" else ["--home", home, *args]


# Allowed commands whose plausible arguments still fail for a reason of their own.
EXPECTED_FAILURES = {
    "renew": "renewal opens 30 days before expiry",
    "reacquire": "ADM1's certificate has not expired",
    "customer resume": "the customer is not suspended",
    "service setup": "the account name is refused before anything is created",
    "service status": "there is no service to ask in direct mode",
    "enroll unlock": "that client is not locked out",
    "db migrate": "--to names no PostgreSQL database (test_postgresql_store.py moves a home for real)",
}


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`api serve` and `ocsp serve` reach their server call and return instead of serving."""
    import kinko.ca.http
    import kinko.ca.service.server
    import kinko.ocsp.server

    started: list[str] = []
    monkeypatch.setattr(kinko.ocsp.server, "serve", lambda *a, **k: started.append("ocsp"))
    monkeypatch.setattr(kinko.ca.http, "run_app", lambda *a, **k: started.append("api"))
    monkeypatch.setattr(kinko.ca.service.server, "serve", lambda *a, **k: started.append("service"))
    return started


@pytest.mark.parametrize("identity", ["admin", "officer", "auditor", "unknown"])
@pytest.mark.parametrize("path", sorted(REQUIRED_ROLES))
def test_role_matrix(template: dict[str, Any], tmp_path: Path, servers: list[str], path: str, identity: str) -> None:
    home = tmp_path / "home"
    shutil.copytree(template["home"], home)
    work = tmp_path / "work"
    work.mkdir()
    login = LOGINS[identity]
    role = None if identity == "unknown" else identity
    # `ledger verify` checks its role inside the command (an export verifies offline, with no home).
    needed = {"ledger verify": "auditor", "api serve": "officer"}.get(path, REQUIRED_ROLES[path])
    db = home / "kinko.db"
    before, before_files = snapshot(db), files(home)

    result = invoke(None, login, *arguments(path, template, home, work))

    after = snapshot(db)
    if needed is not None and not allows(role, needed):
        assert result.exit_code == 1, result.output
        assert result.stdout == ""
        assert result.stderr == f"kinko: error: {refusal(path, needed, login, role)}\n"
        for table in after:
            if table not in ("ledger", "checkpoints"):
                assert after[table] == before[table], f"`kinko {path}` refused, yet {table} changed"
        assert after["ledger"][:-1] == before["ledger"]
        seq, _time, actor, action, serial, subscriber, customer, details, _prev, head = after["ledger"][-1]
        assert (seq, actor, action, serial, subscriber, customer) == (
            len(before["ledger"]) + 1,
            login,
            "command.refused",
            "",
            "",
            "",
        )
        assert json.loads(details) == {"command": path, "needs": needed, "role": role}
        assert after["checkpoints"][:-1] == before["checkpoints"]
        assert after["checkpoints"][-1][:2] == (seq, head)
        assert files(home) == before_files
        assert list(work.iterdir()) == []
        assert servers == []
        assert verify_database(Home(home)).ok
    else:
        assert not is_role_refusal(result.output), result.output
        new = after["ledger"][len(before["ledger"]) :]
        assert "command.refused" not in {row[3] for row in new}
        if path in EXPECTED_FAILURES:
            assert result.exit_code == 1, result.output
        else:
            assert result.exit_code == 0, result.output
        if path in ("api serve", "ocsp serve"):
            assert servers == [path.split()[0]]


def test_every_command_has_a_role() -> None:
    commands = dict(leaf_commands(cli.cli))
    assert set(commands) == set(REQUIRED_ROLES)
    for path, command in commands.items():
        assert isinstance(command, cli.RoleCommand), f"`kinko {path}` does not check roles"


@pytest.mark.parametrize(
    ("identity", "message"),
    [
        ("officer", "`kinko crl publish --root` needs the admin role; t_officer is officer"),
        ("auditor", "`kinko crl publish` needs the officer role; t_auditor is auditor"),
        ("unknown", "t_stranger is not a registered operator"),
        ("admin", None),
    ],
)
def test_root_crl_needs_admin(template: dict[str, Any], tmp_path: Path, identity: str, message: str | None) -> None:
    home = tmp_path / "home"
    shutil.copytree(template["home"], home)
    before = snapshot(home / "kinko.db")
    root_crl = (home / "public" / "crl" / "root.crl").read_bytes()
    result = invoke(home, LOGINS[identity], "crl", "publish", "--root")
    after = snapshot(home / "kinko.db")
    if message is None:
        assert result.exit_code == 0, result.output
        assert (home / "public" / "crl" / "root.crl").read_bytes() != root_crl
        assert after["ledger"][-1][3] == "crl.published"
        assert json.loads(after["ledger"][-1][7])["issuer"] == "root"
        return
    assert result.exit_code == 1
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert (home / "public" / "crl" / "root.crl").read_bytes() == root_crl
    assert after["crls"] == before["crls"]
    assert after["ledger"][:-1] == before["ledger"]
    assert after["ledger"][-1][2:4] == (LOGINS[identity], "command.refused")


def test_officer_add_refuses_a_login_with_no_os_account(template: dict[str, Any], tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(template["home"], home)
    before = snapshot(home / "kinko.db")

    result = invoke(home, LOGINS["admin"], "officer", "add", "hanako_nobody", "--role", "auditor")
    assert result.exit_code == 1
    assert result.stderr == (
        "kinko: error: there is no OS account hanako_nobody on this host; create it first (useradd hanako_nobody)\n"
    )
    assert snapshot(home / "kinko.db") == before


def test_last_admin_cannot_be_removed(template: dict[str, Any], tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(template["home"], home)
    admin = LOGINS["admin"]
    before = snapshot(home / "kinko.db")

    result = invoke(home, admin, "officer", "remove", admin)
    assert result.exit_code == 1
    assert result.stderr == f"kinko: error: {admin} is the last admin; add another admin first\n"
    assert snapshot(home / "kinko.db") == before

    assert invoke(home, admin, "officer", "add", "t_admin2", "--role", "admin").exit_code == 0
    result = invoke(home, "t_admin2", "officer", "remove", admin)
    assert result.exit_code == 0, result.output
    officers = {row[0]: row[1] for row in snapshot(home / "kinko.db")["officers"]}
    assert officers == {"t_admin2": "admin", LOGINS["officer"]: "officer", LOGINS["auditor"]: "auditor"}
    result = invoke(home, "t_admin2", "officer", "remove", "t_admin2")
    assert result.exit_code == 1
    assert "t_admin2 is the last admin" in result.stderr
    # The removed admin is a stranger now.
    result = invoke(home, admin, "officer", "list")
    assert result.exit_code == 1
    assert f"{admin} is not a registered operator" in result.stderr
    assert verify_database(Home(home)).ok


# ---------------------------------------------------------------- real OS accounts


@contextlib.contextmanager
def traversable_by_others(paths: list[Path]) -> Iterator[None]:
    """Adds o+x to every ancestor directory of `paths` that lacks it (e.g. /root when the Python
    interpreter lives in /root/.pyenv), and puts the modes back afterwards."""
    changed: list[tuple[Path, int]] = []
    try:
        for path in paths:
            for directory in reversed(path.resolve().parents):
                mode = directory.stat().st_mode
                if not mode & stat.S_IXOTH and all(directory != d for d, _ in changed):
                    directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
                    changed.append((directory, stat.S_IMODE(mode)))
        yield
    finally:
        for directory, mode in reversed(changed):
            directory.chmod(mode)


@pytest.fixture(scope="module")
def os_accounts() -> Iterator[list[str]]:
    """Two throwaway OS accounts, removed afterwards."""
    missing = [tool for tool in ("useradd", "userdel", "runuser") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the real-account test needs {', '.join(missing)} (util-linux, passwd) on PATH")
    if os.geteuid() != 0:
        pytest.fail("the real-account test must run as root: it creates OS accounts with useradd")
    created = []
    try:
        for name in (OS_AUDITOR, OS_STRANGER):
            subprocess.run(["userdel", name], capture_output=True, check=False)  # left by an interrupted run
            result = subprocess.run(
                ["useradd", "--no-create-home", "--shell", "/bin/sh", name], capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                pytest.fail(f"useradd {name} failed: {result.stderr.strip()}")
            created.append(name)
        yield created
    finally:
        for name in created:
            subprocess.run(["userdel", name], capture_output=True, check=False)


def as_account(account: str, home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`kinko ARGS` as a real process of an OS account, started with runuser."""
    settings = [f"{k}={v}" for k, v in {"KINKO_HOME": str(home), "PYTHONPATH": str(ROOT), **(env or {})}.items()]
    return subprocess.run(
        ["runuser", "-u", account, "--", "env", *settings, sys.executable, "-m", "kinko.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
        umask=0,
    )


def test_real_accounts_are_identified_by_their_uid(os_accounts: list[str], passphrase_file: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="kinko-roles-", dir="/tmp"))
    try:
        base.chmod(0o777)
        clock = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
        home = create_home(base / "home", InitOptions(organization=ORG, passphrase_file=passphrase_file), clock, "root")
        assert current_login() == "root"
        result = CliRunner().invoke(
            cli.cli, ["--home", str(home.path), "officer", "add", OS_AUDITOR, "--role", "auditor"], obj={"clock": clock}
        )
        assert result.exit_code == 0, result.output
        serial = Kinko(home, clock=clock).issue(make_csr(), name="山田 太郎").record.serial
        home.store.close()
        home.readonly_store.close()
        subprocess.run(["chmod", "-R", "a+rwX", str(base)], check=True)

        with traversable_by_others([Path(sys.executable), Path(sys.prefix), ROOT]):
            listed = as_account(OS_AUDITOR, home.path, "cert", "list")
            assert listed.returncode == 0, listed.stderr
            assert serial in listed.stdout

            revoked = as_account(OS_AUDITOR, home.path, "revoke", serial, "--reason", "superseded")
            assert revoked.returncode == 1, revoked.stdout
            assert revoked.stderr == f"kinko: error: `kinko revoke` needs the officer role; {OS_AUDITOR} is auditor\n"

            stranger = as_account(OS_STRANGER, home.path, "cert", "list")
            assert stranger.returncode == 1, stranger.stdout
            assert stranger.stderr.startswith(
                f"kinko: error: `kinko cert list` needs the auditor role; {OS_STRANGER} is not a registered operator"
            )
            assert stranger.stdout == ""

            # $USER and $LOGNAME say root (the home's admin): they are ignored.
            posing = as_account(OS_STRANGER, home.path, "cert", "list", env={"USER": "root", "LOGNAME": "root"})
            assert posing.returncode == 1, posing.stdout
            assert f"{OS_STRANGER} is not a registered operator" in posing.stderr
            posing = as_account(OS_AUDITOR, home.path, "revoke", serial, "--reason", "superseded", env={"USER": "root"})
            assert posing.returncode == 1
            assert f"{OS_AUDITOR} is auditor" in posing.stderr

        check = Home(home.path)
        refused = [
            (e.actor, json.loads(e.details)["command"])
            for e in check.store.ledger_events()
            if e.action == "command.refused"
        ]
        assert refused == [
            (OS_AUDITOR, "revoke"),
            (OS_STRANGER, "cert list"),
            (OS_STRANGER, "cert list"),
            (OS_AUDITOR, "revoke"),
        ]
        record = check.store.certificate(serial)
        assert record is not None and record.status == "valid"
        assert verify_database(check).ok
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize(
    ("identity", "message"),
    [
        ("officer", "`kinko revoke (a CA certificate)` needs the admin role; t_officer is officer"),
        ("auditor", "`kinko revoke` needs the officer role; t_auditor is auditor"),
        ("admin", None),
    ],
)
def test_revoking_a_ca_certificate_needs_admin(
    template: dict[str, Any], tmp_path: Path, identity: str, message: str | None
) -> None:
    # Revoking the issuing CA makes Kinko sign the root's ARL, which `crl publish --root` keeps to admins.
    home = tmp_path / "home"
    shutil.copytree(template["home"], home)
    issuing = format(Home(home).ca_certificate("issuing").serial_number, "X")
    before = snapshot(home / "kinko.db")
    public = files(home / "public")
    result = invoke(home, LOGINS[identity], "revoke", issuing, "--reason", "ca-compromise")
    after = snapshot(home / "kinko.db")
    if message is None:
        assert result.exit_code == 0, result.output
        assert any(
            json.loads(row[7]).get("reason") == "ca-compromise" for row in after["ledger"][len(before["ledger"]) :]
        )
        return
    assert result.exit_code == 1
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert files(home / "public") == public
    assert after["certificates"] == before["certificates"] and after["crls"] == before["crls"]
    assert after["ledger"][:-1] == before["ledger"]
    assert after["ledger"][-1][2:4] == (LOGINS[identity], "command.refused")


def test_an_officer_still_revokes_a_subscriber_certificate(template: dict[str, Any], tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(template["home"], home)
    result = invoke(home, LOGINS["officer"], "revoke", template["valid"], "--reason", "superseded")
    assert result.exit_code == 0, result.output


def test_a_role_is_changed_in_place_recorded_and_replayed(template: dict[str, Any], tmp_path: Path) -> None:
    """A role could once be changed only by removing and re-adding the account."""
    home = tmp_path / "home"
    shutil.copytree(template["home"], home)
    admin, auditor = LOGINS["admin"], LOGINS["auditor"]
    result = invoke(home, admin, "officer", "set-role", auditor, "--role", "officer")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{auditor} is now officer (was auditor)"
    changed = [row for row in snapshot(home / "kinko.db")["ledger"] if row[3] == "officer.role-changed"]
    assert len(changed) == 1 and json.loads(changed[0][7]) == {"login": auditor, "role": "officer", "was": "auditor"}
    # The new role is in force (an officer may publish a CRL) and the ledger still verifies.
    assert invoke(home, auditor, "crl", "publish").exit_code == 0
    assert verify_database(Home(home)).ok
    before = snapshot(home / "kinko.db")
    for args, message in [
        ([auditor, "--role", "officer"], f"{auditor} is already officer"),
        (["t_nobody", "--role", "auditor"], "t_nobody is not a registered operator"),
        ([admin, "--role", "auditor"], f"{admin} is the last admin"),
    ]:
        refused = invoke(home, admin, "officer", "set-role", *args)
        assert refused.exit_code == 1 and message in refused.stderr, refused.output
    assert snapshot(home / "kinko.db")["officers"] == before["officers"]
