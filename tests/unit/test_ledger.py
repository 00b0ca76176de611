"""Ledger hashing: canonical encoding, chaining, and naming the first bad event."""

import hashlib
import json

from kinko.ca import ledger


def make_chain(count: int) -> list[ledger.Event]:
    events = []
    prev = ledger.GENESIS
    for seq in range(1, count + 1):
        details = ledger.encode_details({"n": seq, "名前": "山田"})
        encoded = ledger.canonical(seq, "2026-11-25T00:00:00Z", "officer", "test.event", "AB", "", "", details)
        digest = ledger.chain_hash(prev, encoded)
        events.append(
            ledger.Event(seq, "2026-11-25T00:00:00Z", "officer", "test.event", "AB", "", "", details, prev, digest)
        )
        prev = digest
    return events


def test_canonical_encoding_is_plain_json_an_auditor_can_rebuild() -> None:
    details = ledger.encode_details({"b": 1, "a": "太郎"})
    assert details == '{"a":"太郎","b":1}'
    encoded = ledger.canonical(7, "2026-11-25T00:00:00Z", "alice", "x.y", "0A", "S1", "C1", details)
    assert (
        encoded
        == json.dumps(
            [7, "2026-11-25T00:00:00Z", "alice", "x.y", "0A", "S1", "C1", details],
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
    )
    assert ledger.chain_hash(ledger.GENESIS, encoded) == hashlib.sha256(bytes(32) + encoded).hexdigest()


def test_intact_chain_verifies() -> None:
    assert ledger.verify_chain(make_chain(5)) is None


def test_edit_is_named() -> None:
    events = make_chain(5)
    events[2] = events[2]._replace(actor="mallory")
    problem = ledger.verify_chain(events)
    assert problem is not None and problem.seq == 3 and "edited" in problem.what


def test_missing_event_is_named() -> None:
    events = make_chain(5)
    del events[1]
    problem = ledger.verify_chain(events)
    assert problem is not None and problem.seq == 2 and "missing" in problem.what


def test_reorder_is_named() -> None:
    events = make_chain(5)
    events[1], events[2] = events[2], events[1]
    problem = ledger.verify_chain(events)
    assert problem is not None and problem.seq == 2


def test_recomputed_forgery_breaks_the_next_link() -> None:
    events = make_chain(4)
    forged = events[1]._replace(details=ledger.encode_details({"forged": True}))
    forged = forged._replace(hash=ledger.event_hash(forged.prev_hash, forged))
    events[1] = forged
    problem = ledger.verify_chain(events)
    assert problem is not None and problem.seq == 3 and "prev_hash" in problem.what


def test_the_python_export_encoding_is_byte_for_byte_what_sqlite_renders(tmp_path) -> None:
    """ledger.export_line (the PostgreSQL store's) against SQLite's SQL, on the values that need care:
    spreadsheet leads, quotes, control characters, backslashes, non-ASCII and empty text."""
    import sqlite3

    from kinko.ca.store.sqlite import SQLiteStore

    values = [
        "plain",
        "=cmd",
        "'q",
        'a"b',
        "-1",
        "@x",
        "+1",
        "\ttab",
        "\rcr",
        "nl\nx",
        "\x01",
        "日本語",
        "\\",
        "",
        "\u2028",
    ]
    conn = sqlite3.connect(tmp_path / "l.db")
    conn.execute(f"CREATE TABLE ledger ({', '.join(ledger.COLUMNS)})")
    rows = [
        (i, "2026-01-01T00:00:00Z", v, "a.b", "01", v, v, json.dumps({"k": v}, ensure_ascii=False), "0" * 64, "1" * 64)
        for i, v in enumerate(values, 1)
    ]
    conn.executemany("INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    store = SQLiteStore(conn, tmp_path / "l.db")
    for fmt in ("csv", "jsonl"):
        rendered = list(store.ledger_export_lines(fmt, None, None, None, None))
        assert rendered == [ledger.export_line(fmt, ledger.Event(*row)) for row in rows], fmt
