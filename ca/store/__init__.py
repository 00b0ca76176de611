"""The storage authority: the store contract, its records, and opening or creating a database.

Only the store speaks SQL. Code above it type-hints against the Protocols of contract.py
(`Reader`, `Writer`, `Store`), whose docstring states the transaction rules every backend keeps.
Both backends share reads.py, writer.py and accounts.py (dialect.py holds what they spell
differently); SQLite's own part is sqlite.py with sqlite.sql, PostgreSQL's postgresql.py with
postgresql.sql; migrations/<backend>/ hold the numbered migrations. A location is an SQLite
file's path or a postgresql:// URL; nothing above this module asks which.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kinko.ca.store.records import (
    CertificateRecord,
    CRLRecord,
    CustomerRecord,
    EnrollmentRecord,
    IncidentRecord,
    PresignedResponse,
    RevocationState,
    SubscriberRecord,
)
from kinko.ca.store.schema import SCHEMA_VERSION
from kinko.ca.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from kinko.ca.store.contract import Reader, Sealer, Store, UpgradeResult, Writer
else:

    def __getattr__(name: str) -> object:
        # The contract serves type hints (and upgrades): loaded on first use, so that `kinko cert show` starts fast.
        if name in ("Reader", "Sealer", "Store", "UpgradeResult", "Writer"):
            from kinko.ca.store import contract

            return getattr(contract, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SCHEMA_VERSION",
    "CRLRecord",
    "CertificateRecord",
    "CustomerRecord",
    "EnrollmentRecord",
    "IncidentRecord",
    "PresignedResponse",
    "Reader",
    "RevocationState",
    "Sealer",
    "Store",
    "SubscriberRecord",
    "UpgradeResult",
    "Writer",
    "create_store",
    "discard_new_store",
    "is_server",
    "open_store",
]


def is_server(location: Path | str) -> bool:
    """Whether a location names a database server (PostgreSQL) rather than an SQLite file."""
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def create_store(location: Path | str, password_file: Path | None = None) -> Store:
    """Creates a new database with the current schema; refuses an existing file or a non-empty database."""
    if is_server(location):
        from kinko.ca.store.postgresql import PostgresStore

        return PostgresStore.create(str(location), password_file)
    return SQLiteStore.create(Path(location))


def discard_new_store(location: Path | str, password_file: Path | None = None) -> None:
    """Removes the schema a failed `kinko init` made on a database server (a file goes with its directory)."""
    if is_server(location):
        from kinko.ca.store.postgresql import drop_schema

        drop_schema(str(location), password_file)


def open_store(
    location: Path | str, *, readonly: bool = False, upgrading: bool = False, password_file: Path | None = None
) -> Store:
    """Opens a database of this Kinko's schema version; `upgrading` also accepts an older one
    (for `kinko db upgrade` only). Read-only is what the responder and auditors use."""
    if is_server(location):
        from kinko.ca.store.postgresql import PostgresStore

        return PostgresStore.open(str(location), readonly=readonly, upgrading=upgrading, password_file=password_file)
    return SQLiteStore.open(Path(location), readonly=readonly, upgrading=upgrading)
