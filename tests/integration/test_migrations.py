"""Schema versions: a version-1 home made by the wave-1 code is refused until `kinko db upgrade`,
which migrates it in one sealed transaction; a newer database is refused by every command; a
fresh database and an upgraded one have the same schema; a failed migration changes nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import sqlite3
import tarfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kinko import cli
from kinko.ca.clock import FixedClock
from kinko.ca.commands.registry import required_roles
from kinko.ca.errors import SchemaVersionError
from kinko.ca.store import SCHEMA_VERSION, create_store
from kinko.ocsp.source import DatabaseSource
from tests.conftest import ROOT, make_csr, run_kinko
from tests.integration.test_roles import arguments

FIXTURE = ROOT / "tests" / "fixtures" / "home-v1.tar.gz"
# Every migration a version-1 database gets, in order.
MIGRATIONS = ["0002_change_counter", "0003_ledger_by_serial", "0004_subscriber_email"]
HELD = "06AAC494162BDE23321D0812B29BC13B"  # put on hold by make_home_v1.py
VALID = "8B49B9C1C73E7526F350B578B64BAEA8"
ADMIN = "root"  # the account that made the fixture, its admin
# Commands that never open an existing home's database.
WITHOUT_DATABASE = {"init", "quickstart"}


@pytest.fixture
def clock() -> FixedClock:
    """A few minutes after the fixture was made: its certificates are valid."""
    return FixedClock(dt.datetime(2026, 12, 1, 0, 10, tzinfo=dt.UTC))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The version-1 home, extracted; its passphrase comes from KINKO_PASSPHRASE_FILE."""
    with tarfile.open(FIXTURE) as archive:
        archive.extractall(tmp_path, filter="data")
    monkeypatch.setenv("KINKO_PASSPHRASE_FILE", str(tmp_path / "pass.txt"))
    return tmp_path / "home"


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records a server start instead of serving (none may start on a refused database)."""
    import kinko.ocsp.server

    started: list[str] = []
    monkeypatch.setattr(kinko.ocsp.server, "run_app", lambda *a, **k: started.append("run_app"))
    return started


def kinko(home: Path, clock: FixedClock, *args: Any) -> Any:
    """`kinko --home HOME ARGS` in-process, as the fixture's admin, at the injected time."""
    return CliRunner().invoke(cli.cli, ["--home", str(home), *map(str, args)], obj={"clock": clock, "actor": ADMIN})


def snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table and every schema object, straight from the SQLite file."""
    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        rows = {t: list(conn.execute(f'SELECT * FROM "{t}" ORDER BY rowid')) for t in tables}  # noqa: S608
        rows["sqlite_master"] = list(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"))
        return rows
    finally:
        conn.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def schema(db: Path) -> list[tuple[str, str, str, str | None]]:
    """sqlite_master with whitespace collapsed: what a table-altering migration may format differently."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
        return [(t, n, tb, re.sub(r"\s+", " ", sql).strip() if sql else None) for t, n, tb, sql in rows]
    finally:
        conn.close()


