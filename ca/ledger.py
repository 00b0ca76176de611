"""The ledger's event chain: canonical encoding, hashing and verification. Pure.

Each event's hash is SHA-256 over the previous hash (32 raw bytes) followed by the
UTF-8 JSON array [seq, time, actor, action, serial, subscriber, customer, details],
written with no spaces and non-ASCII kept as is; `details` is itself a JSON text with
sorted keys. An auditor can recompute the chain from an export with a few lines.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, NamedTuple

from kinko.ca.i18n import Phrase

GENESIS = "0" * 64


class Event(NamedTuple):
    """One ledger row as stored and exported (a tuple: database rows map straight in)."""

    seq: int
    time: str
    actor: str
    action: str
    serial: str
    subscriber: str
    customer: str
    details: str
    prev_hash: str
    hash: str


def encode_details(details: dict[str, Any] | None) -> str:
    """Canonical JSON text for an event's details: sorted keys, no spaces, UTF-8."""
    return json.dumps(details or {}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def canonical(
    seq: int, time: str, actor: str, action: str, serial: str, subscriber: str, customer: str, details: str
) -> bytes:
    """The bytes an event's hash covers (besides the previous hash)."""
    row = [seq, time, actor, action, serial, subscriber, customer, details]
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def chain_hash(prev_hash: str, encoded: bytes) -> str:
    """SHA-256 over the previous hash's bytes and this event's canonical encoding, as hex."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + encoded).hexdigest()


def event_hash(prev_hash: str, event: Event) -> str:
    """Recomputes an event's hash from its fields."""
    encoded = canonical(
        event.seq,
        event.time,
        event.actor,
        event.action,
        event.serial,
        event.subscriber,
        event.customer,
        event.details,
    )
    return chain_hash(prev_hash, encoded)


@dataclass(frozen=True)
class ChainProblem:
    """The first place a chain does not hold."""

    seq: int
    finding: Phrase

    @property
    def what(self) -> str:
        """The finding in English, as the JSON and the logs keep it."""
        return str(self.finding)


BROKEN_LINK = Phrase("broken link: prev_hash does not match the previous event's hash")
EDITED = Phrase("edited: the event's fields do not match its hash")


def _missing(expected: int, found: int) -> Phrase:
    return Phrase("missing: seq {expected} is absent (next is {found})", {"expected": expected, "found": found})


def _reordered(seq: int, expected: int) -> Phrase:
    return Phrase("reordered: seq {seq} appears after {previous}", {"seq": seq, "previous": expected - 1})


def verify_chain(events: Iterable[Event], start_seq: int = 1, start_hash: str = GENESIS) -> ChainProblem | None:
    """Walks events in order and names the first one that is missing, reordered or edited."""
    expected_seq = start_seq
    prev = start_hash
    for event in events:
        if event.seq != expected_seq:
            if event.seq > expected_seq:
                return ChainProblem(expected_seq, _missing(expected_seq, event.seq))
            return ChainProblem(event.seq, _reordered(event.seq, expected_seq))
        if event.prev_hash != prev:
            return ChainProblem(event.seq, BROKEN_LINK)
        if event_hash(prev, event) != event.hash:
            return ChainProblem(event.seq, EDITED)
        prev = event.hash
        expected_seq += 1
    return None


@dataclass
class ChainWalk:
    """What walking the stored chain found: the first problem, how far it got, and the hashes
    at the seqs asked for (the checkpoints)."""

    problem: ChainProblem | None = None
    count: int = 0
    last_seq: int = 0
    heads: dict[int, str] | None = None


def walk_encoded(
    rows: Iterable[tuple[int, str, str, str]],
    recheck: Callable[[int], Event | None],
    wanted: set[int],
) -> ChainWalk:
    """verify_chain for rows whose canonical encoding the database already built:
    (seq, prev_hash, hash, canonical JSON text). A row whose hash does not match is re-encoded
    with `canonical` (the definition) before it is called edited, so the database's JSON can
    only cost time, never raise a false alarm."""
    walk = ChainWalk(heads={})
    assert walk.heads is not None
    prev, prev_bytes = GENESIS, bytes(32)
    sha256 = hashlib.sha256
    for seq, prev_hash, digest, encoded in rows:
        expected = walk.last_seq + 1
        if seq != expected:
            walk.problem = (
                ChainProblem(expected, _missing(expected, seq))
                if seq > expected
                else ChainProblem(seq, _reordered(seq, expected))
            )
            return walk
        if prev_hash != prev:
            walk.problem = ChainProblem(seq, BROKEN_LINK)
            return walk
        if sha256(prev_bytes + encoded.encode("utf-8")).hexdigest() != digest:
            event = recheck(seq)
            if event is None or event_hash(prev, event) != digest:
                walk.problem = ChainProblem(seq, EDITED)
                return walk
        if seq in wanted:
            walk.heads[seq] = digest
        prev, prev_bytes = digest, bytes.fromhex(digest)
        walk.last_seq = seq
        walk.count += 1
    return walk


def checkpoint_message(seq: int, head_hash: str, time: str) -> bytes:
    """The bytes a checkpoint signature covers: the chain's head at a moment."""
    return f"kinko-ledger-checkpoint\n{seq}\n{head_hash}\n{time}\n".encode("ascii")


# -- export formats ---------------------------------------------------------------------------------

COLUMNS = ("seq", "time", "actor", "action", "serial", "subscriber", "customer", "details", "prev_hash", "hash")
# The export format, which the store renders in SQL for speed. CSV: a header of COLUMNS, then
# one line per event with these fields in double quotes (quotes doubled), the others bare:
# they are Kinko's own tokens (seq, times, action names, hex serials and hashes), which never
# hold a comma or a quote. JSON Lines: one object per event with COLUMNS as keys, details as text.
CSV_QUOTED = ("actor", "subscriber", "customer", "details")
CSV_HEADER = ",".join(COLUMNS) + "\n"
# A quoted field whose stored value starts with one of these is written with a leading ' so a
# spreadsheet shows it rather than running it as a formula (OWASP); a value starting with '
# gets one too, so the mark is always removable. The chain hashes the stored values:
# read_export (and anyone recomputing the hashes from the CSV) removes one leading '.
CSV_MARKED = ("=", "+", "-", "@", "\t", "\r", "'")


def export_line(fmt: str, event: Event) -> str:
    """One event in the export format, encoded in Python: what SQLite's SQL renders (a backend
    that cannot render it in SQL uses this; the tests hold the two byte-identical)."""
    if fmt != "csv":
        return json.dumps(dict(zip(COLUMNS, event, strict=True)), ensure_ascii=False, separators=(",", ":")) + "\n"
    fields = []
    for name, value in zip(COLUMNS, event, strict=True):
        if name in CSV_QUOTED:
            text = str(value)
            mark = "'" if text[:1] in CSV_MARKED and text else ""
            fields.append('"' + mark + text.replace('"', '""') + '"')
        else:
            fields.append(str(value))
    return ",".join(fields) + "\n"


def read_export(handle: IO[str]) -> Iterator[Event]:
    """Reads a CSV or JSON Lines export back into events (the format is told by its first character)."""
    import csv

    first = handle.read(1)
    if first == "\ufeff":  # the --excel byte order mark
        first = handle.read(1)
    if first == "{":
        for line in _prepend(first, handle):
            if line.strip():
                data = json.loads(line)
                yield Event(**{**data, "seq": int(data["seq"])})
        return
    reader = csv.reader(_prepend(first, handle))
    header = next(reader, None)
    if header is None or tuple(header) != COLUMNS:
        raise ValueError("not a Kinko ledger export: the CSV header is not " + ",".join(COLUMNS))
    marked = [COLUMNS.index(name) for name in CSV_QUOTED]
    for row in reader:
        for index in marked:
            if row[index].startswith("'"):
                row[index] = row[index][1:]
        yield Event(int(row[0]), *row[1:])


def _prepend(first: str, handle: IO[str]) -> Iterator[str]:
    lines = iter(handle)
    yield first + next(lines, "")
    yield from lines
