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

from ca import ledger
from ca.errors import Conflict, StorageError
from ca.store.records import CERT_COLUMNS as _CERT_COLUMNS
from ca.store.records import CRL_COLUMNS as _CRL_COLUMNS
from ca.store.records import (
    CUSTOMER_COLUMNS,
    ENROLLMENT_COLUMNS,
    INCIDENT_COLUMNS,
    SUBSCRIBER_COLUMNS,
    CertificateRecord,
    CRLRecord,
    CustomerRecord,
    EnrollmentRecord,
    IncidentRecord,
    PresignedResponse,
    SubscriberRecord,
)
from ca.store.schema import SCHEMA_VERSION, create_schema

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


class AccountReads:
    """Queries about customers, subscribers, enrollments and incidents; Store and Writer share them."""

    _conn: sqlite3.Connection

    def customer(self, customer_id: str) -> CustomerRecord | None:
        """A customer by id."""
        row = self._conn.execute(f"SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = ?", (customer_id,)).fetchone()
        return CustomerRecord(*row) if row else None

    def customers(self) -> list[CustomerRecord]:
        """Every customer, by id."""
        return [CustomerRecord(*r) for r in self._conn.execute(f"SELECT {CUSTOMER_COLUMNS} FROM customers ORDER BY id")]

    def subscriber(self, subscriber_id: str) -> SubscriberRecord | None:
        """A subscriber by id."""
        row = self._conn.execute(
            f"SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE id = ?", (subscriber_id,)
        ).fetchone()
        return SubscriberRecord(*row) if row else None

    def subscribers(self, customer_id: str) -> list[SubscriberRecord]:
        """A customer's subscribers, administrators first."""
        rows = self._conn.execute(
            f"SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE customer_id = ? ORDER BY role, id", (customer_id,)
        )
        return [SubscriberRecord(*r) for r in rows]

    def enrollment_by_lookup(self, lookup: str) -> EnrollmentRecord | None:
        """The enrollment a code's public part names."""
        row = self._conn.execute(f"SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE lookup = ?", (lookup,)).fetchone()
        return EnrollmentRecord(*row) if row else None

    def enrollments(self, subscriber_id: str) -> list[EnrollmentRecord]:
        """A subscriber's enrollments, newest first."""
        rows = self._conn.execute(
            f"SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE subscriber_id = ? ORDER BY id DESC", (subscriber_id,)
        )
        return [EnrollmentRecord(*r) for r in rows]

    def open_enrollments(self, expiring_before: str, now: str) -> list[EnrollmentRecord]:
        """Unredeemed enrollments still usable at `now` that expire before `expiring_before`."""
        rows = self._conn.execute(
            f"SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE redeemed_at IS NULL AND closed_at IS NULL "
            "AND expires_at >= ? AND expires_at <= ? ORDER BY expires_at",
            (now, expiring_before),
        )
        return [EnrollmentRecord(*r) for r in rows]

    def lapsed_enrollments(self, now: str) -> list[EnrollmentRecord]:
        """Enrollments that expired unused and were not yet recorded as such."""
        rows = self._conn.execute(
            f"SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE redeemed_at IS NULL AND closed_at IS NULL "
            "AND expires_at < ? AND expiry_recorded = 0 ORDER BY id",
            (now,),
        )
        return [EnrollmentRecord(*r) for r in rows]

    def subscriber_certificates(self, subscriber_id: str) -> list[CertificateRecord]:
        """A subscriber's certificates, newest first."""
        rows = self._conn.execute(
            f"SELECT {_CERT_COLUMNS} FROM certificates WHERE subscriber_id = ? AND status != 'reserved' "
            "ORDER BY not_before DESC, rowid DESC",
            (subscriber_id,),
        )
        return [CertificateRecord(*r) for r in rows]

    def customer_certificates(self, customer_id: str, statuses: tuple[str, ...], now: str) -> list[CertificateRecord]:
        """Unexpired certificates of all of a customer's subscribers with one of `statuses`."""
        marks = ", ".join("?" for _ in statuses)
        rows = self._conn.execute(
            f"SELECT {', '.join('c.' + c for c in _CERT_COLUMNS.split(', '))} FROM certificates c "
            "JOIN subscribers s ON s.id = c.subscriber_id "
            f"WHERE s.customer_id = ? AND c.status IN ({marks}) AND c.not_after >= ? ORDER BY c.serial",
            (customer_id, *statuses, now),
        )
        return [CertificateRecord(*r) for r in rows]

    def held_by(self, origin: str) -> list[CertificateRecord]:
        """Certificates on hold with a given origin (e.g. one customer's suspension)."""
        rows = self._conn.execute(
            f"SELECT {_CERT_COLUMNS} FROM certificates WHERE status = 'held' AND hold_origin = ? ORDER BY serial",
            (origin,),
        )
        return [CertificateRecord(*r) for r in rows]

    def expiring_certificates(self, now: str, before: str) -> list[CertificateRecord]:
        """Valid subscriber certificates whose notAfter falls between now and `before`."""
        rows = self._conn.execute(
            f"SELECT {_CERT_COLUMNS} FROM certificates WHERE status = 'valid' AND subscriber_id IS NOT NULL "
            "AND not_after >= ? AND not_after <= ? ORDER BY not_after",
            (now, before),
        )
        return [CertificateRecord(*r) for r in rows]

    def due_terminations(self, now: str) -> list[CustomerRecord]:
        """Customers whose scheduled service end has arrived but was not yet applied."""
        rows = self._conn.execute(
            f"SELECT {CUSTOMER_COLUMNS} FROM customers WHERE status != 'terminated' AND terminate_at IS NOT NULL "
            "AND terminate_at <= ? ORDER BY id",
            (now,),
        )
        return [CustomerRecord(*r) for r in rows]

    def officer_role(self, login: str) -> str | None:
        """The role of a registered operator account, or None."""
        row = self._conn.execute("SELECT role FROM officers WHERE login = ?", (login,)).fetchone()
        return row[0] if row else None

    def officers(self) -> list[tuple[str, str, str, str]]:
        """(login, role, added_at, added_by) of every operator."""
        return list(self._conn.execute("SELECT login, role, added_at, added_by FROM officers ORDER BY login"))

    def count_admins(self) -> int:
        """How many admins there are."""
        return int(self._conn.execute("SELECT COUNT(*) FROM officers WHERE role = 'admin'").fetchone()[0])

    def incidents(self, subscriber_id: str | None = None) -> list[IncidentRecord]:
        """Recorded incidents, newest first."""
        sql = f"SELECT {INCIDENT_COLUMNS} FROM incidents"
        params: tuple[str, ...] = ()
        if subscriber_id is not None:
            sql += " WHERE subscriber_id = ?"
            params = (subscriber_id,)
        return [IncidentRecord(*r) for r in self._conn.execute(sql + " ORDER BY id DESC", params)]


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
        """Export lines (CSV with every text field quoted, or JSON Lines), built by SQLite in seq order,
        optionally within [since, until], of one customer or action. A million events a second:
        encoding each row in Python was three times slower than the sqlite3 CLI."""
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
            # Fields people or configuration name are quoted; the others are Kinko's own tokens
            # (times, hex serials and hashes, action names) and never hold a comma or a quote.
            def quote(column: str) -> str:
                return f"""'"' || replace({column}, '"', '""') || '"'"""

            line = (
                "printf('%d,%s,%s,%s,%s,%s,%s,%s,%s,%s', seq, time, "
                f"{quote('actor')}, action, serial, {quote('subscriber')}, {quote('customer')}, "
                f"{quote('details')}, prev_hash, hash)"
            )
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


