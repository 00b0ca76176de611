"""The PostgreSQL store (contract.Store) over psycopg 3: connecting (the password from a file,
never the URL), the creating DDL, and the few verbs PostgreSQL spells differently; the rest is
shared with SQLite (reads.py, writer.py, accounts.py).

Writers are serialized by a transaction-level advisory lock on one fixed key, taken as the first
statement of every write transaction (the ledger chain's rule in contract.py). Reads run in
autocommit, and `reading()` in one REPEATABLE READ snapshot, so a hot standby serves them all.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import conninfo

from kinko.ca import ledger
from kinko.ca.errors import ConfigError, Conflict, StorageError
from kinko.ca.store import dialect, schema
from kinko.ca.store.reads import ALL_TABLES, SQLStore, _first_line, export_filter
from kinko.ca.store.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from kinko.ca.store import contract
    from kinko.ca.store.writer import SQLWriter

BACKEND = "postgresql"
# The advisory lock every writer takes first: 'kinko' in ASCII, a key no other program is likely to use.
WRITER_LOCK = 0x6B696E6B6F
CONNECT_TIMEOUT_S = 10
# A responder whose standby went away tries to connect again at most this often: each try may
# wait for CONNECT_TIMEOUT_S, and the worker answers from what it has meanwhile.
RECONNECT_EVERY_S = 1.0
_cursor_names = itertools.count(1)


def shown(url: str) -> str:
    """A URL as messages show it: without its query (which may name files) and never a password."""
    return _PASSWORD.sub(r"\1@", url.split("?", 1)[0])


# postgresql://user:password@host: the ":password" part.
_PASSWORD = re.compile(r"^(postgres(?:ql)?://[^:@/]*):[^@/]*@")


@lru_cache(maxsize=512)
def _placeholders(sql: str) -> str:
    # The shared queries are written with SQLite's `?`; psycopg takes `%s` (and a literal % doubled).
    return sql.replace("%", "%%").replace("?", "%s")


class _Connection:
    """psycopg's connection with sqlite3's `execute(sql, params)`: `?` placeholders, and a lost
    server reported as one line (StorageError) rather than a driver traceback."""

    def __init__(
        self, raw: psycopg.Connection[Any], url: str, reconnect: Callable[[], psycopg.Connection[Any]]
    ) -> None:
        self.raw = raw
        self.url = url
        self._reconnect = reconnect
        self._last_try = 0.0

    def usable(self) -> psycopg.Connection[Any]:
        """The connection, made again if the server closed it (outside a transaction only: one
        that broke mid-way has already failed); at most one attempt a second."""
        if not (self.raw.closed or self.raw.broken):
            return self.raw
        now = time.monotonic()
        if now - self._last_try < RECONNECT_EVERY_S:
            raise StorageError("the database {url} is unreachable: trying again", url=shown(self.url))
        self._last_try = now
        try:
            self.raw = self._reconnect()
        except psycopg.Error as exc:
            raise StorageError(
                "the database {url} is unreachable: {reason}", url=shown(self.url), reason=_first_line(exc)
            ) from None
        return self.raw

    def execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> psycopg.Cursor[Any]:
        raw = self.usable()
        try:
            if params:
                return raw.execute(_placeholders(sql), tuple(params))
            return raw.execute(sql)  # our own SQL text, no parameters
        except psycopg.OperationalError as exc:
            raise StorageError(
                "the database {url} failed: {reason}", url=shown(self.url), reason=_first_line(exc)
            ) from None
        except psycopg.errors.ReadOnlySqlTransaction:
            raise StorageError(
                "the database {url} is read-only (a standby, or a read-only role): nothing was written",
                url=shown(self.url),
            ) from None

    def close(self) -> None:
        self.raw.close()


def _connect(url: str, readonly: bool, password_file: Path | None) -> _Connection:
    try:
        given = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ConfigError("invalid database URL {url}: {reason}", url=shown(url), reason=_first_line(exc)) from None
    if "password" in given:
        raise ConfigError(
            "the database URL {url} holds a password: put it in a password file ([store] password_file, "
            "or PGPASSFILE) instead",
            url=shown(url),
        )
    extra: dict[str, Any] = {"application_name": "kinko", "connect_timeout": CONNECT_TIMEOUT_S}
    if password_file is not None:
        extra["passfile"] = str(password_file)
    if readonly:
        extra["options"] = "-c default_transaction_read_only=on"

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(url, autocommit=True, **extra)

    try:
        raw = connect()
    except psycopg.Error as exc:
        raise StorageError(
            "cannot connect to database {url}: {reason}", url=shown(url), reason=_first_line(exc)
        ) from None
    return _Connection(raw, url, connect)


def drop_schema(url: str, password_file: Path | None = None) -> None:
    """Drops Kinko's tables from a database whose creation was not finished (kinko init failed)."""
    conn = _connect(url, readonly=False, password_file=password_file)
    try:
        conn.execute("BEGIN")
        # Everything postgresql.sql creates.
        conn.execute(f"DROP TABLE IF EXISTS {', '.join((*ALL_TABLES, 'meta', 'change_counter'))} CASCADE")
        conn.execute("DROP FUNCTION IF EXISTS kinko_refuse() CASCADE")
        conn.execute("COMMIT")
    finally:
        conn.close()


