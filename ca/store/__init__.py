"""The storage authority: the store contract, its records, and opening or creating a database.

Only the store speaks SQL. Code above it type-hints against the Protocols of contract.py
(`Reader`, `Writer`, `Store`), whose docstring states the transaction rules every backend keeps;
the SQLite backend is sqlite.py and sqlite_writer.py, its DDL sqlite.sql, its migrations
migrations/sqlite/.
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
    "open_store",
]


def create_store(path: Path) -> Store:
    """Creates a new database with the current schema; refuses an existing file."""
    return SQLiteStore.create(path)


def open_store(path: Path, *, readonly: bool = False, upgrading: bool = False) -> Store:
    """Opens a database of this Kinko's schema version; `upgrading` also accepts an older one
    (for `kinko db upgrade` only). Read-only is what the responder and auditors use."""
    return SQLiteStore.open(path, readonly=readonly, upgrading=upgrading)