def schema_version(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
    finally:
        conn.close()


def every_command(home: Path, work: Path) -> dict[str, list[Any]]:
    """Parseable arguments for every command that opens the home's database (test_roles' table)."""
    csr = work / "request.csr"
    csr.write_bytes(make_csr())
    profiles = work / "profiles.toml"
    profiles.write_text((home / "profiles.toml").read_text("utf-8") + '\n[client-7d]\nvalidity = "7d"\n', "utf-8")
    template = {
        "valid": VALID,
        "held": HELD,
        "code": "ABCD-EFGH-IJKL",
        "csr": csr,
        "pass": work / "none.txt",
        "profiles": profiles,
    }
    return {
        path: arguments(path, template, home, work)[2:]  # without the --home prefix
        for path in sorted(set(required_roles()) - WITHOUT_DATABASE)
    }


def older_refusal(db: Path) -> str:
    return f"database {db} has schema version 1, older than this Kinko's {SCHEMA_VERSION}: run `kinko db upgrade`"


def newer_refusal(db: Path) -> str:
    return f"database {db} has schema version 99, newer than this Kinko's {SCHEMA_VERSION}: upgrade Kinko"


# ---------------------------------------------------------------- (a) refused before the upgrade


def test_a_version_1_database_is_refused_until_upgraded(
    home: Path, clock: FixedClock, tmp_path: Path, servers: list[str]
) -> None:
    db = home / "kinko.db"
    work = tmp_path / "work"
    work.mkdir()
    before, before_bytes = snapshot(db), digest(db)
    commands = every_command(home, work)
    assert {"cert list", "revoke", "ledger verify", "ocsp serve"} <= set(commands)
    for path, args in commands.items():
        if path == "db upgrade":
            continue
        result = kinko(home, clock, *args)
        assert result.exit_code == 1, (path, result.output)
        assert result.stdout == "", path
        assert result.stderr == f"kinko: error: {older_refusal(db)}\n", path
    with pytest.raises(SchemaVersionError) as refused:
        DatabaseSource(home, clock=clock)
    assert str(refused.value) == older_refusal(db)
    # A real process: one line on stderr, exit 1, no traceback.
    process = run_kinko("--home", home, "cert", "list")
    assert (process.returncode, process.stdout) == (1, "")
    assert process.stderr == f"kinko: error: {older_refusal(db)}\n"
    assert servers == []
    assert sorted(work.iterdir()) == [work / "profiles.toml", work / "request.csr"]
    assert digest(db) == before_bytes
    assert snapshot(db) == before
    assert schema_version(db) == "1"


# ---------------------------------------------------------------- (b) the upgrade, and the CA carries on


def test_db_upgrade_migrates_version_1_and_the_ca_carries_on(home: Path, clock: FixedClock, tmp_path: Path) -> None:
    db = home / "kinko.db"
    before = snapshot(db)
    result = kinko(home, clock, "--json", "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"from": 1, "to": SCHEMA_VERSION, "applied": MIGRATIONS}
    assert schema_version(db) == str(SCHEMA_VERSION)

    after = snapshot(db)
    assert after["ledger"][:-1] == before["ledger"]
    seq, time, actor, action, *_, details, _prev, head = after["ledger"][-1]
    assert (seq, time, actor, action) == (len(before["ledger"]) + 1, "2026-12-01T00:10:00Z", ADMIN, "schema.upgraded")
    recorded = json.loads(details)
    # The upgrade attests the key references that version-1 events did not record.
    attested = recorded.pop("authorities")
    assert recorded == {"from": 1, "to": SCHEMA_VERSION, "migrations": MIGRATIONS}
    assert set(attested) == {"root", "issuing", "ocsp:root", "ocsp:issuing", "audit"}
    assert attested["root"] == "root.key" and attested["audit"].startswith("audit-")
    # Sealed like every other transaction: the last checkpoint covers the upgrade's event.
    assert after["checkpoints"][:-1] == before["checkpoints"]
    assert after["checkpoints"][-1][:2] == (seq, head)
    assert after["change_counter"] == [(1, 1)]
    # 0004 adds subscribers.email, empty for the subscribers that version 1 knew.
    assert [row[-1] for row in after["subscribers"]] == [None] * len(before["subscribers"])
    after["subscribers"] = [row[:-1] for row in after["subscribers"]]
    for table in before:
        if table not in ("ledger", "checkpoints", "meta", "sqlite_master"):
            assert after[table] == before[table], f"the upgrade changed {table}"

    verified = kinko(home, clock, "ledger", "verify")
    assert verified.exit_code == 0, verified.output
    assert verified.stdout.startswith(f"ledger OK: {seq} events")

    source = DatabaseSource(home, clock=clock)
    token = source.store.change_token()
    csr = tmp_path / "new.csr"
    csr.write_bytes(make_csr())
    issued = kinko(home, clock, "--json", "issue", "--csr", csr, "--name", "高橋 次郎")
    assert issued.exit_code == 0, issued.output
    serial = json.loads(issued.stdout)["serial"]
    revoked = kinko(home, clock, "revoke", serial, "--reason", "superseded")
    assert revoked.exit_code == 0, revoked.output
    # The responder on the upgraded database sees the commits through the new change counter.
    assert source.store.change_token() > token
    published = kinko(home, clock, "--json", "crl", "publish")
    assert published.exit_code == 0, published.output
    assert {row["kind"] for row in json.loads(published.stdout)} >= {"full"}

    shown = kinko(home, clock, "--json", "cert", "show", HELD)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["status"] == "held"
    listed = kinko(home, clock, "--json", "cert", "list", "--status", "revoked")
    assert serial in {row["serial"] for row in json.loads(listed.stdout)}
    assert kinko(home, clock, "ledger", "verify").exit_code == 0


# ---------------------------------------------------------------- (c) a second upgrade does nothing


def test_a_second_upgrade_says_current_and_changes_nothing(home: Path, clock: FixedClock) -> None:
    db = home / "kinko.db"
    assert kinko(home, clock, "db", "upgrade").exit_code == 0
    before = snapshot(db)
    clock.advance(minutes=1)
    again = kinko(home, clock, "db", "upgrade")
    assert again.exit_code == 0, again.output
    assert again.stdout == f"the database is already at schema version {SCHEMA_VERSION}: nothing to do\n"
    as_json = kinko(home, clock, "--json", "db", "upgrade")
    assert json.loads(as_json.stdout) == {"from": SCHEMA_VERSION, "to": SCHEMA_VERSION, "applied": []}
    assert snapshot(db) == before


# ---------------------------------------------------------------- (d) a newer database


def test_a_newer_database_is_refused_by_every_command(
    home: Path, clock: FixedClock, tmp_path: Path, servers: list[str]
) -> None:
    db = home / "kinko.db"
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    work = tmp_path / "work"
    work.mkdir()
    before = snapshot(db)
    commands = every_command(home, work)
    assert "db upgrade" in commands
    for path, args in commands.items():
        result = kinko(home, clock, *args)
        assert result.exit_code == 1, (path, result.output)
        assert result.stderr == f"kinko: error: {newer_refusal(db)}\n", path
    with pytest.raises(SchemaVersionError, match="upgrade Kinko"):
        DatabaseSource(home, clock=clock)
    assert servers == []
    assert snapshot(db) == before


# ---------------------------------------------------------------- (e) migrations and sqlite.sql agree


def test_a_fresh_database_has_the_schema_of_an_upgraded_one(home: Path, clock: FixedClock, tmp_path: Path) -> None:
    assert kinko(home, clock, "db", "upgrade").exit_code == 0
    fresh = tmp_path / "fresh.db"
    create_store(fresh).close()
    upgraded = schema(home / "kinko.db")
    assert schema(fresh) == upgraded
    assert schema_version(fresh) == schema_version(home / "kinko.db") == str(SCHEMA_VERSION)
    assert ("table", "change_counter", "change_counter") in {row[:3] for row in upgraded}


# ---------------------------------------------------------------- (f) a migration failing half-way


def test_a_migration_failing_half_way_changes_nothing(home: Path, clock: FixedClock) -> None:
    db = home / "kinko.db"
    # An object with the name of the migration's last statement: its table and row are made first.
    conn = sqlite3.connect(db)
    conn.execute("CREATE TRIGGER change_counter_no_delete BEFORE DELETE ON meta BEGIN SELECT 1; END")
    conn.close()
    before = snapshot(db)
    result = kinko(home, clock, "db", "upgrade")
    assert result.exit_code == 3, result.output
    assert result.stderr == (
        "kinko: error: migration 0002_change_counter failed (trigger change_counter_no_delete already exists); "
        f"nothing was changed: database {db} stays at schema version 1\n"
    )
    assert snapshot(db) == before
    assert schema_version(db) == "1"
    assert "change_counter" not in {row[1] for row in before["sqlite_master"]}
    assert kinko(home, clock, "cert", "list").stderr == f"kinko: error: {older_refusal(db)}\n"
    # With the clash removed, the same upgrade goes through.
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER change_counter_no_delete")
    conn.close()
    assert kinko(home, clock, "db", "upgrade").exit_code == 0
    assert kinko(home, clock, "ledger", "verify").exit_code == 0
