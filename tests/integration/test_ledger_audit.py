"""The ledger as an auditor meets it.

Tampering is done behind Kinko's back, on the database itself (the sqlite3 CLI or psql, or the
driver where bytes are easier), on each backend, and `kinko ledger verify` runs as a real process: it must
exit 1 naming the first bad row and what is wrong with it. Exports are checked without
Kinko's code: the chain is recomputed by a few lines here (not ca.ledger) and the detached
signature by `openssl cms`. Finally every state change made through the CLI must leave an
event in the ledger.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from kinko import cli
from kinko.ca import ledger
from kinko.ca.audit import verify_database
from kinko.ca.clock import FixedClock, to_text
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from tests.conftest import (
    ORG,
    ROOT,
    database_cli,
    make_csr,
    make_key,
    raw_database,
    raw_execute,
    run_kinko,
    unguard,
)

CUSTOMER = "C001"
CUSTOMER_NAME = "株式会社テスト"
JST = dt.timezone(dt.timedelta(hours=9))
UNGUARD = "DROP TRIGGER ledger_no_update; DROP TRIGGER ledger_no_delete;"
FIELDS = "seq, time, actor, action, serial, subscriber, customer, details, prev_hash, hash"
EXPORT_COLUMNS = ["seq", "time", "actor", "action", "serial", "subscriber", "customer", "details", "prev_hash", "hash"]
GENESIS = "0" * 64


# ---------------------------------------------------------------- helpers


def sqlite_cli(home: Home, *statements: str, **values: Any) -> None:
    """Runs SQL on the home's database with its command-line tool (sqlite3, psql), stopping at
    the first error; {name} in the statements is replaced by values[name], UNGUARD by what
    turns the backend's append-only triggers off."""
    script = "\n".join(unguard(home) if s == UNGUARD else s for s in statements).format(**values)
    result = database_cli(home, script)
    assert result.returncode == 0 and not result.stderr, result.stderr


def query(home: Home, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in raw_execute(home, sql, params)]


def events(home: Home) -> list[tuple[Any, ...]]:
    return query(home, f"SELECT {FIELDS} FROM ledger ORDER BY seq")  # noqa: S608


def last_seq(home: Home) -> int:
    return int(query(home, "SELECT MAX(seq) FROM ledger")[0][0])


def checkpoint_seqs(home: Home) -> list[int]:
    return [row[0] for row in query(home, "SELECT seq FROM checkpoints ORDER BY seq")]


def verify(home: Home) -> subprocess.CompletedProcess:
    """`kinko ledger verify` as a real process."""
    return run_kinko("--home", home.path, "ledger", "verify")


