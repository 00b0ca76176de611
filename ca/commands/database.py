"""The database's schema: upgrade it after installing a newer Kinko."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kinko.ca.commands.registry import Context, NoParams, Operation, param
from kinko.ca.commands.render import Output
from kinko.ca.i18n import said

GROUPS = {"db": "The database: upgrade its schema after installing a newer Kinko, or move it to PostgreSQL."}


@dataclass(frozen=True)
class Upgraded:
    """The schema version before and after, and the migrations applied."""

    from_version: int
    to_version: int
    applied: list[str]

    def to_json(self) -> dict[str, object]:
        """`from`, `to` and `applied`, as the upgrade's ledger event names them."""
        return {"from": self.from_version, "to": self.to_version, "applied": self.applied}


def db_upgrade(ctx: Context, _p: NoParams) -> Upgraded:
    """Apply the pending schema migrations in one transaction, recorded in the ledger."""
    result = ctx.home().store.upgrade(ctx.login(), ctx.now_text())
    return Upgraded(result.from_version, result.to_version, list(result.applied))


def render_upgraded(result: Upgraded, out: Output, _p: object) -> None:
    if result.applied:
        human = said(
            "upgraded the database from schema version {before} to {after}: {migrations}",
            before=result.from_version,
            after=result.to_version,
            migrations=", ".join(result.applied),
        )
    else:
        human = said("the database is already at schema version {version}: nothing to do", version=result.to_version)
    out.emit(result.to_json(), human)


@dataclass(frozen=True, kw_only=True)
class MigrateParams:
    to: str = param("The PostgreSQL database to move to: postgresql://user@host:port/name (empty; no password in it).")
    database_password_file: Path | None = param(
        "libpq password file for --to (mode 0600); its path is kept in kinko.toml. PGPASSFILE works too.", None
    )


@dataclass(frozen=True)
class Migrated:
    """Where the home's database now is, what was copied and the ledger head both sides share."""

    database: str
    rows: dict[str, int]
    ledger_seq: int
    ledger_hash: str

    def to_json(self) -> dict[str, object]:
        """`database`, `rows` per table and the shared `ledger_head`."""
        return {
            "database": self.database,
            "rows": self.rows,
            "ledger_head": {"seq": self.ledger_seq, "hash": self.ledger_hash},
        }


def db_migrate(ctx: Context, p: MigrateParams) -> Migrated:
    """Copy this home's SQLite database to an empty PostgreSQL database in one pass, then use it."""
    from kinko.ca.migration import migrate_home

    home = ctx.home()
    copied, shown = migrate_home(home, p.to, p.database_password_file, ctx.login(), ctx.now_text())
    return Migrated(shown, copied.rows, copied.head_seq, copied.head_hash)


def render_migrated(result: Migrated, out: Output, _p: object) -> None:
    human = said(
        "moved the database to {database}: {events} ledger events and {certificates} certificates, "
        "ledger head seq {seq} verified there; kinko.toml now points to it (kinko.db is no longer used)",
        database=result.database,
        events=result.rows["ledger"],
        certificates=result.rows["certificates"],
        seq=result.ledger_seq,
    )
    out.emit(result.to_json(), human)


OPERATIONS: list[Operation[Any, Any]] = [
    Operation("db upgrade", NoParams, db_upgrade, render_upgraded, "admin", opens_older_schema=True),
    Operation("db migrate", MigrateParams, db_migrate, render_migrated, "admin", local=True),
]
