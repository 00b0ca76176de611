"""The database's schema: upgrade it after installing a newer Kinko."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kinko.ca.commands.registry import Context, NoParams, Operation
from kinko.ca.commands.render import Output
from kinko.ca.i18n import said

GROUPS = {"db": "The database's schema: upgrade it after installing a newer Kinko."}


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


OPERATIONS: list[Operation[Any, Any]] = [
    Operation("db upgrade", NoParams, db_upgrade, render_upgraded, "admin", opens_older_schema=True),
]