class Writer(AccountReads):
    """The write side of one transaction; every change it makes needs a ledger event."""

    def __init__(self, conn: sqlite3.Connection, actor: str, time: str) -> None:
        self._conn = conn
        self.actor = actor
        self.time = time
        self._changes = 0
        self._events = 0
        self.head: ledger.Event | None = None
        self.first_seq = 0

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
        self.first_seq = self.first_seq or seq
        self.head = ledger.Event(seq, self.time, self.actor, action, serial, subscriber, customer, text, prev, digest)
        return self.head

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

    def revoke(
        self,
        serial: str,
        *,
        reason: str,
        seq: int,
        invalidity_date: str | None = None,
        reported_at: str | None = None,
        revoked_at: str | None = None,
    ) -> None:
        """Marks a valid or held certificate revoked, as of this transaction's time unless told otherwise."""
        self._update_status(
            serial,
            "status IN ('valid', 'held')",
            status="revoked",
            revocation_reason=reason,
            revoked_at=revoked_at or self.time,
            invalidity_date=invalidity_date,
            reported_at=reported_at,
            hold_origin=None,
            status_changed_at=self.time,
            changed_seq=seq,
        )

    def change_revocation_reason(
        self, serial: str, *, reason: str, seq: int, invalidity_date: str | None, reported_at: str | None
    ) -> None:
        """Changes the reason of a revoked certificate (to key-compromise), keeping its revocation date."""
        self._update_status(
            serial,
            "status = 'revoked'",
            revocation_reason=reason,
            invalidity_date=invalidity_date,
            reported_at=reported_at,
            status_changed_at=self.time,
            changed_seq=seq,
        )

    def hold(self, serial: str, *, seq: int, origin: str) -> None:
        """Puts a valid certificate on hold (reason certificateHold) as of this transaction's time."""
        self._update_status(
            serial,
            "status = 'valid'",
            status="held",
            revocation_reason="certificate-hold",
            revoked_at=self.time,
            hold_origin=origin,
            status_changed_at=self.time,
            changed_seq=seq,
        )

    def release(self, serial: str, *, seq: int) -> None:
        """Releases a held certificate: it is good again."""
        self._update_status(
            serial,
            "status = 'held'",
            status="valid",
            revocation_reason=None,
            revoked_at=None,
            invalidity_date=None,
            hold_origin=None,
            status_changed_at=self.time,
            changed_seq=seq,
        )

    def _update_status(self, serial: str, condition: str, **values: Any) -> None:
        assignments = ", ".join(f"{name} = ?" for name in values)
        cursor = self._conn.execute(
            f"UPDATE certificates SET {assignments} WHERE serial = ? AND {condition}", (*values.values(), serial)
        )
        if cursor.rowcount != 1:
            raise Conflict(f"certificate {serial} changed status meanwhile; try again")
        self._changes += 1

    def record_crl(
        self,
        issuer: str,
        number: int,
        *,
        this_update: str,
        next_update: str,
        entries: int,
        ledger_seq: int,
        sha256: str,
    ) -> None:
        """Marks a reserved CRL number as published, with what it covered."""
        cursor = self._conn.execute(
            "UPDATE crls SET state = 'published', this_update = ?, next_update = ?, entries = ?, "
            "ledger_seq = ?, sha256 = ?, published_at = ? WHERE issuer = ? AND number = ? AND state = 'reserved'",
            (this_update, next_update, entries, ledger_seq, sha256, self.time, issuer, number),
        )
        if cursor.rowcount != 1:
            raise StorageError(f"CRL number {number} of {issuer} was not reserved")
        self._changes += 1

    def certificate(self, serial: str) -> CertificateRecord | None:
        """Reads a registry row inside this transaction."""
        row = self._conn.execute(
            f"SELECT {_CERT_COLUMNS} FROM certificates WHERE serial = ? AND status != 'reserved'", (serial,)
        ).fetchone()
        return CertificateRecord(*row) if row else None

    def put_ocsp_response(
        self, serial: str, hash_algorithm: str, issuer: str, der: bytes, this_update: str, next_update: str
    ) -> None:
        """Stores a pre-signed OCSP response. Derived from the registry, so it needs no ledger event."""
        self._conn.execute(
            "INSERT INTO ocsp_responses (serial, hash_algorithm, issuer, der, this_update, next_update) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(serial, hash_algorithm) DO UPDATE SET "
            "issuer = excluded.issuer, der = excluded.der, this_update = excluded.this_update, "
            "next_update = excluded.next_update",
            (serial, hash_algorithm, issuer, der, this_update, next_update),
        )

    def add_customer(self, customer_id: str, name: str) -> None:
        """Registers a customer, active from now."""
        try:
            self._conn.execute(
                "INSERT INTO customers (id, name, status, created_at, status_changed_at) VALUES (?, ?, 'active', ?, ?)",
                (customer_id, name, self.time, self.time),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"customer {customer_id} already exists") from None
        self._changes += 1

    def set_customer_status(self, customer_id: str, status: str, terminate_at: str | None = None) -> None:
        """Sets a customer's service status (and, for a scheduled end, when it takes effect)."""
        self._conn.execute(
            "UPDATE customers SET status = ?, status_changed_at = ?, terminate_at = COALESCE(?, terminate_at) "
            "WHERE id = ?",
            (status, self.time, terminate_at, customer_id),
        )
        self._changes += 1

    def schedule_termination(self, customer_id: str, terminate_at: str) -> None:
        """Records a future service end, applied when it arrives."""
        self._conn.execute("UPDATE customers SET terminate_at = ? WHERE id = ?", (terminate_at, customer_id))
        self._changes += 1

    def add_subscriber(self, subscriber_id: str, customer_id: str, role: str, name: str, created_by: str) -> None:
        """Registers an administrator or user of a customer."""
        try:
            self._conn.execute(
                "INSERT INTO subscribers (id, customer_id, role, name, status, created_at, created_by) "
                "VALUES (?, ?, ?, ?, 'active', ?, ?)",
                (subscriber_id, customer_id, role, name, self.time, created_by),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"subscriber {subscriber_id} already exists") from None
        self._changes += 1

    def add_enrollment(
        self, subscriber_id: str, kind: str, lookup: str, code_hash: str, expires_at: str, created_by: str
    ) -> int:
        """Stores a new enrollment (the code's hash only) and returns its id."""
        cursor = self._conn.execute(
            "INSERT INTO enrollments (subscriber_id, kind, lookup, code_hash, created_at, expires_at, created_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (subscriber_id, kind, lookup, code_hash, self.time, expires_at, created_by),
        )
        self._changes += 1
        return int(cursor.lastrowid or 0)

    def redeem_enrollment(self, enrollment_id: int, serial: str) -> None:
        """Marks an enrollment used, by the certificate it produced; a second use is refused."""
        cursor = self._conn.execute(
            "UPDATE enrollments SET redeemed_at = ?, redeemed_serial = ? WHERE id = ? AND redeemed_at IS NULL",
            (self.time, serial, enrollment_id),
        )
        if cursor.rowcount != 1:
            raise Conflict("the enrollment code was used meanwhile")
        self._changes += 1

    def close_enrollments(self, subscriber_id: str) -> None:
        """Closes a subscriber's unused enrollments (a reissue replaces them; a service end ends them)."""
        self._conn.execute(
            "UPDATE enrollments SET closed_at = ? "
            "WHERE subscriber_id = ? AND redeemed_at IS NULL AND closed_at IS NULL",
            (self.time, subscriber_id),
        )
        self._changes += 1

    def mark_enrollment_lapsed(self, enrollment_id: int) -> None:
        """Notes that an expired, unused enrollment has been recorded in the ledger."""
        self._conn.execute("UPDATE enrollments SET expiry_recorded = 1 WHERE id = ?", (enrollment_id,))
        self._changes += 1

    def record_code_failure(self, subscriber_id: str, attempts: int, locked_until: str | None) -> None:
        """Counts a wrong code against a subscriber, and locks it out when there were too many."""
        self._conn.execute(
            "UPDATE subscribers SET failed_attempts = ?, locked_until = ? WHERE id = ?",
            (attempts, locked_until, subscriber_id),
        )
        self._changes += 1

    def reset_code_failures(self, subscriber_id: str) -> None:
        """Clears a subscriber's wrong-code count after a successful redemption."""
        self._conn.execute(
            "UPDATE subscribers SET failed_attempts = 0, locked_until = NULL WHERE id = ?", (subscriber_id,)
        )

    def add_incident(
        self,
        *,
        subscriber_id: str,
        serial: str | None,
        kind: str,
        reason: str | None,
        received_at: str,
        suspected_since: str | None,
        revoked_at: str | None,
        suspended_customer: bool,
        note: str | None,
    ) -> int:
        """Records an incident report and the procedure carried out."""
        cursor = self._conn.execute(
            "INSERT INTO incidents (subscriber_id, serial, kind, reason, received_at, suspected_since, officer, "
            "recorded_at, revoked_at, suspended_customer, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                subscriber_id,
                serial,
                kind,
                reason,
                received_at,
                suspected_since,
                self.actor,
                self.time,
                revoked_at,
                int(suspended_customer),
                note,
            ),
        )
        self._changes += 1
        return int(cursor.lastrowid or 0)

    def remove_officer(self, login: str) -> None:
        """Removes an operator account."""
        self._conn.execute("DELETE FROM officers WHERE login = ?", (login,))
        self._changes += 1

    def compromised_certificate_with_key(self, spki_sha256: str) -> str | None:
        """The serial of a certificate revoked for key-compromise that held this public key, if any."""
        row = self._conn.execute(
            "SELECT serial FROM certificates WHERE spki_sha256 = ? AND status = 'revoked' "
            "AND revocation_reason = 'key-compromise' LIMIT 1",
            (spki_sha256,),
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
