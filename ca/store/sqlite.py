"""The SQLite store (contract.Store): its connections, the creating DDL, the reader that follows a
file it may not share, and the ledger's export and chain built by SQLite; the rest is shared with
PostgreSQL (reads.py, writer.py, accounts.py).

Writers take SQLite's database-wide lock with `BEGIN IMMEDIATE`: that is what serializes the
ledger chain (see contract.py).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from kinko.ca import ledger
from kinko.ca.errors import Conflict, StorageError
from kinko.ca.store import dialect, schema
from kinko.ca.store.reads import SQLStore, export_filter
from kinko.ca.store.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from kinko.ca.store import contract
    from kinko.ca.store.writer import SQLWriter

BUSY_TIMEOUT_MS = 30_000
BACKEND = "sqlite"


def _connect(path: Path, readonly: bool, immutable: bool = False) -> sqlite3.Connection:
    try:
        if readonly:
            flags = "mode=ro&immutable=1" if immutable else "mode=ro"
            conn = sqlite3.connect(f"file:{path}?{flags}", uri=True, isolation_level=None, timeout=30)
        else:
            conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    except sqlite3.Error as exc:
        raise StorageError("cannot open database {path}: {reason}", path=path, reason=str(exc)) from None
    return conn


def _file_state(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return info.st_ino, info.st_size, info.st_mtime_ns


def _no_wal_to_share(path: Path) -> bool:
    """A WAL database nobody has open, in a directory this account may not write: SQLite cannot
    create the -wal and -shm a read-only connection needs."""
    return not Path(f"{path}-wal").exists() and not os.access(path.parent, os.W_OK)


def _prepare_for_writing(conn: sqlite3.Connection, path: Path) -> None:
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before the command says it is done.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.Error as exc:
        raise StorageError("cannot open database {path}: {reason}", path=path, reason=str(exc)) from None


def statements(sql: str) -> list[str]:
    """Splits an SQL file into statements (a trigger's body keeps its semicolons)."""
    found, pending = [], ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            found.append(pending.strip())
            pending = ""
    if pending.strip() and not all(s.strip().startswith("--") for s in pending.splitlines() if s.strip()):
        raise StorageError("unterminated SQL statement: {statement}", statement=pending.strip()[:60])
    return found


class SQLiteStore(SQLStore):
    """The Kinko database in one SQLite file."""

    backend = BACKEND
    database_errors = (sqlite3.Error,)

    def __init__(self, conn: sqlite3.Connection, path: Path, version: int = SCHEMA_VERSION) -> None:
        super().__init__(conn, dialect.sqlite(), str(path), version)
        self.path = path
        # A reader that may not create the WAL files (the responder's account) of a database no
        # writer has open reads the checkpointed file as it is, until the CA service opens it.
        self._immutable = False
        self._file_state: tuple[int, int, int] | None = None  # the file an immutable connection read

    @classmethod
    def create(cls, path: Path) -> SQLiteStore:
        """Creates a new database with the current schema (sqlite.sql), in one transaction."""
        if path.exists():
            raise Conflict("database {path} already exists", path=path)
        # Made here, empty, 0600 whatever the umask and never through a symlink: SQLite would
        # create it with the umask's mode, and its -wal and -shm copy the database's mode.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            raise Conflict("database {path} already exists", path=path) from None
        os.fchmod(fd, 0o600)
        os.close(fd)
        conn = _connect(path, readonly=False)
        _prepare_for_writing(conn, path)
        # Statement by statement: executescript() would commit first and leave a half-made schema behind.
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements(schema.ddl(BACKEND)):
                conn.execute(statement)
            conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return cls(conn, path)

    @classmethod
    def open(cls, path: Path, readonly: bool = False, upgrading: bool = False) -> SQLiteStore:
        """Opens an existing database of this schema version (or an older one, `upgrading`)."""
        if not path.exists():
            raise StorageError("database {path} is missing", path=path)
        conn = _connect(path, readonly)
        store = cls(conn, path, 0)
        try:
            try:
                # Before anything that could write: a database of another version is left as it is.
                version = store._schema_version()
            except StorageError:
                if not (readonly and _no_wal_to_share(path)):
                    raise
                conn.close()
                store._conn, store._immutable = _connect(path, readonly, immutable=True), True
                store._file_state = _file_state(path)
                version = store._schema_version()
            schema.check_version(version, str(path), upgrading)
            if not readonly:
                _prepare_for_writing(store._conn, path)
        except BaseException:
            store._conn.close()
            raise
        store._version = version
        return store

    def close(self) -> None:
        """Closes the connection."""
        self._conn.close()

    def _begin_write(self) -> None:
        # The database-wide write lock, taken at the start: what serializes the ledger chain.
        self._conn.execute("BEGIN IMMEDIATE")
        # A process that opened the file before `kinko db migrate` moved it (a CA service left
        # running) must not go on writing where nobody reads any more.
        moved = self._conn.execute("SELECT value FROM meta WHERE key = 'moved_to'").fetchone()
        if moved is not None:
            self._conn.execute("ROLLBACK")
            raise StorageError(
                "database {path} was moved to {where} by `kinko db migrate`: nothing was written "
                "(restart this process: the home's kinko.toml names the new database)",
                path=self.path,
                where=moved[0],
            )

    def _run_script(self, sql: str) -> None:
        for statement in statements(sql):
            self._conn.execute(statement)

    def _authority_version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    @contextmanager
    def reading(self) -> Iterator[SQLiteStore]:
        """Runs reads against one consistent snapshot of the database."""
        self._conn.execute("BEGIN")
        try:
            yield self
        finally:
            self._conn.execute("COMMIT")

    def change_token(self) -> int:
        """A number that differs after any commit that changes state: the change counter, as last committed."""
        if self._immutable:
            self._follow_the_file()
        return int(self._scalar("SELECT value FROM change_counter WHERE id = 1"))

    def replica_lag(self) -> float | None:
        """An SQLite file is read where it is written: never a replica."""
        return None

    def _follow_the_file(self) -> None:
        """An immutable connection reads the file as it was: once the service has it open (its
        WAL exists) read live; if a writer came and went between two looks (the file changed,
        no WAL left), read the file afresh: never answer from what it was."""
        if Path(f"{self.path}-wal").exists():
            self._read_live()
        elif _file_state(self.path) != self._file_state:
            conn = _connect(self.path, readonly=True, immutable=True)
            self._conn.close()
            self._conn, self._authorities, self._file_state = conn, None, _file_state(self.path)

    def _read_live(self) -> None:
        """The CA service has the database open (its WAL exists): read through it from now on.
        Polled often (the responder asks every 50 ms), long before a first checkpoint changes the file."""
        try:
            conn = _connect(self.path, readonly=True)
        except StorageError:
            return  # not yet readable: the file as it is still answers
        try:
            conn.execute("SELECT value FROM change_counter WHERE id = 1").fetchone()
        except sqlite3.Error:
            conn.close()
            return
        self._conn.close()
        self._conn, self._immutable, self._authorities = conn, False, None

    def ledger_export_lines(
        self, fmt: str, since: str | None, until: str | None, customer: str | None, action: str | None
    ) -> Iterator[str]:
        """Export lines in ledger.py's format (CSV rows, or JSON Lines), built by SQLite in seq order,
        optionally within [since, until], of one customer or action: encoding each row in Python
        was three times slower than the sqlite3 CLI."""
        where, params = export_filter(since, until, customer, action)
        if fmt == "csv":
            leads = ", ".join(f"char({ord(lead)})" for lead in ledger.CSV_MARKED)
            # The mark of ledger.CSV_MARKED, then the value in double quotes (quotes doubled).
            mark = "CASE WHEN substr({c}, 1, 1) IN ({leads}) THEN char(39) ELSE '' END"
            fields = [
                "char(34) || " + mark.format(c=c, leads=leads) + f" || replace({c}, char(34), char(34, 34)) || char(34)"
                if c in ledger.CSV_QUOTED
                else c
                for c in ledger.COLUMNS
            ]
            line = "printf('" + ",".join("%s" for _ in fields) + "', " + ", ".join(fields) + ")"
        else:
            line = "json_object(" + ", ".join(f"'{c}', {c}" for c in ledger.COLUMNS) + ")"
        cursor = self._conn.execute(f"SELECT {line} || char(10) FROM ledger WHERE {where} ORDER BY seq", params)
        for (text,) in cursor:
            yield text

    def ledger_chain(self) -> Iterator[tuple[int, str, str, str]]:
        """(seq, prev_hash, hash, canonical JSON) of every event in seq order, the canonical text built by
        SQLite's json_array; a row it encodes differently from ledger.canonical is rechecked in Python."""
        return iter(
            self._conn.execute(
                "SELECT seq, prev_hash, hash, "
                "json_array(seq, time, actor, action, serial, subscriber, customer, details) FROM ledger ORDER BY seq"
            )
        )


if TYPE_CHECKING:
    # Checked by the type checker: the SQLite classes keep the contract.

    def _is_a_store(store: SQLiteStore) -> contract.Store:
        return store

    def _is_a_writer(writer: SQLWriter) -> contract.Writer:
        return writer
