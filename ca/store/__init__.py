"""The storage authority: schema, migrations, transactions and every query Kinko runs.

Only this module speaks SQL. State changes happen inside `Store.transaction()`, whose
`Writer` appends the ledger event in the same SQLite transaction as the change, so a
crash leaves either both or neither. Methods are named for what they do, so that a
PostgreSQL backend can implement the same interface later.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from kinko.ca import ledger
from kinko.ca.errors import Conflict, StorageError
from kinko.ca.store.accounts import AccountReads
from kinko.ca.store.records import CERT_COLUMNS as _CERT_COLUMNS
from kinko.ca.store.records import CRL_COLUMNS as _CRL_COLUMNS
from kinko.ca.store.records import (
    CertificateRecord,
    CRLRecord,
    CustomerRecord,
    EnrollmentRecord,
    IncidentRecord,
    PresignedResponse,
    SubscriberRecord,
)
from kinko.ca.store.schema import SCHEMA_VERSION, create_schema
from kinko.ca.store.writer import Writer

__all__ = [
    "SCHEMA_VERSION",
    "CRLRecord",
    "CertificateRecord",
    "CustomerRecord",
    "EnrollmentRecord",
    "IncidentRecord",
    "PresignedResponse",
    "Store",
    "SubscriberRecord",
    "Writer",
]

BUSY_TIMEOUT_MS = 30_000


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


Sealer = Callable[[int, str, str], tuple[bytes, str]]


class Store(AccountReads):
    """The Kinko database: read queries here, writes through `transaction()`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        # Signs (seq, head hash, time) so that an event appended behind Kinko's back, or the
        # tail cut off, shows at verification: every transaction ends with a checkpoint.
        self.sealer: Sealer | None = None

    @classmethod
    def create(cls, path: Path) -> Store:
        """Creates a new database with the current schema."""
        if path.exists():
            raise Conflict(f"database {path} already exists")
        conn = _connect(path, readonly=False)
        conn.execute("BEGIN IMMEDIATE")
        try:
            create_schema(conn)
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
            if writer.head is not None and self.sealer is not None:
                self._refuse_unsealed_events(writer.first_seq)
                signature, signer = self.sealer(writer.head.seq, writer.head.hash, time)
                self._conn.execute(
                    "INSERT INTO checkpoints (seq, head_hash, time, signature, signer) VALUES (?, ?, ?, ?, ?)",
                    (writer.head.seq, writer.head.hash, time, signature, signer),
                )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def _refuse_unsealed_events(self, first_seq: int) -> None:
        # Every Kinko transaction that appends events ends with a checkpoint, so the last one
        # must sit right before this transaction's first event. Anything else means events
        # were added or removed behind Kinko's back: sealing now would launder them.
        last = self._conn.execute("SELECT MAX(seq) FROM checkpoints").fetchone()[0] or 0
        if last != first_seq - 1:
            raise StorageError(
                f"the ledger was changed outside Kinko (last signed checkpoint {last}, next event {first_seq}); "
                "nothing was written: run `kinko ledger verify`"
            )

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

    @contextmanager
    def reading(self) -> Iterator[Store]:
        """Runs reads against one consistent snapshot of the database."""
        self._conn.execute("BEGIN")
        try:
            yield self
        finally:
            self._conn.execute("COMMIT")

    def ledger_head(self) -> tuple[int, str]:
        """(seq, hash) of the newest ledger event; (0, genesis) when empty."""
        row = self._conn.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, ledger.GENESIS)

    def crl_entries(self, issuer: str, expired_before: str) -> Iterator[tuple[str, str, str | None, str | None]]:
        """(serial, revoked_at, reason, invalidity_date) of every revoked or held certificate
        of an issuer that expired no earlier than `expired_before`."""
        return self._conn.execute(
            "SELECT serial, revoked_at, revocation_reason, invalidity_date FROM certificates "
            "WHERE issuer = ? AND status IN ('revoked', 'held') AND not_after >= ?",
            (issuer, expired_before),
        )

    def crl_delta_entries(
        self, issuer: str, after_seq: int, expired_before: str
    ) -> Iterator[tuple[str, str, str | None, str | None]]:
        """Entries for a delta CRL: certificates whose status changed after ledger seq `after_seq`;
        released holds come back as remove-from-crl."""
        return self._conn.execute(
            "SELECT serial, "
            "CASE WHEN status = 'valid' THEN status_changed_at ELSE revoked_at END, "
            "CASE WHEN status = 'valid' THEN 'remove-from-crl' ELSE revocation_reason END, "
            "CASE WHEN status = 'valid' THEN NULL ELSE invalidity_date END "
            "FROM certificates WHERE issuer = ? AND changed_seq > ? AND not_after >= ?",
            (issuer, after_seq, expired_before),
        )

    def latest_crl(self, issuer: str, kind: str) -> CRLRecord | None:
        """The newest published CRL of an issuer and kind ('full' or 'delta')."""
        row = self._conn.execute(
            f"SELECT {_CRL_COLUMNS} FROM crls WHERE issuer = ? AND kind = ? AND state = 'published' "
            "ORDER BY number DESC LIMIT 1",
            (issuer, kind),
        ).fetchone()
        return CRLRecord(*row) if row else None

    def crl_numbers(self, issuer: str) -> list[tuple[int, str]]:
        """Every (number, state) an issuer has used, in order."""
        return list(self._conn.execute("SELECT number, state FROM crls WHERE issuer = ? ORDER BY number", (issuer,)))

    def reserve_crl_number(self, issuer: str, kind: str, base_number: int | None, time: str) -> int:
        """Claims the next CRL number in a committed transaction of its own, before signing:
        a crash after this burns the number, so no number is ever used twice."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            last = self._conn.execute("SELECT MAX(number) FROM crls WHERE issuer = ?", (issuer,)).fetchone()[0]
            number = (last or 0) + 1
            self._conn.execute(
                "INSERT INTO crls (issuer, number, kind, base_number, state, published_at) "
                "VALUES (?, ?, ?, ?, 'reserved', ?)",
                (issuer, number, kind, base_number, time),
            )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return number

    def ocsp_response(self, serial: str, hash_algorithm: str) -> PresignedResponse | None:
        """The pre-signed response for a certificate and CertID hash, if there is one."""
        row = self._conn.execute(
            "SELECT der, this_update, next_update, issuer FROM ocsp_responses WHERE serial = ? AND hash_algorithm = ?",
            (serial, hash_algorithm),
        ).fetchone()
        return PresignedResponse(*row) if row else None

    def revocation_status(self, serial: str) -> tuple[str, str, str | None, str | None] | None:
        """(issuer, status, revoked_at, reason) of a certificate, for answering OCSP on demand."""
        row = self._conn.execute(
            "SELECT issuer, status, revoked_at, revocation_reason FROM certificates "
            "WHERE serial = ? AND status != 'reserved'",
            (serial,),
        ).fetchone()
        return (row[0], row[1], row[2], row[3]) if row else None

    def certificates_needing_responses(self, now: str, refresh_before: str) -> list[CertificateRecord]:
        """Unexpired certificates whose pre-signed SHA-1 response is missing or was signed
        before `refresh_before` (past half its lifetime)."""
        rows = self._conn.execute(
            f"SELECT {', '.join('c.' + f.name for f in fields(CertificateRecord))} FROM certificates c "
            "LEFT JOIN ocsp_responses r ON r.serial = c.serial AND r.hash_algorithm = 'sha1' "
            "WHERE c.status != 'reserved' AND c.not_after >= ? AND (r.serial IS NULL OR r.this_update <= ?)",
            (now, refresh_before),
        )
        return [CertificateRecord(*row) for row in rows]

    def unexpired_certificates(self, issuer: str, now: str) -> list[CertificateRecord]:
        """Every certificate of an issuer that has not expired yet."""
        rows = self._conn.execute(
            f"SELECT {_CERT_COLUMNS} FROM certificates WHERE issuer = ? AND status != 'reserved' AND not_after >= ?",
            (issuer, now),
        )
        return [CertificateRecord(*row) for row in rows]

    def data_version(self) -> int:
        """A number that changes whenever another connection commits (SQLite PRAGMA data_version)."""
        return int(self._scalar("PRAGMA data_version"))

    def authorities(self) -> dict[str, tuple[str, str]]:
        """role -> (serial, key file) for every CA role and delegated signer."""
        return {
            row[0]: (row[1], row[2]) for row in self._conn.execute("SELECT role, serial, key_file FROM authorities")
        }

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

    def ledger_export_lines(
        self, fmt: str, since: str | None, until: str | None, customer: str | None, action: str | None
    ) -> Iterator[str]:
        """Export lines in ledger.py's format (CSV rows, or JSON Lines), built by SQLite in seq order,
        optionally within [since, until], of one customer or action: encoding each row in Python
        was three times slower than the sqlite3 CLI."""
        where, params = ["1 = 1"], []
        for condition, value in (
            ("time >= ?", since),
            ("time <= ?", until),
            ("customer = ?", customer),
            ("action = ?", action),
        ):
            if value is not None:
                where.append(condition)
                params.append(value)
        if fmt == "csv":
            fields = [
                f"""'"' || replace({c}, '"', '""') || '"'""" if c in ledger.CSV_QUOTED else c for c in ledger.COLUMNS
            ]
            line = "printf('" + ",".join("%s" for _ in fields) + "', " + ", ".join(fields) + ")"
        else:
            line = "json_object(" + ", ".join(f"'{c}', {c}" for c in ledger.COLUMNS) + ")"
        cursor = self._conn.execute(
            f"SELECT {line} || char(10) FROM ledger WHERE {' AND '.join(where)} ORDER BY seq", params
        )
        for (text,) in cursor:
            yield text

    def ledger_chain(self) -> Iterator[tuple[int, str, str, str]]:
        """(seq, prev_hash, hash, canonical JSON) of every event in seq order, the canonical text built by
        SQLite's json_array; a row it encodes differently from ledger.canonical is rechecked in Python."""
        return self._conn.execute(
            "SELECT seq, prev_hash, hash, json_array(seq, time, actor, action, serial, subscriber, customer, details) "
            "FROM ledger ORDER BY seq"
        )

    def ledger_event(self, seq: int) -> ledger.Event | None:
        """One ledger event by seq."""
        row = self._conn.execute(
            "SELECT seq, time, actor, action, serial, subscriber, customer, details, prev_hash, hash "
            "FROM ledger WHERE seq = ?",
            (seq,),
        ).fetchone()
        return ledger.Event(*row) if row else None

    def audit_signers(self) -> set[str]:
        """Serials of every certificate the CA made its ledger audit signer (by the ledger's own record)."""
        return {row[0] for row in self._conn.execute("SELECT serial FROM ledger WHERE action = 'audit.signer-issued'")}

    def checkpoints(self) -> list[tuple[int, str, str, bytes, str]]:
        """(seq, head_hash, time, signature, signer serial) of every checkpoint, in seq order."""
        try:
            return list(
                self._conn.execute("SELECT seq, head_hash, time, signature, signer FROM checkpoints ORDER BY seq")
            )
        except sqlite3.Error as exc:
            raise StorageError(f"the checkpoints table cannot be read: {exc}") from None

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