def assert_named(result: subprocess.CompletedProcess, seq: int, *words: str) -> str:
    """Verification failed with exit 1 and one line naming `seq` and what is wrong."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "ledger OK" not in result.stdout
    line = result.stderr.strip()
    assert "\n" not in line, line
    assert line.startswith(f"kinko: error: seq {seq}: "), line
    for word in words:
        assert word in line, line
    return line


def forge_append(home: Home, *, checkpoint: str | None = None) -> int:
    """Appends an event with a correctly recomputed hash behind Kinko's back (Python sqlite3).

    checkpoint: None (no checkpoint row, as a forger without the audit key would leave it),
    'copied' (the previous checkpoint's signature copied onto the new head)."""
    conn = raw_database(home)
    try:
        seq, prev, time = conn.execute("SELECT seq, hash, time FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
        text = ledger.encode_details({"login": "mallory", "role": "admin"})
        fields = (seq + 1, time, "root", "officer.added", "", "", "", text)
        digest = ledger.chain_hash(prev, ledger.canonical(*fields))
        conn.execute(f"INSERT INTO ledger ({FIELDS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (*fields, prev, digest))  # noqa: S608
        if checkpoint == "copied":
            signature, signer = conn.execute(
                "SELECT signature, signer FROM checkpoints ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            conn.execute(
                "INSERT INTO checkpoints (seq, head_hash, time, signature, signer) VALUES (?, ?, ?, ?, ?)",
                (seq + 1, digest, time, signature, signer),
            )
        conn.commit()
    finally:
        conn.close()
    return seq + 1


def rechain(home: Home, from_seq: int, edit: dict[str, str] | None = None) -> dict[int, str]:
    """Edits event `from_seq` (optionally) and recomputes every hash from it on, so the chain
    itself holds again; returns the new hash of every rewritten event."""
    conn = raw_database(home)
    try:
        conn.executescript(unguard(home))
        if edit:
            assignments = ", ".join(f"{column} = ?" for column in edit)
            conn.execute(f"UPDATE ledger SET {assignments} WHERE seq = ?", (*edit.values(), from_seq))  # noqa: S608
        prev = conn.execute("SELECT hash FROM ledger WHERE seq = ?", (from_seq - 1,)).fetchone()
        prev_hash = prev[0] if prev else ledger.GENESIS
        rewritten = {}
        rows = list(conn.execute(f"SELECT {FIELDS} FROM ledger WHERE seq >= ? ORDER BY seq", (from_seq,)))  # noqa: S608
        for row in rows:
            digest = ledger.chain_hash(prev_hash, ledger.canonical(*row[:8]))
            conn.execute("UPDATE ledger SET prev_hash = ?, hash = ? WHERE seq = ?", (prev_hash, digest, row[0]))
            rewritten[row[0]] = prev_hash = digest
        conn.commit()
    finally:
        conn.close()
    return rewritten


# The test-side chain: what an auditor writes from the docstring of ca/ledger.py, without Kinko.


def recompute_chain(rows: list[dict[str, Any]], *, linked: bool = True) -> str:
    """Recomputes every row's hash from the file's own fields; returns the last hash."""
    prev = GENESIS
    for row in rows:
        if linked:
            assert row["prev_hash"] == prev, f"seq {row['seq']}: prev_hash does not link"
        line = json.dumps(
            [
                int(row["seq"]),
                row["time"],
                row["actor"],
                row["action"],
                row["serial"],
                row["subscriber"],
                row["customer"],
                row["details"],
            ],
            ensure_ascii=False,
            separators=(",", ":"),
        )
        digest = hashlib.sha256(bytes.fromhex(row["prev_hash"]) + line.encode("utf-8")).hexdigest()
        assert digest == row["hash"], f"seq {row['seq']}: hash does not match the row"
        prev = digest
    return prev


def read_rows(path: Path) -> list[dict[str, Any]]:
    """An export's rows, read with the standard library only (CSV with header, or JSON Lines)."""
    text = path.read_bytes().decode("utf-8-sig")
    if text.startswith("{"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert reader.fieldnames == EXPORT_COLUMNS
    return list(reader)


def as_tuples(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(int(r["seq"]), *(r[c] for c in EXPORT_COLUMNS[1:])) for r in rows]


def openssl_verify(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "openssl",
            "cms",
            "-verify",
            "-binary",
            "-content",
            str(path),
            "-inform",
            "DER",
            "-in",
            f"{path}.sig",
            "-CAfile",
            f"{path}.chain.pem",
            "-out",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def verify_export(home: Home, path: Path, *options: str) -> subprocess.CompletedProcess:
    """`kinko ledger verify --export FILE --ca-file ROOT` as a real process, run by the home's admin.

    Issue 10: the auditor names its own trust anchor (the root); the chain beside the export is not one."""
    root = home.public_dir / "ca" / "root.pem"
    return run_kinko("--home", home.path, "ledger", "verify", "--export", path, "--ca-file", root, *options)


def export(home: Home, path: Path, *options: str) -> dict[str, Any]:
    """`kinko --json ledger export ...` as a real process; returns its JSON answer."""
    result = run_kinko("--home", home.path, "--json", "ledger", "export", "--out", path, *options)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# ---------------------------------------------------------------- a home with some history


@pytest.fixture
def history(home: Home, kinko: Kinko, clock: FixedClock) -> dict[str, Any]:
    """Three certificates (one revoked, one held and released), a customer and its administrator,
    each step a few minutes after the last so that time filters have something to cut."""
    times = {}
    clock.advance(minutes=5)
    first = kinko.issue(make_csr(), name="山田 太郎", organization=CUSTOMER_NAME)
    second = kinko.issue(make_csr(), name="佐藤 花子")
    kinko.issue(make_csr(), name="鈴木 一郎")
    times["revoke"] = clock.advance(minutes=5)
    kinko.revoke(first.record.serial, "superseded")
    times["hold"] = clock.advance(minutes=5)
    kinko.hold(second.record.serial)
    times["release"] = clock.advance(minutes=5)
    kinko.release(second.record.serial)
    times["customer"] = clock.advance(minutes=5)
    kinko.add_customer(CUSTOMER, CUSTOMER_NAME)
    kinko.enroll_administrator(CUSTOMER, "管理者 花子", "ADM1")
    return {"revoked": first.record.serial, "held": second.record.serial, "times": times}


# ---------------------------------------------------------------- A. tampering on the database


def test_untouched_ledger_verifies(home: Home, history: dict[str, Any]) -> None:
    result = verify(home)
    assert result.returncode == 0, result.stderr
    count = last_seq(home)
    assert count >= 20
    assert result.stdout.startswith(f"ledger OK: {count} events, {len(checkpoint_seqs(home))} signed checkpoints")
    assert result.stderr == ""


def test_triggers_refuse_update_and_delete_until_dropped(home: Home, history: dict[str, Any]) -> None:
    for statement in ("UPDATE ledger SET actor = 'mallory' WHERE seq = 5;", "DELETE FROM ledger WHERE seq = 5;"):
        result = database_cli(home, statement)
        assert result.returncode != 0
        assert "append-only" in result.stderr
    assert verify(home).returncode == 0


@pytest.mark.parametrize(
    ("column", "value", "what"),
    [
        ("actor", "'mallory'", "edited"),
        ("time", "'2020-01-01T00:00:00Z'", "edited"),
        ("action", "'ca.deleted'", "edited"),
        ("serial", "'00'", "edited"),
        ("subscriber", "'S0000000'", "edited"),
        ("customer", "'C999'", "edited"),
        ("details", "'{}'", "edited"),
        ("hash", f"'{'f' * 64}'", "edited"),
        ("prev_hash", f"'{'0' * 64}'", "broken link"),
    ],
)
def test_edited_field_is_named(home: Home, history: dict[str, Any], column: str, value: str, what: str) -> None:
    sqlite_cli(home, UNGUARD, "UPDATE ledger SET {column} = {value} WHERE seq = 5;", column=column, value=value)
    assert_named(verify(home), 5, what)


def test_changed_revocation_reason_is_named(home: Home, history: dict[str, Any]) -> None:
    (seq,) = query(home, "SELECT seq FROM ledger WHERE action = 'certificate.revoked'")[0]
    sqlite_cli(
        home,
        UNGUARD,
        "UPDATE ledger SET details = replace(details, 'superseded', 'key-compromise') WHERE seq = {seq};",
        seq=seq,
    )
    assert "key-compromise" in query(home, "SELECT details FROM ledger WHERE seq = ?", (seq,))[0][0]
    assert_named(verify(home), seq, "edited")


@pytest.mark.parametrize("seq", [1, 12])
def test_deleted_event_is_named_missing(home: Home, history: dict[str, Any], seq: int) -> None:
    sqlite_cli(home, UNGUARD, "DELETE FROM ledger WHERE seq = {seq};", seq=seq)
    assert_named(verify(home), seq, "missing", f"seq {seq} is absent (next is {seq + 1})")


def test_swapped_seq_numbers_name_the_first_row(home: Home, history: dict[str, Any]) -> None:
    sqlite_cli(
        home,
        UNGUARD,
        "UPDATE ledger SET seq = -4 WHERE seq = 4;",
        "UPDATE ledger SET seq = 4 WHERE seq = 5;",
        "UPDATE ledger SET seq = 5 WHERE seq = -4;",
    )
    line = assert_named(verify(home), 4)
    assert "broken link" in line or "reordered" in line, line


def test_swapped_contents_name_the_first_row(home: Home, history: dict[str, Any]) -> None:
    """Rows 4 and 5 trade every field but seq and their hashes: row 4 no longer matches its hash."""
    columns = ("time", "actor", "action", "serial", "subscriber", "customer", "details")
    sqlite_cli(
        home,
        UNGUARD,
        "CREATE TEMP TABLE saved AS SELECT * FROM ledger WHERE seq = 4;",
        "UPDATE ledger SET {from_five} WHERE seq = 4;",
        "UPDATE ledger SET {from_saved} WHERE seq = 5;",
        from_five=", ".join(f"{c} = (SELECT {c} FROM ledger WHERE seq = 5)" for c in columns),  # noqa: S608
        from_saved=", ".join(f"{c} = (SELECT {c} FROM saved)" for c in columns),  # noqa: S608
    )
    assert query(home, "SELECT action FROM ledger WHERE seq IN (4, 5) ORDER BY seq") == [
        ("audit.signer-issued",),
        ("ocsp.signer-issued",),
    ]
    assert_named(verify(home), 4, "edited")


def test_truncated_tail_is_named(home: Home, history: dict[str, Any]) -> None:
    """The last three events deleted, their signed checkpoints left behind."""
    last = last_seq(home)
    sqlite_cli(home, UNGUARD, "DELETE FROM ledger WHERE seq > {seq};", seq=last - 3)
    assert_named(verify(home), last - 2, "truncated after checkpoint")


def test_truncation_message_names_every_missing_event(home: Home, history: dict[str, Any]) -> None:
    """The surviving checkpoints prove events up to the highest of them existed: all are missing,
    not only those up to the first checkpoint past the end."""
    last = last_seq(home)
    assert last in checkpoint_seqs(home)
    sqlite_cli(home, UNGUARD, "DELETE FROM ledger WHERE seq > {seq};", seq=last - 3)
    assert_named(verify(home), last - 2, "truncated", f"events {last - 2}..{last} are missing")


def test_truncated_tail_stays_named_after_a_further_command(home: Home, history: dict[str, Any]) -> None:
    last = last_seq(home)
    sqlite_cli(home, UNGUARD, "DELETE FROM ledger WHERE seq > {seq};", seq=last - 3)
    run_kinko("--home", home.path, "ledger", "checkpoint")  # whatever it answers, it must not hide the cut
    assert_named(verify(home), last - 2, "truncated")


def test_forged_append_without_checkpoint_is_named(home: Home, history: dict[str, Any]) -> None:
    before = last_seq(home)
    seq = forge_append(home)
    assert seq == before + 1
    assert_named(verify(home), seq, f"events {seq}..{seq} follow the last signed checkpoint ({before})")


def test_forged_append_is_not_laundered_by_the_next_checkpoint(home: Home, history: dict[str, Any]) -> None:
    """The next transaction must not seal an event that no checkpoint covered: `ledger verify`
    still names the forged row after `kinko ledger checkpoint` ran."""
    seq = forge_append(home)
    assert verify(home).returncode == 1
    run_kinko("--home", home.path, "ledger", "checkpoint")
    assert_named(verify(home), seq)


def test_forged_append_with_copied_checkpoint_signature_is_named(home: Home, history: dict[str, Any]) -> None:
    seq = forge_append(home, checkpoint="copied")
    assert_named(verify(home), seq, f"checkpoint {seq}: the signature does not verify")


def test_edited_checkpoint_signature_is_named(home: Home, history: dict[str, Any]) -> None:
    seq = checkpoint_seqs(home)[3]
    conn = raw_database(home)
    (signature,) = conn.execute("SELECT signature FROM checkpoints WHERE seq = ?", (seq,)).fetchone()
    edited = bytes(signature[:-1]) + bytes([signature[-1] ^ 0x01])
    conn.execute("UPDATE checkpoints SET signature = ? WHERE seq = ?", (edited, seq))
    conn.commit()
    conn.close()
    assert_named(verify(home), seq, f"checkpoint {seq}: the signature does not verify")


@pytest.mark.parametrize(
    ("assignment", "what"),
    [
        ("signature = substr(signature, 1, 1)", "the signature does not verify"),
        ("time = '2020-01-01T00:00:00Z'", "the signature does not verify"),
        (f"head_hash = '{'a' * 64}'", "names a different head hash"),
        ("signer = 'DEADBEEF'", "not signed by an audit signer (DEADBEEF)"),
    ],
)
def test_edited_checkpoint_row_is_named(home: Home, history: dict[str, Any], assignment: str, what: str) -> None:
    seq = checkpoint_seqs(home)[3]
    sqlite_cli(home, "UPDATE checkpoints SET {assignment} WHERE seq = {seq};", assignment=assignment, seq=seq)
    assert_named(verify(home), seq, f"checkpoint {seq}", what)


def test_deleted_last_checkpoint_is_named(home: Home, history: dict[str, Any]) -> None:
    seqs = checkpoint_seqs(home)
    last, previous = seqs[-1], seqs[-2]
    sqlite_cli(home, "DELETE FROM checkpoints WHERE seq = {seq};", seq=last)
    assert_named(verify(home), previous + 1, f"events {previous + 1}..{last} follow the last signed checkpoint")


def test_deleted_checkpoints_are_named(home: Home, history: dict[str, Any]) -> None:
    sqlite_cli(home, "DELETE FROM checkpoints;")
    assert_named(verify(home), 1, f"events 1..{last_seq(home)} follow the last signed checkpoint (0)")


def test_rewritten_chain_is_caught_by_the_next_checkpoint(home: Home, history: dict[str, Any]) -> None:
    """Event 5 edited and every later hash recomputed: the chain holds, the first checkpoint after it does not."""
    rechain(home, 5, {"actor": "mallory"})
    first = min(seq for seq in checkpoint_seqs(home) if seq >= 5)
    assert_named(verify(home), first, f"checkpoint {first} names a different head hash", "rewritten")


def test_rewritten_chain_with_its_checkpoints_deleted_is_named(home: Home, history: dict[str, Any]) -> None:
    (seq,) = query(home, "SELECT seq FROM ledger WHERE action = 'certificate.revoked'")[0]
    assert seq - 1 in checkpoint_seqs(home)
    rechain(home, seq, {"details": '{"reason":"key-compromise"}'})
    sqlite_cli(home, "DELETE FROM checkpoints WHERE seq >= {seq};", seq=seq)
    assert_named(verify(home), seq, f"events {seq}..{last_seq(home)} follow the last signed checkpoint ({seq - 1})")


def test_checkpoints_resigned_with_a_registry_certificate_are_refused(
    home: Home, kinko: Kinko, history: dict[str, Any]
) -> None:
    """An insider holds the key of a client certificate in the registry (issued to them). They
    rewrite the revocation and re-sign every later checkpoint with that key. Only the audit
    signer may sign checkpoints: verification must fail."""
    insider_key = make_key()
    insider = kinko.issue(make_csr(insider_key), name="内部 犯人").record.serial
    (seq,) = query(home, "SELECT seq FROM ledger WHERE action = 'certificate.revoked'")[0]
    hashes_now = rechain(home, seq, {"actor": "nobody"})
    conn = raw_database(home)
    for checkpoint, time in list(conn.execute("SELECT seq, time FROM checkpoints WHERE seq >= ?", (seq,))):
        head = hashes_now[checkpoint]
        signature = insider_key.sign(ledger.checkpoint_message(checkpoint, head, time), ec.ECDSA(hashes.SHA256()))
        conn.execute(
            "UPDATE checkpoints SET head_hash = ?, signature = ?, signer = ? WHERE seq = ?",
            (head, signature, insider, checkpoint),
        )
    conn.commit()
    conn.close()
    result = verify(home)
    assert result.returncode == 1, f"a ledger re-signed with a client certificate's key verified: {result.stdout}"


# ---------------------------------------------------------------- B. exports


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_full_export_round_trip(home: Home, history: dict[str, Any], tmp_path: Path, fmt: str) -> None:
    database = events(home)
    out = tmp_path / f"ledger.{fmt}"
    answer = export(home, out, "--format", fmt)

    rows = read_rows(out)
    assert len(rows) == len(database) == answer["rows"]  # one row per event, every event
    assert [int(r["seq"]) for r in rows] == list(range(1, len(database) + 1))
    assert as_tuples(rows) == database
    assert recompute_chain(rows) == database[-1][-1]
    assert not out.read_bytes().startswith(b"\xef\xbb\xbf")
    assert CUSTOMER_NAME.encode("utf-8") in out.read_bytes()
    assert hashlib.sha256(out.read_bytes()).hexdigest() == answer["sha256"]
    assert answer["signature"] == f"{out}.sig" and answer["chain"] == f"{out}.chain.pem"

    checked = openssl_verify(out)
    assert checked.returncode == 0, checked.stderr
    assert "Verification successful" in checked.stdout + checked.stderr

    offline = verify_export(home, out)
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout.startswith(f"ledger OK: {len(rows)} events")
    assert "signed by" in offline.stdout
    assert "checkpoints" not in offline.stdout  # an export has none: "0 signed checkpoints" read like a failure

    # The export itself is an event, and the ledger still verifies with it.
    after = events(home)
    assert len(after) == len(database) + 1
    seq, _time, actor, action, *_rest, details, _prev, _hash = after[-1]
    assert (seq, action, actor) == (len(database) + 1, "ledger.exported", "root")
    recorded = json.loads(details)
    assert recorded["format"] == fmt
    assert recorded["rows"] == len(rows)
    assert recorded["sha256"] == answer["sha256"]
    assert recorded["signed"] is True
    assert recorded["file"] == out.name
    assert verify(home).returncode == 0


@pytest.mark.parametrize("options", [(), ("--action", "certificate.issued")], ids=["full", "filtered"])
def test_a_ledger_that_does_not_verify_is_not_exported(
    home: Home, history: dict[str, Any], tmp_path: Path, options: tuple[str, ...]
) -> None:
    """The README's tamper demo once left a rewritten ledger that `ledger export` then signed:
    an export is evidence, so a chain that does not hold is refused and nothing is written."""
    sqlite_cli(home, UNGUARD, "UPDATE ledger SET actor = 'mallory' WHERE seq = 5;")
    before = len(events(home))
    out = tmp_path / "ledger.csv"
    result = run_kinko("--home", home.path, "ledger", "export", "--format", "csv", "--out", out, *options)
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("kinko: error: the ledger does not verify (seq 5: ")
    assert result.stderr.rstrip().endswith("nothing was exported; run `kinko ledger verify`")
    assert len(result.stderr.splitlines()) == 1
    assert list(tmp_path.glob("ledger.csv*")) == []
    assert len(events(home)) == before  # no ledger.exported event either


def test_export_verifies_offline_without_a_home(home: Home, history: dict[str, Any], tmp_path: Path) -> None:
    """The README: `kinko ledger verify --export ledger.csv  # offline, no database`. An outside
    auditor has the three files and no Kinko home."""
    out = tmp_path / "ledger.csv"
    export(home, out, "--format", "csv")
    elsewhere = tmp_path / "auditor"
    elsewhere.mkdir()
    # Issue 10: the auditor brings the bank's root, obtained on its own.
    (elsewhere / "root.pem").write_bytes((home.public_dir / "ca" / "root.pem").read_bytes())
    environment = {k: v for k, v in os.environ.items() if k != "KINKO_HOME"}
    result = subprocess.run(
        [sys.executable, "-m", "kinko.cli", "ledger", "verify", "--export", out, "--ca-file", "root.pem"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env={**environment, "PYTHONPATH": str(ROOT)},
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"ledger OK: {len(read_rows(out))} events")
    assert "signed by CN=" in result.stdout


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_one_changed_byte_fails_openssl_and_kinko(
    home: Home, history: dict[str, Any], tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / f"ledger.{fmt}"
    export(home, out, "--format", fmt)
    data = bytearray(out.read_bytes())
    at = data.index(b"superseded")
    data[at] = ord("S")
    out.write_bytes(bytes(data))

    checked = openssl_verify(out)
    assert checked.returncode != 0
    assert "Verification successful" not in checked.stdout + checked.stderr

    offline = verify_export(home, out)
    assert offline.returncode == 1, offline.stdout
    line = offline.stderr.strip()
    assert "\n" not in line and line.startswith("kinko: error: ")
    assert "does not match its signature" in line


def test_rechained_export_still_fails_its_signature(home: Home, history: dict[str, Any], tmp_path: Path) -> None:
    """A forger who edits a row and recomputes every later hash in the file is stopped by the signature."""
    out = tmp_path / "ledger.csv"
    export(home, out, "--format", "csv")
    rows = read_rows(out)
    rows[4]["actor"] = "mallory"
    prev = rows[3]["hash"]
    for row in rows[4:]:
        row["prev_hash"] = prev
        line = json.dumps(
            [int(row["seq"]), *(row[c] for c in EXPORT_COLUMNS[1:8])], ensure_ascii=False, separators=(",", ":")
        )
        row["hash"] = prev = hashlib.sha256(bytes.fromhex(prev) + line.encode()).hexdigest()
    with open(out, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, EXPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    recompute_chain(read_rows(out))  # the file's own chain holds
    assert openssl_verify(out).returncode != 0
    offline = verify_export(home, out)
    assert offline.returncode == 1
    assert "does not match its signature" in offline.stderr


def test_excel_export_has_a_bom_and_keeps_japanese(home: Home, history: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "ledger-excel.csv"
    answer = export(home, out, "--format", "csv", "--excel")
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert not raw[3:].startswith(b"\xef\xbb\xbf")
    assert CUSTOMER_NAME.encode("utf-8") in raw
    assert "山田 太郎".encode() in raw
    rows = read_rows(out)
    assert len(rows) == answer["rows"] == last_seq(home) - 1
    customer_rows = [r for r in rows if r["action"] == "customer.added"]
    assert json.loads(customer_rows[0]["details"])["name"] == CUSTOMER_NAME
    recompute_chain(rows)
    assert openssl_verify(out).returncode == 0
    offline = verify_export(home, out)
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout.startswith(f"ledger OK: {len(rows)} events")


def _filter_cases(history: dict[str, Any]) -> dict[str, tuple[list[str], Any]]:
    since, until = history["times"]["revoke"], history["times"]["release"]
    return {
        "customer": (["--customer", CUSTOMER], lambda e: e[6] == CUSTOMER),
        "action": (["--action", "certificate.issued"], lambda e: e[3] == "certificate.issued"),
        "since-until": (
            ["--since", since.astimezone(JST).isoformat(), "--until", until.astimezone(JST).isoformat()],
            lambda e: to_text(since) <= e[1] <= to_text(until),
        ),
        "since": (
            ["--since", to_text(history["times"]["customer"])],
            lambda e: e[1] >= to_text(history["times"]["customer"]),
        ),
    }


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("case", ["customer", "action", "since-until", "since"])
def test_filtered_export_holds_only_matching_rows(
    home: Home, history: dict[str, Any], tmp_path: Path, case: str, fmt: str
) -> None:
    options, matches = _filter_cases(history)[case]
    expected = [e for e in events(home) if matches(e)]
    assert 0 < len(expected) < last_seq(home)
    out = tmp_path / f"filtered.{fmt}"
    answer = export(home, out, "--format", fmt, *options)

    rows = read_rows(out)
    assert as_tuples(rows) == expected
    assert answer["rows"] == len(expected)
    assert answer["signature"] is None and answer["chain"] is None
    assert not Path(f"{out}.sig").exists() and not Path(f"{out}.chain.pem").exists()
    recompute_chain(rows, linked=False)  # each row still matches its own hash

    # Issue 10: an unsigned export passes only when the auditor accepts that it is unsigned.
    offline = verify_export(home, out, "--allow-unsigned")
    assert offline.returncode == 0, offline.stderr
    assert "row by row" in offline.stdout

    _seq, _time, _actor, action, *_rest, details, _prev, _hash = events(home)[-1]
    assert action == "ledger.exported"
    recorded = json.loads(details)
    assert recorded["signed"] is False and recorded["rows"] == len(expected)


def test_filtered_export_over_a_signed_one_leaves_no_stale_signature(
    home: Home, history: dict[str, Any], tmp_path: Path
) -> None:
    """A filtered export written where a full one was must not keep the old FILE.sig beside it."""
    out = tmp_path / "ledger.csv"
    export(home, out, "--format", "csv")
    export(home, out, "--format", "csv", "--customer", CUSTOMER)
    assert not Path(f"{out}.sig").exists(), "a stale .sig of the earlier full export is left beside the filtered one"
    offline = verify_export(home, out, "--allow-unsigned")  # issue 10: unsigned needs --allow-unsigned
    assert offline.returncode == 0, offline.stderr
    assert "row by row" in offline.stdout


# ---------------------------------------------------------------- C. every state change is an event

DERIVED = {"ledger", "checkpoints", "ocsp_responses"}  # the ledger itself, and pre-signed answers re-derived


def snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    if not db.exists():
        return {}
    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: list(conn.execute(f'SELECT * FROM "{t}" ORDER BY rowid')) for t in tables}  # noqa: S608
    finally:
        conn.close()


def test_every_state_change_is_an_event(
    tmp_path: Path, passphrase_file: Path, clock: FixedClock, test_logins: tuple[str, ...]
) -> None:
    home = tmp_path / "home"
    db = home / "kinko.db"
    for number in (1, 2, 3, 4):
        (tmp_path / f"{number}.csr").write_bytes(make_csr())

    def kinko(actor: str, *args: Any) -> Any:
        runner = CliRunner()
        return runner.invoke(
            cli.cli, ["--home", str(home), "--json", *map(str, args)], obj={"clock": clock, "actor": actor}
        )

    seen: list[str] = []

    def step(actor: str, args: list[Any], expected: set[str], exit_code: int = 0) -> Any:
        before = snapshot(db)
        result = kinko(actor, *args)
        assert result.exit_code == exit_code, (args, result.output)
        after = snapshot(db)
        new = after["ledger"][len(before.get("ledger", [])) :]
        assert after["ledger"][: len(before.get("ledger", []))] == before.get("ledger", []), args
        actions = {row[3] for row in new}
        assert expected <= actions, (args, actions)
        assert {row[2] for row in new} <= {actor}, (args, new)
        changed = sorted(t for t in after if t not in DERIVED and after[t] != before.get(t, []))
        if changed:
            assert new, f"`kinko {' '.join(map(str, args))}` changed {changed} without a ledger event"
        if not expected:
            assert not new and not changed, (args, changed, actions)
        seen.extend(row[3] for row in new)
        clock.advance(seconds=1)
        return json.loads(result.stdout) if exit_code == 0 and result.stdout.strip() else None

    created = {"ca.created", "ocsp.signer-issued", "audit.signer-issued", "officer.added", "crl.published"}
    step("alice", ["init", "--org", ORG, "--passphrase-file", passphrase_file], created)
    step("alice", ["officer", "add", "bob", "--role", "officer"], {"officer.added"})
    step("alice", ["officer", "add", "carol", "--role", "auditor"], {"officer.added"})
    step("alice", ["officer", "add", "dave", "--role", "auditor"], {"officer.added"})
    first = step("bob", ["issue", "--csr", tmp_path / "1.csr", "--name", "山田 太郎"], {"certificate.issued"})
    second = step("bob", ["issue", "--csr", tmp_path / "2.csr", "--name", "佐藤 花子"], {"certificate.issued"})
    step("bob", ["revoke", first["serial"], "--reason", "superseded"], {"certificate.revoked", "crl.published"})
    step("bob", ["hold", second["serial"]], {"certificate.held"})
    step("bob", ["release", second["serial"]], {"certificate.released"})
    step("bob", ["crl", "publish"], {"crl.published"})
    step("alice", ["crl", "publish", "--root"], {"crl.published"})
    step("alice", ["ocsp", "signer", "rotate"], {"ocsp.signer-issued"})
    step("bob", ["ocsp", "refresh"], set())
    step("bob", ["customer", "add", CUSTOMER, "--name", CUSTOMER_NAME], {"customer.added"})
    enrolled = step(
        "bob",
        ["enroll", "administrator", "--customer", CUSTOMER, "--name", "管理者 花子", "--id", "ADM1"],
        {"subscriber.added", "enrollment.created"},
    )
    wrong = enrolled["code"][:5] + "0000-0000-0000-0000-0000-0000"
    step("bob", ["acquire", "--code", wrong, "--csr", tmp_path / "3.csr"], {"enrollment.code-refused"}, 1)
    step(
        "bob",
        ["acquire", "--code", enrolled["code"], "--csr", tmp_path / "3.csr"],
        {"enrollment.redeemed", "certificate.issued"},
    )
    step(
        "bob",
        ["enroll", "user", "--customer", CUSTOMER, "--name", "利用者 一郎", "--by", "ADM1", "--id", "USR1"],
        {"subscriber.added", "enrollment.created"},
    )
    step("bob", ["reissue", "--subscriber", "USR1", "--by", "ADM1"], {"enrollment.created"})
    step("bob", ["customer", "suspend", CUSTOMER], {"customer.suspended"})
    step("bob", ["customer", "resume", CUSTOMER], {"customer.resumed"})
    step(
        "bob",
        ["incident", "report", "--subscriber", "ADM1", "--kind", "lost", "--received-at", to_text(clock.now())],
        {"incident.recorded", "certificate.revoked"},
    )
    step("bob", ["customer", "terminate", CUSTOMER, "--yes"], {"customer.terminated"})
    step("carol", ["ledger", "export", "--format", "jsonl", "--out", tmp_path / "l.jsonl"], {"ledger.exported"})
    step("bob", ["ledger", "checkpoint"], {"ledger.checkpoint"})
    step("carol", ["revoke", second["serial"], "--reason", "superseded"], {"command.refused"}, 1)
    step("mallory", ["cert", "list"], {"command.refused"}, 1)
    step("bob", ["crl", "publish", "--root"], {"command.refused"}, 1)
    step("alice", ["officer", "remove", "dave"], {"officer.removed"})
    for reader in (
        ["cert", "list"],
        ["cert", "show", second["serial"]],
        ["status", second["serial"]],
        ["customer", "show", CUSTOMER],
        ["customer", "list"],
        ["incident", "list"],
        ["officer", "list"],
        ["report", "expiring"],
        ["ledger", "verify"],
        ["crl", "show"],
        ["ca", "show"],
    ):
        step("carol", reader, set())

    expected = {
        "ca.created",
        "ocsp.signer-issued",
        "audit.signer-issued",
        "officer.added",
        "officer.removed",
        "crl.published",
        "certificate.issued",
        "certificate.revoked",
        "certificate.held",
        "certificate.released",
        "customer.added",
        "customer.suspended",
        "customer.resumed",
        "customer.terminated",
        "subscriber.added",
        "enrollment.created",
        "enrollment.redeemed",
        "enrollment.code-refused",
        "incident.recorded",
        "ledger.exported",
        "ledger.checkpoint",
        "command.refused",
    }
    assert expected <= set(seen), expected - set(seen)
    refused = [json.loads(r[7]) for r in events(Home(home)) if r[3] == "command.refused"]
    assert refused == [
        {"command": "revoke", "needs": "officer", "role": "auditor"},
        {"command": "cert list", "needs": "auditor", "role": None},
        {"command": "crl publish --root", "needs": "admin", "role": "officer"},
    ]
    assert verify_database(Home(home)).ok


def test_awkward_text_survives_export_and_verification(home, kinko, tmp_path, clock) -> None:
    """Quotes, commas, newlines, U+2028 and Japanese in an event: SQLite builds the export lines
    and the canonical JSON for verification; both must agree with Python's definition."""
    from kinko.ca import audit, ledger
    from kinko.ca.clock import SystemClock

    awkward = 'a "quoted", comma\nnew line \u2028 sep \\ back 山田 \x01 ctl'
    # Issue 10: sealed at the clock's time; a checkpoint dated before the audit signer's validity is refused.
    with home.store.transaction("tester", to_text(clock.now())) as tx:
        tx.append_event("test.awkward", serial="AB", customer="C,1", details={"note": awkward, "k": [1, "x"]})
    assert audit.verify_database(home).ok
    for fmt in ("csv", "jsonl"):
        stored = list(home.store.ledger_events())
        out = tmp_path / f"awkward.{fmt}"
        audit.export(home, out, fmt=fmt, actor="tester", now=SystemClock().now())
        with open(out, encoding="utf-8", newline="") as handle:
            assert list(ledger.read_export(handle)) == stored
        assert audit.verify_export(out, home.public_dir / "ca" / "root.pem").ok  # issue 10: the auditor's root


def test_a_misspelt_action_is_refused_not_exported_empty(home: Home, history: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "ledger.csv"
    result = run_kinko(
        "--home", home.path, "ledger", "export", "--format", "csv", "--out", out, "--action", "certificate.revokd"
    )
    assert result.returncode == 1 and "no event in the ledger has the action 'certificate.revokd'" in result.stderr
    assert list(tmp_path.glob("ledger.csv*")) == []
    # An action the replay knows is fine even before it first happens; so is one some event carries.
    for action in ("customer.terminated", "ledger.exported"):
        export(home, tmp_path / f"{action}.csv", "--format", "csv", "--action", action)


def test_since_takes_a_date_alone(home: Home, history: dict[str, Any], tmp_path: Path) -> None:
    answer = export(home, tmp_path / "day.csv", "--format", "csv", "--since", "2000-01-01")
    assert answer["rows"] == len(events(home)) - 1  # every event but this export's own
