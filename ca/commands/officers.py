"""Operator accounts and their roles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kinko.ca.commands.registry import Context, NoParams, Operation, param
from kinko.ca.commands.render import to_json
from kinko.ca.i18n import said
from kinko.ca.officers import GRANTABLE

GROUPS = {"officer": "Operator accounts and their roles (admin, officer, auditor)."}


@dataclass(frozen=True, kw_only=True)
class AddParams:
    login: str = param("The OS account's login name.", argument=True)
    role: str = param(
        "The role it gets (api: the login front end's own account, for its operations only).", choices=GRANTABLE
    )


@dataclass(frozen=True)
class Officer:
    """An operator account and its role."""

    login: str
    role: str


def officer_add(ctx: Context, p: AddParams) -> Officer:
    """Register an OS account with a role."""
    from kinko.ca.officers import add_officer

    add_officer(ctx.home(), p.login, p.role, ctx.login(), ctx.now_text())
    return Officer(p.login, p.role)


@dataclass(frozen=True, kw_only=True)
class RemoveParams:
    login: str = param("The OS account's login name.", argument=True)


@dataclass(frozen=True)
class Removed:
    """An operator account removed."""

    login: str
    removed: bool


def officer_remove(ctx: Context, p: RemoveParams) -> Removed:
    """Remove an operator account (not the last admin)."""
    from kinko.ca.officers import remove_officer

    remove_officer(ctx.home(), p.login, ctx.login(), ctx.now_text())
    return Removed(p.login, True)


@dataclass(frozen=True)
class RoleChange:
    """An operator account's role, before and after."""

    login: str
    role: str
    was: str


def officer_set_role(ctx: Context, p: AddParams) -> RoleChange:
    """Change a registered account's role (never the last admin's)."""
    from kinko.ca.officers import set_role

    was = set_role(ctx.home(), p.login, p.role, ctx.login(), ctx.now_text())
    return RoleChange(p.login, p.role, was)


@dataclass(frozen=True)
class OfficerRow:
    """A registered operator."""

    login: str
    role: str
    added_at: str
    added_by: str


def officer_list(ctx: Context, _p: NoParams) -> list[OfficerRow]:
    """List operator accounts."""
    return [OfficerRow(*row) for row in ctx.home().store.officers()]


OPERATIONS: list[Operation[Any, Any]] = [
    Operation(
        "officer add",
        AddParams,
        officer_add,
        lambda r, out, p: out.emit(to_json(r), said("{login} is now {role}", login=r.login, role=r.role)),
        "admin",
    ),
    Operation(
        "officer remove",
        RemoveParams,
        officer_remove,
        lambda r, out, p: out.emit(to_json(r), said("{login} removed", login=r.login)),
        "admin",
    ),
    Operation(
        "officer set-role",
        AddParams,
        officer_set_role,
        lambda r, out, p: out.emit(
            to_json(r), said("{login} is now {role} (was {was})", login=r.login, role=r.role, was=r.was)
        ),
        "admin",
    ),
    Operation(
        "officer list",
        NoParams,
        officer_list,
        lambda r, out, p: out.rows(to_json(r), ["login", "role", "added_at", "added_by"]),
        "auditor",
    ),
]
