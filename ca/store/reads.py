"""What both backends share: the read queries, and the transaction, CRL-number reservation and
upgrade logic of contract.Store; each backend supplies its connection and the few hooks below."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from kinko.ca import ledger
from kinko.ca.errors import Conflict, StorageError
from kinko.ca.store import schema
from kinko.ca.store.accounts import AccountReads
from kinko.ca.store.dialect import Dialect
from kinko.ca.store.records import CERT_COLUMNS as _CERT_COLUMNS
from kinko.ca.store.records import CRL_COLUMNS as _CRL_COLUMNS
from kinko.ca.store.records import CertificateRecord, CRLRecord, PresignedResponse, RevocationState
from kinko.ca.store.schema import SCHEMA_VERSION
from kinko.ca.store.writer import SQLWriter

if TYPE_CHECKING:
    from kinko.ca.store.contract import Announcer, CRLEntry, Sealer, StatusCheck, UpgradeResult

# The first schema version with the change counter: an older database is open only to be upgraded.
_COUNTER_SINCE = 2


class SQLStore(AccountReads, ABC):
    """A Kinko database behind a DB-API connection: the backend-neutral half of contract.Store."""

    backend = ""
    # What the driver raises for a failed statement (a damaged or foreign table).
    database_errors: tuple[type[Exception], ...] = ()

    def __init__(self, conn: Any, dialect: Dialect, location: str, version: int) -> None:
        self._conn = conn
        self._dialect = dialect
        # Where the database is, for messages: a file's path, or a URL without its password.
        self.location = location
        self._version = version
        # Signs (seq, head hash, time) so that an event appended behind Kinko's back, or the
        # tail cut off, shows at verification: every transaction ends with a checkpoint.
        self.sealer: Sealer | None = None
        self.announcer: Announcer | None = None
        # The authorities, read once and kept while no other connection commits and no transaction
        # of ours changes them (`_authority_version`): every signature looks one up.
        self._authorities: tuple[int, dict[str, tuple[str, str]]] | None = None
        self._writer: SQLWriter | None = None
        self._checked_for: SQLWriter | None = None

    # -- hooks ---------------------------------------------------------------

    @abstractmethod
    def _begin_write(self) -> None:
        """Starts a transaction holding the one lock every writer takes (contract.py)."""

    @abstractmethod
    def _run_script(self, sql: str) -> None:
        """Runs a migration's statements inside the current transaction."""

    @abstractmethod
    def _authority_version(self) -> int:
        """A number that changes when another connection commits (the authorities may have changed)."""

    @abstractmethod
    def change_token(self) -> int:
        """A number that differs after any commit that changes state (contract.Reader)."""

    def _streamed(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Rows of a long query, without holding them all in memory."""
        return iter(self._conn.execute(sql, params))

    def _schema_version(self) -> int:
        try:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except self.database_errors as exc:
            raise StorageError(
                "database {path} is not a Kinko database: {reason}", path=self.location, reason=_first_line(exc)
            ) from None
        if row is None or not str(row[0]).isdigit():
            raise StorageError("database {path} has no readable schema version", path=self.location)
        return int(row[0])

    # -- copying a whole database (kinko db migrate) ------------------------------------------

    @contextmanager
    def holding_writers(self) -> Iterator[Hold]:
        """Holds the writers' lock, so that a copy reads one state nobody changes; what the hold
        marks (the database moved) commits with its end, and nothing does if it fails."""
        self._begin_write()
        hold = Hold(self._conn)
        try:
            yield hold
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT" if hold.marked else "ROLLBACK")

    def columns(self, table: str) -> list[str]:
        """The columns of one of Kinko's tables, in order."""
        if table not in ALL_TABLES:
            raise StorageError("no table {table!r}", table=table)
        cursor = self._conn.execute(f"SELECT * FROM {table} LIMIT 0")
        return [column[0] for column in cursor.description]

    def dump(self, table: str, columns: list[str]) -> Iterator[tuple[Any, ...]]:
        """Every row of a table as `columns` (SQLite's implicit rowid included), in insertion order."""
        if table not in ALL_TABLES:
            raise StorageError("no table {table!r}", table=table)
        order = "rowid" if table == "certificates" else "1"
        return self._streamed(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}")

    # -- transactions --------------------------------------------------------

    @contextmanager
    def transaction(self, actor: str, time: str) -> Iterator[SQLWriter]:
        """Runs one state change and its ledger events as a single transaction."""
        try:
            self._begin_write()
        except self.database_errors as exc:
            raise StorageError("cannot start a transaction: {reason}", reason=_first_line(exc)) from None
        writer = self._writer = SQLWriter(self._conn, self._dialect, actor, time)
        sealed: tuple[int, str, str, bytes, str] | None = None
        try:
            yield writer
            writer.check_complete()
            if writer.changed_state:
                self._count_change()
            if writer.head is not None and self.sealer is not None:
                self._refuse_unsealed_events(writer.first_seq)
                signature, signer = self.sealer(writer.head.seq, writer.head.hash, time)
                sealed = (writer.head.seq, writer.head.hash, time, signature, signer)
                self._conn.execute(
                    "INSERT INTO checkpoints (seq, head_hash, time, signature, signer) VALUES (?, ?, ?, ?, ?)", sealed
                )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        finally:
            self._writer = None
            if writer.changed_authorities:
                self._authorities = None  # SQLite's data_version does not move for our own commit
        # Only a committed head is announced: one rolled back would look like a rewritten past.
        if sealed is not None and self.announcer is not None:
            self.announcer(*sealed)

    def _count_change(self) -> None:
        # Inside the transaction, so that the token moves exactly when the change becomes visible.
        # A database opened for upgrading has no counter yet: the upgrade creates it.
        if self._version >= _COUNTER_SINCE:
            self._conn.execute("UPDATE change_counter SET value = value + 1 WHERE id = 1")

    def _refuse_unsealed_events(self, first_seq: int) -> None:
        # Every Kinko transaction that appends events ends with a checkpoint, so the last one
        # must sit right before this transaction's first event. Anything else means events
        # were added or removed behind Kinko's back: sealing now would launder them.
        last = self._conn.execute("SELECT MAX(seq) FROM checkpoints").fetchone()[0] or 0
        if last != first_seq - 1:
            raise StorageError(
                "the ledger was changed outside Kinko (last signed checkpoint {last}, next event {next}); "
                "nothing was written: run `kinko ledger verify`",
                last=last,
                next=first_seq,
            )

    def reserve_crl_number(self, issuer: str, kind: str, base_number: int | None, time: str, floor: int = 0) -> int:
        """Claims the next CRL number in a committed transaction of its own, before signing:
        a crash after this burns the number, so no number is ever used twice. Not a read: it commits."""
        self._begin_write()
        try:
            last = self._conn.execute("SELECT MAX(number) FROM crls WHERE issuer = ?", (issuer,)).fetchone()[0]
            # Above what the database remembers and what was published: a database that lost its
            # last commits (a promoted standby of an asynchronous primary) never reuses a number.
            number = max(last or 0, floor) + 1
            self._conn.execute(
                "INSERT INTO crls (issuer, number, kind, base_number, state, published_at) "
                "VALUES (?, ?, ?, ?, 'reserved', ?)",
                (issuer, number, kind, base_number, time),
            )
            self._count_change()
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return number

    def upgrade(self, actor: str, time: str) -> UpgradeResult:
        """Applies the pending migrations and records `schema.upgraded`, in one sealed transaction."""
        from kinko.ca.store.contract import UpgradeResult  # here: the contract's module loads only when used

        start = self._version
        if start == SCHEMA_VERSION:
            return UpgradeResult(start, start, ())
        pending = [m for m in schema.migrations(self.backend) if m.number > start]
        try:
            with self.transaction(actor, time) as tx:
                found = self._schema_version()
                if found != start:
                    raise Conflict(
                        "database {path} went from schema version {start} to {found} meanwhile; "
                        "nothing was changed: run `kinko db upgrade` again",
                        path=self.location,
                        start=start,
                        found=found,
                    )
                for migration in pending:
                    try:
                        self._run_script(migration.sql)
                    except self.database_errors as exc:
                        raise StorageError(
                            "migration {name} failed ({reason}); nothing was changed: "
                            "database {path} stays at schema version {start}",
                            name=migration.name,
                            reason=_first_line(exc),
                            path=self.location,
                            start=start,
                        ) from None
                self._conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
                # The counter exists from here on: this very commit increments it.
                self._version = SCHEMA_VERSION
                self._count_change()
                names = [m.name for m in pending]
                # Events before version 3 did not record the signers' key files: the upgrade attests them.
                attested = {role: key_file for role, (_serial, key_file) in self.authorities().items()}
                details = {"from": start, "to": SCHEMA_VERSION, "migrations": names, "authorities": attested}
                tx.append_event("schema.upgraded", details=details)
        except BaseException:
            self._version = start
            raise
        return UpgradeResult(start, SCHEMA_VERSION, tuple(names))

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

    def ledger_head(self) -> tuple[int, str]:
        """(seq, hash) of the newest ledger event; (0, genesis) when empty."""
        row = self._conn.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, ledger.GENESIS)

    def crl_entries(self, issuer: str, expired_before: str) -> Iterator[CRLEntry]:
        """(serial, revoked_at, reason, invalidity_date) of every revoked or held certificate
        of an issuer that expired no earlier than `expired_before`."""
        return self._streamed(
            "SELECT serial, revoked_at, revocation_reason, invalidity_date FROM certificates "
            "WHERE issuer = ? AND status IN ('revoked', 'held') AND not_after >= ?",
            (issuer, expired_before),
        )

    def crl_delta_entries(self, issuer: str, after_seq: int, expired_before: str) -> Iterator[CRLEntry]:
        """Entries for a delta CRL: certificates whose status changed after ledger seq `after_seq`;
        released holds come back as remove-from-crl."""
        return self._streamed(
            "SELECT serial, "
            "CASE WHEN status = 'valid' THEN status_changed_at ELSE revoked_at END, "
            "CASE WHEN status = 'valid' THEN 'remove-from-crl' ELSE revocation_reason END, "
            "CASE WHEN status = 'valid' THEN NULL ELSE invalidity_date END "
            "FROM certificates WHERE issuer = ? AND changed_seq > ? AND not_after >= ?",
            (issuer, after_seq, expired_before),
        )

    def last_status_change_seq(self, issuer: str) -> int:
        """The ledger seq of the newest status change of an issuer's certificates (0: none)."""
        row = self._conn.execute("SELECT MAX(changed_seq) FROM certificates WHERE issuer = ?", (issuer,)).fetchone()
        return int(row[0] or 0)

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

    def ocsp_response(self, serial: str, hash_algorithm: str) -> PresignedResponse | None:
        """The pre-signed response for a certificate and CertID hash, if there is one."""
        row = self._conn.execute(
            "SELECT der, this_update, next_update, issuer FROM ocsp_responses WHERE serial = ? AND hash_algorithm = ?",
            (serial, hash_algorithm),
        ).fetchone()
        return PresignedResponse(*row) if row else None

    def revocation_status(self, serial: str) -> RevocationState | None:
        """A certificate's issuer and revocation columns, for answering OCSP."""
        row = self._conn.execute(
            "SELECT issuer, status, revoked_at, revocation_reason, changed_seq FROM certificates "
            "WHERE serial = ? AND status != 'reserved'",
            (serial,),
        ).fetchone()
        return RevocationState(*row) if row else None

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

    def table_rows(self, table: str) -> Iterator[tuple[object, ...]]:
        """Every row of one of the tables the ledger's replay decides, in key order, streamed."""
        from kinko.ca.store.contract import REPLAYED

        if table not in REPLAYED:
            raise StorageError("no replayed table {table!r}", table=table)
        columns = REPLAYED[table]
        where = " WHERE status != 'reserved'" if table == "certificates" else ""
        keys = {"crls": "issuer, number, id", "ocsp_responses": "serial, hash_algorithm"}.get(table, columns[0])
        yield from self._streamed(f"SELECT {', '.join(columns)} FROM {table}{where} ORDER BY {keys}")

    def status_disagreements(
        self, issuer: str, expired_before: str, changed_after: int | None = None
    ) -> Iterator[StatusCheck]:
        """The certificates of an issuer, unexpired at `expired_before` (and whose status changed
        after ledger seq `changed_after`, when given), whose revocation columns disagree with their
        newest status event (or that have none), each with that event."""
        from kinko.ca.store.contract import ISSUING_ACTIONS, STATUS_ACTIONS

        issuing, every = ", ".join(f"'{a}'" for a in ISSUING_ACTIONS), ", ".join(f"'{a}'" for a in STATUS_ACTIONS)
        # The same facts as replay.status_facts, decided by the database: a million rows stay in C.
        d = self._dialect
        isnot, reason, revoked_at = d.is_not, d.json_text("l.details", "reason"), d.json_text("l.details", "revoked_at")
        rows = self._streamed(
            "WITH latest AS (SELECT c.serial, c.status, c.revocation_reason, c.revoked_at, c.changed_seq, "
            f"(SELECT MAX(seq) FROM ledger WHERE serial = c.serial AND action IN ({every})) AS last_seq "
            "FROM certificates c WHERE c.issuer = ? AND c.status != 'reserved' AND c.not_after >= ? "
            f"{'AND c.changed_seq > ?' if changed_after is not None else ''}) "
            "SELECT x.serial, x.status, x.revocation_reason, x.revoked_at, x.changed_seq, "
            "l.seq, l.time, l.actor, l.action, l.serial, l.subscriber, l.customer, l.details, l.prev_hash, l.hash "
            "FROM latest x LEFT JOIN ledger l ON l.seq = x.last_seq "
            "WHERE l.seq IS NULL "
            f"OR (l.action IN ({issuing}) AND (x.changed_seq IS NOT NULL OR x.status != 'valid' "
            "OR x.revocation_reason IS NOT NULL OR x.revoked_at IS NOT NULL)) "
            f"OR (l.action NOT IN ({issuing}) AND (x.changed_seq {isnot} l.seq "
            "OR x.status != CASE l.action WHEN 'certificate.held' THEN 'held' "
            "WHEN 'certificate.released' THEN 'valid' ELSE 'revoked' END "
            f"OR (l.action = 'certificate.held' AND (x.revocation_reason {isnot} 'certificate-hold' "
            f"OR x.revoked_at {isnot} l.time)) "
            "OR (l.action = 'certificate.released' AND (x.revocation_reason IS NOT NULL OR x.revoked_at IS NOT NULL)) "
            "OR (l.action IN ('certificate.revoked', 'certificate.reason-changed') "
            f"AND x.revocation_reason {isnot} {reason}) "
            "OR (l.action = 'certificate.revoked' "
            f"AND x.revoked_at {isnot} COALESCE({revoked_at}, l.time))))",
            (issuer, expired_before) if changed_after is None else (issuer, expired_before, changed_after),
        )
        for row in rows:
            facts = dict(zip(("status", "revocation_reason", "revoked_at", "changed_seq"), row[1:5], strict=True))
            yield row[0], facts, ledger.Event(*row[5:]) if row[5] is not None else None

    def authorities(self) -> dict[str, tuple[str, str]]:
        """role -> (serial, key file) for every CA role and delegated signer."""
        return dict(self._authority_map())

    def authority(self, role: str) -> tuple[str, str] | None:
        """(serial, key file) of the CA certificate or signer in a role, or None."""
        return self._authority_map().get(role)

    def _authority_map(self) -> dict[str, tuple[str, str]]:
        writer = self._writer
        if writer is not None and writer.changed_authorities:
            self._authorities = None  # this transaction's own change: read it, and read again after
            return self._read_authorities()
        if writer is not None and self._authorities is not None and self._checked_for is writer:
            return self._authorities[1]  # our write lock is held: nobody else has committed since the check
        version = self._authority_version()
        if self._authorities is None or self._authorities[0] != version:
            self._authorities = (version, self._read_authorities())
        self._checked_for = writer
        return self._authorities[1]

    def _read_authorities(self) -> dict[str, tuple[str, str]]:
        rows = self._conn.execute("SELECT role, serial, key_file FROM authorities")
        return {role: (serial, key_file) for role, serial, key_file in rows}

    def count(self, table: str) -> int:
        """Rows in one of Kinko's tables (for status displays and tests)."""
        if table not in ALL_TABLES:
            raise StorageError("no table {table!r}", table=table)
        return int(self._scalar(f"SELECT COUNT(*) FROM {table}"))

    def ledger_events(self, after_seq: int = 0) -> Iterator[ledger.Event]:
        """Streams ledger events in seq order."""
        cursor = self._streamed(
            "SELECT seq, time, actor, action, serial, subscriber, customer, details, prev_hash, hash "
            "FROM ledger WHERE seq > ? ORDER BY seq",
            (after_seq,),
        )
        for row in cursor:
            yield ledger.Event(*row)

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
        except self.database_errors as exc:
            raise StorageError("the checkpoints table cannot be read: {reason}", reason=_first_line(exc)) from None

    def checkpoint(self, seq: int) -> tuple[int, str, str, bytes, str] | None:
        """(seq, head_hash, time, signature, signer serial) of the checkpoint at a seq, or None."""
        row = self._conn.execute(
            "SELECT seq, head_hash, time, signature, signer FROM checkpoints WHERE seq = ?", (seq,)
        ).fetchone()
        return (row[0], row[1], row[2], row[3], row[4]) if row else None

    def last_checkpoint_seq(self) -> int:
        """The seq of the newest checkpoint; 0 when there is none."""
        return int(self._scalar("SELECT MAX(seq) FROM checkpoints") or 0)

    def signer_events(self, after_seq: int = 0) -> Iterator[ledger.Event]:
        """In seq order, the events after `after_seq` that create a CA or appoint, retire, revoke,
        hold or release an audit signer."""
        # By the action index, whose entries are ordered by seq (the rowid) within each action:
        # sealing asks for the few events since its last look, on ledgers of millions of events.
        cursor = self._conn.execute(
            "SELECT seq, time, actor, action, serial, subscriber, customer, details, prev_hash, hash FROM ledger "
            "WHERE seq > ? AND (action IN ('ca.created', 'audit.signer-issued', 'audit.signer-retired') OR (action IN "
            "('certificate.revoked', 'certificate.held', 'certificate.released') AND serial IN "
            "(SELECT serial FROM ledger WHERE action = 'audit.signer-issued'))) ORDER BY seq",
            (after_seq,),
        )
        for row in cursor:
            yield ledger.Event(*row)

    def _scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        row = self._conn.execute(sql, params).fetchone()
        return row[0] if row else None


class Hold:
    """The writers' lock held on a database being copied: it may mark the database moved."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.marked = False

    def mark_moved(self, where: str) -> None:
        """Marks the database as moved to `where`: every later write transaction on it is refused."""
        self._conn.execute("INSERT INTO meta (key, value) VALUES ('moved_to', ?)", (where,))
        self.marked = True


def export_filter(
    since: str | None, until: str | None, customer: str | None, action: str | None
) -> tuple[str, list[str]]:
    """The WHERE condition and parameters of a ledger export's filters (times are UTC text)."""
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
    return " AND ".join(where), params


def _first_line(exc: BaseException) -> str:
    """A driver's message on one line (PostgreSQL's carry DETAIL and HINT lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


ALL_TABLES = (
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
