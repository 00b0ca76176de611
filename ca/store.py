"""The storage authority: schema, migrations, transactions and every query Kinko runs.

Only this module speaks SQL. State changes happen inside `Store.transaction()`, whose
`Writer` appends the ledger event in the same SQLite transaction as the change, so a
crash leaves either both or neither. Methods are named for what they do, so that a
PostgreSQL backend can implement the same interface later.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ca import ledger
from ca.errors import Conflict, StorageError

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class CertificateRecord:
    """One row of the serial registry."""

    serial: str
    issuer: str
    profile: str
    subject: str
    subscriber_id: str | None
    not_before: str
    not_after: str
    status: str
    issued_at: str
    fingerprint_sha256: str
    spki_sha256: str
    der: bytes
    revoked_at: str | None = None
    revocation_reason: str | None = None
    invalidity_date: str | None = None
    reported_at: str | None = None
    hold_origin: str | None = None


_CERT_COLUMNS = ", ".join(f.name for f in fields(CertificateRecord))


def _schema(conn: sqlite3.Connection) -> None:
    import sqlite_utils  # imported here: it is slow to import and only schema work needs it

    db = sqlite_utils.Database(conn)
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["certificates"].create(
        {
            "serial": str,
            "issuer": str,
            "profile": str,
            "subject": str,
            "subscriber_id": str,
            "not_before": str,
            "not_after": str,
            "status": str,
            "issued_at": str,
            "fingerprint_sha256": str,
            "spki_sha256": str,
            "der": bytes,
            "revoked_at": str,
            "revocation_reason": str,
            "invalidity_date": str,
            "reported_at": str,
            "hold_origin": str,
        },
        pk="serial",
        not_null=["issuer", "profile", "subject", "not_before", "not_after", "status", "spki_sha256"],
    )
    db["certificates"].create_index(["fingerprint_sha256"], unique=True)
    # (spki_sha256, status, not_after) so the duplicate-key check is an index lookup, not a scan of valid rows.
    db["certificates"].create_index(["spki_sha256", "status", "not_after"])
    db["certificates"].create_index(["status", "not_after"])
    db["certificates"].create_index(["subscriber_id"])
    db["certificates"].create_index(["issuer", "revoked_at"])
    # The CA's current certificates and delegated signers by role: root, issuing, ocsp:issuing, ...
    db["authorities"].create({"role": str, "serial": str, "key_file": str}, pk="role")
    db["customers"].create(
        {"id": str, "name": str, "status": str, "created_at": str, "status_changed_at": str, "terminate_at": str},
        pk="id",
        not_null=["name", "status", "created_at"],
    )
    db["subscribers"].create(
        {"id": str, "customer_id": str, "role": str, "name": str, "status": str, "created_at": str},
        pk="id",
        foreign_keys=[("customer_id", "customers", "id")],
        not_null=["customer_id", "role", "name", "status", "created_at"],
    )
    db["enrollments"].create(
        {
            "id": int,
            "subscriber_id": str,
            "kind": str,
            "code_hash": str,
            "created_at": str,
            "expires_at": str,
            "created_by": str,
            "redeemed_at": str,
            "redeemed_serial": str,
            "failures": int,
            "locked_until": str,
        },
        pk="id",
        foreign_keys=[("subscriber_id", "subscribers", "id")],
        not_null=["subscriber_id", "kind", "code_hash", "created_at", "expires_at"],
        defaults={"failures": 0},
    )
    db["enrollments"].create_index(["code_hash"], unique=True)
    db["enrollments"].create_index(["subscriber_id"])
    db["crls"].create(
        {
            "id": int,
            "issuer": str,
            "number": int,
            "kind": str,
            "base_number": int,
            "this_update": str,
            "next_update": str,
            "entries": int,
            "state": str,
            "published_at": str,
        },
        pk="id",
        not_null=["issuer", "number", "kind", "state"],
    )
    db["crls"].create_index(["issuer", "number"], unique=True)
    db["ocsp_responses"].create(
        {"serial": str, "issuer": str, "der": bytes, "this_update": str, "next_update": str, "produced_at": str},
        pk="serial",
    )
    db["officers"].create({"login": str, "role": str, "added_at": str, "added_by": str}, pk="login")
    db["incidents"].create(
        {
            "id": int,
            "subscriber_id": str,
            "serial": str,
            "kind": str,
            "received_at": str,
            "suspected_since": str,
            "officer": str,
            "revoked_at": str,
            "suspended_customer": int,
            "note": str,
        },
        pk="id",
    )
    db["ledger"].create(
        {
            "seq": int,
            "time": str,
            "actor": str,
            "action": str,
            "serial": str,
            "subscriber": str,
            "customer": str,
            "details": str,
            "prev_hash": str,
            "hash": str,
        },
        pk="seq",
        not_null=["time", "actor", "action", "serial", "subscriber", "customer", "details", "prev_hash", "hash"],
    )
    db["ledger"].create_index(["time"])
    db["ledger"].create_index(["action"])
    db["checkpoints"].create({"seq": int, "head_hash": str, "time": str, "signature": bytes, "signer": str}, pk="seq")
    # The ledger is append-only by construction; these triggers make an accidental
    # UPDATE or DELETE fail loudly instead of silently breaking the chain.
    conn.execute(
        "CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger "
        "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END"
    )
    conn.execute(
        "CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger "
        "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END"
    )
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    try:
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=30)
        else:
            conn = sqlite3.connect(path, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before the command says it is done.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open database {path}: {exc}") from None
    return conn


class Store:
    """The Kinko database: read queries here, writes through `transaction()`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def create(cls, path: Path) -> Store:
        """Creates a new database with the current schema."""
        if path.exists():
            raise Conflict(f"database {path} already exists")
        conn = _connect(path, readonly=False)
        conn.execute("BEGIN IMMEDIATE")
        try:
            _schema(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        path.chmod(0o600)
        return cls(conn, path)

    @classmethod
    def open(cls, path: Path, readonly: bool = False) -> Store:
        """Opens an existing database; the read-only view is what the responder and auditors use."""
        if not path.exists():
            raise StorageError(f"database {path} is missing")
        store = cls(_connect(path, readonly), path)
        version = store._scalar("SELECT value FROM meta WHERE key = 'schema_version'")
        if version != str(SCHEMA_VERSION):
            raise StorageError(f"database schema version {version} is not {SCHEMA_VERSION}")
        return store

    def close(self) -> None:
        """Closes the connection."""
        self._conn.close()

    @contextmanager
    def transaction(self, actor: str, time: str) -> Iterator[Writer]:
        """Runs one state change and its ledger events as a single transaction."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot start a transaction: {exc}") from None
        writer = Writer(self._conn, actor, time)
        try:
            yield writer
            writer.check_complete()
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    # -- reads ---------------------------------------------------------------

    def certificate(self, serial: str) -> CertificateRecord | None:
        """The registry row for a serial (canonical hex), or None."""
        row = self._conn.execute(
            f"SELECT {_CERT_COLUMNS} FROM certificates WHERE serial = ? AND status != 'reserved'", (serial,)
        ).fetchone()
        return CertificateRecord(*row) if row else None

    def certificates(
        self,
        statuses: tuple[str, ...] | None = None,
        limit: int | None = None,
        expired: bool | None = None,
        now: str | None = None,
    ) -> list[CertificateRecord]:
        """Registry rows, newest first, filtered by stored status and by expiry at `now`."""
        where = ["status != 'reserved'"]
        params: list[Any] = []
        if statuses:
            where.append(f"status IN ({', '.join('?' for _ in statuses)})")
            params.extend(statuses)
        if expired is not None and now is not None:
            where.append("not_after < ?" if expired else "not_after >= ?")
            params.append(now)
        sql = (
            f"SELECT {_CERT_COLUMNS} FROM certificates WHERE {' AND '.join(where)} ORDER BY issued_at DESC, rowid DESC"
        )
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [CertificateRecord(*row) for row in self._conn.execute(sql, params)]

    def authority(self, role: str) -> tuple[str, str] | None:
        """(serial, key file) of the CA certificate or signer in a role, or None."""
        row = self._conn.execute("SELECT serial, key_file FROM authorities WHERE role = ?", (role,)).fetchone()
        return (row[0], row[1]) if row else None

    def count(self, table: str) -> int:
        """Rows in one of Kinko's tables (for status displays and tests)."""
        if table not in _TABLES:
            raise StorageError(f"no table {table!r}")
        return int(self._scalar(f"SELECT COUNT(*) FROM {table}"))

    def ledger_events(self, after_seq: int = 0) -> Iterator[ledger.Event]:
        """Streams ledger events in seq order."""
        cursor = self._conn.execute(
            "SELECT seq, time, actor, action, serial, subscriber, customer, details, prev_hash, hash "
            "FROM ledger WHERE seq > ? ORDER BY seq",
            (after_seq,),
        )
        for row in cursor:
            yield ledger.Event(*row)

    def _scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        row = self._conn.execute(sql, params).fetchone()
        return row[0] if row else None


_TABLES = (
    "certificates",
    "authorities",
    "customers",
    "subscribers",
    "enrollments",
    "crls",
    "ocsp_responses",
    "officers",
    "incidents",
    "ledger",
    "checkpoints",
)


class Writer:
    """The write side of one transaction; every change it makes needs a ledger event."""

    def __init__(self, conn: sqlite3.Connection, actor: str, time: str) -> None:
        self._conn = conn
        self.actor = actor
        self.time = time
        self._changes = 0
        self._events = 0

    def check_complete(self) -> None:
        """Refuses to commit a change that has no ledger event."""
        if self._changes and not self._events:
            raise StorageError("internal error: a state change without a ledger event was not committed")

    def append_event(
        self,
        action: str,
        *,
        serial: str = "",
        subscriber: str = "",
        customer: str = "",
        details: dict[str, Any] | None = None,
    ) -> ledger.Event:
        """Appends one event to the chain, linked to the current head."""
        head = self._conn.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (head[0] + 1, head[1]) if head else (1, ledger.GENESIS)
        text = ledger.encode_details(details)
        digest = ledger.chain_hash(
            prev, ledger.canonical(seq, self.time, self.actor, action, serial, subscriber, customer, text)
        )
        self._conn.execute(
            "INSERT INTO ledger (seq, time, actor, action, serial, subscriber, customer, details, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, self.time, self.actor, action, serial, subscriber, customer, text, prev, digest),
        )
        self._events += 1
        return ledger.Event(seq, self.time, self.actor, action, serial, subscriber, customer, text, prev, digest)

    def reserve_serial(self, serial: str, issuer: str) -> bool:
        """Claims a serial before signing; False if it was ever used (the caller draws again)."""
        try:
            self._conn.execute(
                "INSERT INTO certificates (serial, issuer, profile, subject, not_before, not_after, status, "
                "spki_sha256) VALUES (?, ?, '', '', '', '', 'reserved', '')",
                (serial, issuer),
            )
        except sqlite3.IntegrityError:
            return False
        self._changes += 1
        return True

    def record_certificate(self, record: CertificateRecord) -> None:
        """Fills in a reserved serial with the signed certificate."""
        values = {f.name: getattr(record, f.name) for f in fields(CertificateRecord) if f.name != "serial"}
        assignments = ", ".join(f"{name} = ?" for name in values)
        cursor = self._conn.execute(
            f"UPDATE certificates SET {assignments} WHERE serial = ? AND status = 'reserved'",
            (*values.values(), record.serial),
        )
        if cursor.rowcount != 1:
            raise StorageError(f"serial {record.serial} was not reserved before recording")
        self._changes += 1

    def active_certificate_with_key(self, spki_sha256: str, now: str) -> str | None:
        """The serial of an unexpired, unrevoked certificate holding this public key, if any."""
        row = self._conn.execute(
            "SELECT serial FROM certificates WHERE spki_sha256 = ? AND status IN ('valid', 'held') "
            "AND not_after >= ? LIMIT 1",
            (spki_sha256, now),
        ).fetchone()
        return row[0] if row else None

    def set_authority(self, role: str, serial: str, key_file: str) -> None:
        """Makes a certificate the current one for a CA role or delegated signer."""
        self._conn.execute(
            "INSERT INTO authorities (role, serial, key_file) VALUES (?, ?, ?) "
            "ON CONFLICT(role) DO UPDATE SET serial = excluded.serial, key_file = excluded.key_file",
            (role, serial, key_file),
        )
        self._changes += 1

    def add_officer(self, login: str, role: str, added_by: str) -> None:
        """Registers an operator account with a role."""
        try:
            self._conn.execute(
                "INSERT INTO officers (login, role, added_at, added_by) VALUES (?, ?, ?, ?)",
                (login, role, self.time, added_by),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"officer {login!r} already exists") from None
        self._changes += 1
