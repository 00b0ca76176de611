"""The PostgreSQL store on a real server: what only a server backend can get wrong. A home on it
is made by `kinko init --database`; a bad URL, an unreachable server, a wrong password, a password
in the URL, a database that is not empty and one of a newer schema each get one line and change
nothing; the export is byte for byte SQLite's; writers are serialized by the advisory lock; and
`kinko db migrate` moves an SQLite home there in one pass."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from kinko.ca import ledger
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from kinko.ca.store import open_store
from kinko.ca.store.sqlite import SQLiteStore
from tests.conftest import ORG, make_csr, raw_execute, run_kinko, table_rows
from tests.integration.test_tamper import TABLES
from tests.postgres import SUPERUSER


def init_args(home: Path, passphrase_file: Path, url: str, passfile: Path | None) -> list[str | Path]:
    args: list[str | Path] = ["--home", home, "init", "--org", ORG, "--passphrase-file", passphrase_file]
    args += ["--database", url]
    if passfile is not None:
        args += ["--database-password-file", passfile]
    return args


def tables_in(postgres: Any, url: str) -> int:
    with psycopg.connect(url, autocommit=True, passfile=str(postgres.passfile)) as conn:
        row = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").fetchone()
        assert row is not None
        return int(row[0])


def test_init_on_a_server_makes_a_home_whose_database_is_the_server(
    tmp_path: Path, passphrase_file: Path, postgres: Any
) -> None:
    url = postgres.new_database()
    made = run_kinko(*init_args(tmp_path / "home", passphrase_file, url, postgres.passfile))
    assert made.returncode == 0, made.stderr
    home = tmp_path / "home"
    assert not (home / "kinko.db").exists()
    assert f'url = "{url}"' in (home / "kinko.toml").read_text()
    issued = run_kinko("--home", home, "--json", "issue", "--csr", write_csr(tmp_path), "--name", "Taro")
    assert issued.returncode == 0, issued.stderr
    verified = run_kinko("--home", home, "ledger", "verify")
    assert verified.returncode == 0 and "ledger OK" in verified.stdout, verified.stderr
    assert tables_in(postgres, url) == 13


def write_csr(tmp_path: Path) -> Path:
    path = tmp_path / "req.csr"
    path.write_bytes(make_csr())
    return path


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        ("unreachable", "cannot connect to database postgresql://{user}@127.0.0.1:1/"),
        ("wrong password", "password authentication failed"),
        ("password in the URL", "holds a password: put it in a password file"),
        ("not empty", "is not empty (1 tables): Kinko makes its schema in an empty database"),
        ("not a URL", "invalid database URL"),
        ("open password file", "must be a file readable by its owner only"),
    ],
)
def test_bad_database_input_gets_one_line_and_leaves_nothing(
    tmp_path: Path, passphrase_file: Path, postgres: Any, problem: str, expected: str
) -> None:
    url, passfile = postgres.new_database(), postgres.passfile
    if problem == "unreachable":
        url = f"postgresql://{SUPERUSER}@127.0.0.1:1/{url.rsplit('/', 1)[1]}"
    elif problem == "wrong password":
        passfile = tmp_path / "wrong.pass"
        passfile.write_text(f"127.0.0.1:*:*:{SUPERUSER}:not-the-password\n")
        passfile.chmod(0o600)
    elif problem == "password in the URL":
        url = url.replace(f"{SUPERUSER}@", f"{SUPERUSER}:secret@")
    elif problem == "not empty":
        raw = psycopg.connect(url, autocommit=True, passfile=str(passfile))
        raw.execute("CREATE TABLE bank_own (x int)")
        raw.close()
    elif problem == "not a URL":
        url = "postgresql://a b c"
    elif problem == "open password file":
        passfile = tmp_path / "open.pass"
        passfile.write_text(postgres.passfile.read_text())
        passfile.chmod(0o644)
    result = run_kinko(*init_args(tmp_path / "home", passphrase_file, url, passfile))
    assert result.returncode in (1, 3), result.stderr
    assert result.stderr.startswith("kinko: error: ") and len(result.stderr.splitlines()) == 1, result.stderr
    assert expected.format(user=SUPERUSER) in result.stderr, result.stderr
    assert "secret" not in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "home").exists()
    if problem in ("wrong password", "open password file"):
        assert tables_in(postgres, url) == 0
    if problem == "not empty":
        assert tables_in(postgres, url) == 1


def test_a_failed_init_leaves_an_empty_database(
    tmp_path: Path, passphrase_file: Path, postgres: Any, monkeypatch: pytest.MonkeyPatch, clock: Any
) -> None:
    from kinko.ca import hierarchy
    from kinko.ca.hierarchy import InitOptions, create_home

    url = postgres.new_database()

    def fail(*_args: Any) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(hierarchy, "_first_crls", fail)
    options = InitOptions(
        organization=ORG, passphrase_file=passphrase_file, database=url, database_password_file=postgres.passfile
    )
    with pytest.raises(OSError, match="disk on fire"):
        create_home(tmp_path / "home", options, clock, "root")
    assert tables_in(postgres, url) == 0
    assert not (tmp_path / "home").exists()
    monkeypatch.undo()
    assert create_home(tmp_path / "home", options, clock, "root").store.count("ledger") > 0


@pytest.mark.postgresql_only
def test_a_newer_schema_and_a_lost_server_are_one_line(home: Home, postgres: Any) -> None:
    raw_execute(home, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    result = run_kinko("--home", home.path, "cert", "list")
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        f"kinko: error: database {home.database} has schema version 99, newer than this Kinko's 4: upgrade Kinko\n"
    )
    raw_execute(home, "UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    # The server goes away under an open store: the next read is one line, not a driver traceback.
    store = open_store(home.database, password_file=home.database_password_file)
    name = str(home.database).rsplit("/", 1)[1]
    raw_execute(
        home,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ? AND pid != pg_backend_pid()",
        (name,),
    )
    from kinko.ca.errors import StorageError

    with pytest.raises(StorageError, match=r"^the database postgresql://\S+ failed: "):
        store.certificates()


@pytest.mark.postgresql_only
def test_the_export_is_byte_for_byte_what_sqlite_renders(home: Home, kinko: Kinko, tmp_path: Path) -> None:
    kinko.issue(make_csr(), name="=Taro \"the\" 'quoted' 山田")
    store = home.store
    events = list(store.ledger_events())
    # The same events in an SQLite ledger table: SQLite's SQL renders the lines there.
    conn = sqlite3.connect(tmp_path / "copy.db")
    conn.execute(f"CREATE TABLE ledger ({', '.join(ledger.COLUMNS)})")
    conn.executemany(f"INSERT INTO ledger VALUES ({', '.join('?' for _ in ledger.COLUMNS)})", events)  # noqa: S608
    copy = SQLiteStore(conn, tmp_path / "copy.db")
    for fmt in ("csv", "jsonl"):
        assert list(store.ledger_export_lines(fmt, None, None, None, None)) == list(
            copy.ledger_export_lines(fmt, None, None, None, None)
        )
    assert [row[3] for row in store.ledger_chain()] == [row[3] for row in copy.ledger_chain()]


@pytest.mark.postgresql_only
def test_concurrent_writers_are_serialized_so_the_chain_never_forks(home: Home, clock: Any) -> None:
    # Four connections append at once; the advisory lock makes each wait for the one before.
    def work() -> None:
        store = open_store(home.database, password_file=home.database_password_file)
        try:
            for _ in range(10):
                with store.transaction("root", "2026-01-01T00:00:00Z") as tx:
                    tx.append_event("test.event")
        finally:
            store.close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events = list(home.store.ledger_events())
    assert ledger.verify_chain(events) is None
    assert sum(1 for e in events if e.action == "test.event") == 40


# ---------------------------------------------------------------- kinko db migrate


def sqlite_side(home: Home, tmp_path: Path) -> Home:
    """The home as it was before the move: a copy whose kinko.toml points to kinko.db again."""
    import shutil

    from kinko.ca import config

    copy = tmp_path / "before"
    shutil.copytree(home.path, copy)
    text = (copy / "kinko.toml").read_text(encoding="utf-8")
    (copy / "kinko.toml").write_text(config.set_value(config.set_value(text, "url", ""), "password_file", ""))
    return Home(copy)


@pytest.mark.sqlite_only
def test_migrate_copies_every_table_and_the_ledger_unchanged(
    home: Home, kinko: Kinko, postgres: Any, tmp_path: Path, clock: Any
) -> None:
    old = open_store(home.db_file)  # a process that had the file open before the move (a CA service)
    first = kinko.issue(make_csr(), name="山田 太郎")
    kinko.revoke(first.record.serial, "key-compromise")
    kinko.add_customer("C001", "株式会社テスト")
    kinko.enroll_administrator("C001", "管理者 花子", "ADM1")
    before = {table: table_rows(home, table) for table in TABLES}
    url = postgres.new_database()
    moved = run_kinko(
        "--home", home.path, "--json", "db", "migrate", "--to", url, "--database-password-file", postgres.passfile
    )
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["rows"]["ledger"] == len(before["ledger"])
    assert Home(home.path).database == url
    # Every row as it was: the ledger's hashes and the checkpoints' signatures included.
    after = {table: table_rows(Home(home.path), table) for table in TABLES}
    for table in TABLES:
        rows = [{k: v for k, v in row.items() if k != "rowid"} for row in after[table]]
        if table in ("ledger", "checkpoints"):
            assert rows[: len(before[table])] == before[table], table
            assert len(rows) == len(before[table]) + 1  # the move itself, sealed
        elif table == "change_counter":  # past the source's: a responder's token never repeats
            assert rows[0]["value"] > before[table][0]["value"]
        else:
            assert rows == before[table], table
    assert json.loads(after["ledger"][-1]["details"])["from"] == "sqlite"
    # Both sides verify, and render the events they share byte for byte. (An export is recorded in
    # the ledger: the old side, marked moved, refuses it, as it refuses every write.)
    lines = []
    for side in (Home(home.path), sqlite_side(home, tmp_path)):
        verified = run_kinko("--home", side.path, "ledger", "verify")
        assert verified.returncode == 0 and "ledger OK" in verified.stdout, verified.stderr
        lines.append(list(side.readonly_store.ledger_export_lines("csv", None, None, None, None)))
    moved_lines, kept_lines = lines
    assert moved_lines[: len(kept_lines)] == kept_lines and len(moved_lines) == len(kept_lines) + 1
    refused = run_kinko("--home", tmp_path / "before", "ledger", "export", "--format", "csv", "--out", tmp_path / "x")
    assert refused.returncode == 3 and "was moved to postgresql://" in refused.stderr, refused.stderr
    # The moved home carries on: new keys do not collide with copied ones.
    again = Kinko(Home(home.path), clock=clock)
    again.enroll_administrator("C001", "管理者 次郎", "ADM2")
    assert again.issue(make_csr(), name="佐藤").record.serial
    # And nothing lands on the old file any more, not even from a process that had it open.
    from kinko.ca.errors import StorageError

    with (
        pytest.raises(StorageError, match="was moved to postgresql://"),
        old.transaction("root", "2027-01-01T00:00:00Z") as tx,
    ):
        tx.append_event("test.event")
    old.close()


@pytest.mark.sqlite_only
def test_migrate_refuses_a_database_that_is_not_empty_and_changes_nothing(
    home: Home, postgres: Any, tmp_path: Path
) -> None:
    url = postgres.new_database()
    raw = psycopg.connect(url, autocommit=True, passfile=str(postgres.passfile))
    raw.execute("CREATE TABLE bank_own (x int)")
    raw.close()
    config_before = home.config_file.read_bytes()
    rows_before = {table: table_rows(home, table) for table in TABLES}
    result = run_kinko("--home", home.path, "db", "migrate", "--to", url, "--database-password-file", postgres.passfile)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("kinko: error: database ") and "is not empty" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert home.config_file.read_bytes() == config_before
    assert {table: table_rows(home, table) for table in TABLES} == rows_before
    assert tables_in(postgres, url) == 1
    assert run_kinko("--home", home.path, "issue", "--csr", write_csr(tmp_path), "--name", "A").returncode == 0


@pytest.mark.sqlite_only
def test_a_copy_that_does_not_verify_moves_nothing(home: Home, kinko: Kinko, postgres: Any) -> None:
    issued = kinko.issue(make_csr(), name="山田 太郎")
    # Edited behind Kinko's back: the copy carries the edit, and replay on the target finds it.
    raw_execute(home, "UPDATE certificates SET der = ? WHERE serial = ?", (b"\x30\x00", issued.record.serial))
    config_before = home.config_file.read_bytes()
    url = postgres.new_database()
    result = run_kinko("--home", home.path, "db", "migrate", "--to", url, "--database-password-file", postgres.passfile)
    assert result.returncode == 3, result.stderr
    assert "the copy does not verify" in result.stderr and "the home still uses kinko.db" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert home.config_file.read_bytes() == config_before
    assert raw_execute(home, "SELECT value FROM meta WHERE key = 'moved_to'") == []
    assert tables_in(postgres, url) == 0