class PostgresStore(SQLStore):
    """The Kinko database in a PostgreSQL database (a primary, or a hot standby read-only)."""

    backend = BACKEND
    database_errors = (psycopg.Error,)

    def __init__(self, conn: _Connection, url: str, version: int = SCHEMA_VERSION) -> None:
        super().__init__(conn, dialect.postgresql(), shown(url), version)
        self.url = url

    @classmethod
    def create(cls, url: str, password_file: Path | None = None) -> PostgresStore:
        """Creates the schema in an empty database, in one transaction; refuses one that has tables."""
        conn = _connect(url, readonly=False, password_file=password_file)
        store = cls(conn, url)
        try:
            tables = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
            ).fetchone()
            if tables and tables[0]:
                raise Conflict(
                    "database {url} is not empty ({count} tables): Kinko makes its schema in an empty database",
                    url=shown(url),
                    count=tables[0],
                )
            conn.execute("BEGIN")
            try:
                store._run_script(schema.ddl(BACKEND))
                conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except BaseException:
            conn.close()
            raise
        return store

    @classmethod
    def open(
        cls, url: str, readonly: bool = False, upgrading: bool = False, password_file: Path | None = None
    ) -> PostgresStore:
        """Opens a database of this schema version (or an older one, `upgrading`)."""
        conn = _connect(url, readonly=readonly, password_file=password_file)
        store = cls(conn, url, 0)
        try:
            version = store._schema_version()
            schema.check_version(version, shown(url), upgrading)
        except BaseException:
            conn.close()
            raise
        store._version = version
        return store

    def close(self) -> None:
        """Closes the connection."""
        self._conn.close()

    def load(self, table: str, columns: list[str], rows: Iterator[tuple[Any, ...]]) -> int:
        """Copies rows into an empty table with COPY, inside the current transaction: how many."""
        count = 0
        with self._conn.raw.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
        return count

    def take_counter(self, value: int) -> None:
        """Moves the change counter past another database's, so that no responder's token repeats."""
        self._conn.execute("UPDATE change_counter SET value = ? WHERE id = 1", (max(value, 0) + 1,))

    def restart_sequences(self) -> None:
        """Points each generated key past the rows a copy brought, so that new rows never collide."""
        for table, column in (("enrollments", "id"), ("crls", "id"), ("incidents", "id"), ("certificates", "rowid")):
            self._conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                f"COALESCE(MAX({column}), 0) + 1, false) FROM {table}"
            )

    def _begin_write(self) -> None:
        self._conn.execute("BEGIN")
        try:
            self._conn.execute("SELECT pg_advisory_xact_lock(?)", (WRITER_LOCK,))
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def _run_script(self, sql: str) -> None:
        self._conn.execute(sql)

    def _authority_version(self) -> int:
        return self.change_token()

    def _streamed(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Iterator[tuple[Any, ...]]:
        # A server-side cursor, so that a million rows never sit in memory at once; WITH HOLD lets
        # it live outside a transaction and beside other queries on the same connection.
        cursor = self._conn.usable().cursor(name=f"kinko_{next(_cursor_names)}", withhold=True)
        cursor.itersize = 5000
        try:
            try:
                cursor.execute(_placeholders(sql) if params else sql, tuple(params) or None)
            except psycopg.OperationalError as exc:
                raise StorageError(
                    "the database {url} failed: {reason}", url=self.location, reason=_first_line(exc)
                ) from None
            yield from cursor
        finally:
            if not self._conn.raw.closed:
                cursor.close()

    @contextmanager
    def reading(self) -> Iterator[PostgresStore]:
        """Runs reads against one consistent snapshot of the database."""
        self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            yield self
        finally:
            self._conn.execute("COMMIT")

    def change_token(self) -> int:
        """A number that differs after any commit that changes state: the change counter."""
        return int(self._scalar("SELECT value FROM change_counter WHERE id = 1"))

    def replica_lag(self) -> float | None:
        """On a hot standby: 0 while it has applied all it received from a connected primary; the
        age of the last applied commit while it is behind; and with no primary to hear from, the
        time since it last heard one. None on a primary."""
        # A role without pg_read_all_stats sees the WAL receiver's pid but not its status.
        row = self._conn.execute(
            "SELECT pg_is_in_recovery(), pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn(), "
            "EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), "
            "(SELECT pid FROM pg_stat_wal_receiver), (SELECT status FROM pg_stat_wal_receiver), "
            "(SELECT EXTRACT(EPOCH FROM now() - last_msg_receipt_time) FROM pg_stat_wal_receiver)"
        ).fetchone()
        recovering, caught_up, replayed_ago, receiver, status, heard_ago = row
        if not recovering:
            return None
        if receiver is not None and status in (None, "streaming"):
            return 0.0 if caught_up else float(replayed_ago or 0.0)
        # No primary streaming to it: it knows nothing newer than what it last heard.
        known = [float(v) for v in (heard_ago, replayed_ago) if v is not None]
        return min(known) if known else float("inf")

    def ledger_export_lines(
        self, fmt: str, since: str | None, until: str | None, customer: str | None, action: str | None
    ) -> Iterator[str]:
        """Export lines in ledger.py's format, in seq order, optionally within [since, until], of one
        customer or action: encoded by ledger.export_line, byte for byte what SQLite renders."""
        where, params = export_filter(since, until, customer, action)
        rows = self._streamed(f"SELECT {', '.join(ledger.COLUMNS)} FROM ledger WHERE {where} ORDER BY seq", params)
        for row in rows:
            yield ledger.export_line(fmt, ledger.Event(*row))

    def ledger_chain(self) -> Iterator[tuple[int, str, str, str]]:
        """(seq, prev_hash, hash, canonical JSON) of every event in seq order, the canonical text
        encoded by ledger.canonical (PostgreSQL's JSON functions space their output)."""
        rows = self._streamed(
            "SELECT seq, prev_hash, hash, time, actor, action, serial, subscriber, customer, details "
            "FROM ledger ORDER BY seq"
        )
        for seq, prev_hash, digest, *rest in rows:
            yield seq, prev_hash, digest, ledger.canonical(seq, *rest).decode("utf-8")


if TYPE_CHECKING:
    # Checked by the type checker: the PostgreSQL classes keep the contract.

    def _is_a_store(store: PostgresStore) -> contract.Store:
        return store

    def _is_a_writer(writer: SQLWriter) -> contract.Writer:
        return writer
