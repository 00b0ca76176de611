"""Operators and their roles. The operator is the OS account of the effective uid, never
$USER (anyone can set it). Roles nest: an admin may do what an officer may, an officer
what an auditor may.

    auditor  reads, exports and verifies
    officer  issues, enrolls, revokes, holds, releases, handles incidents and customers, publishes
    admin    manages officers and the CA (signer rotation, the root's ARL)
"""

from __future__ import annotations

import os
import pwd
import re
from typing import TYPE_CHECKING

from kinko.ca.errors import Conflict, Forbidden, InputError, NotFound

if TYPE_CHECKING:
    from kinko.ca.home import Home

ROLES = ("auditor", "officer", "admin")
_RANK = {role: rank for rank, role in enumerate(ROLES, 1)}
_LOGIN = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$")

# The least role each command needs, by its path under `kinko`. None: no registered operator
# yet (creating a home registers the account that ran it as admin).
REQUIRED_ROLES: dict[str, str | None] = {
    "init": None,
    "quickstart": None,
    "issue": "officer",
    "revoke": "officer",
    "hold": "officer",
    "release": "officer",
    "crl publish": "officer",
    "crl show": "auditor",
    "customer add": "officer",
    "customer list": "auditor",
    "customer show": "auditor",
    "customer suspend": "officer",
    "customer resume": "officer",
    "customer terminate": "officer",
    "enroll administrator": "officer",
    "enroll user": "officer",
    "acquire": "officer",
    "renew": "officer",
    "reacquire": "officer",
    "reissue": "officer",
    "incident report": "officer",
    "incident list": "auditor",
    "status": "auditor",
    "report expiring": "auditor",
    "report enrollments": "auditor",
    "api serve": "officer",
    "ocsp serve": "officer",
    "ocsp refresh": "officer",
    "ocsp signer rotate": "admin",
    "cert show": "auditor",
    "cert list": "auditor",
    "ca show": "auditor",
    "ca chain": "auditor",
    "officer add": "admin",
    "officer remove": "admin",
    "officer list": "auditor",
    # Checked inside the command: verifying an export offline needs no home at all.
    "ledger verify": None,
    "ledger export": "auditor",
    "ledger checkpoint": "officer",
    "db upgrade": "admin",
}


def current_login() -> str:
    """The login name of the effective uid; falls back to 'uid:N' for an account without a name."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


def allows(role: str | None, needed: str) -> bool:
    """Whether a role (None: unregistered) may run something that needs `needed`."""
    return role is not None and _RANK[role] >= _RANK[needed]


def authorize(home: Home, login: str, command: str, needed: str, time: str) -> str:
    """Returns the operator's role, or records the refused attempt and raises Forbidden."""
    role = home.store.officer_role(login)
    if allows(role, needed):
        assert role is not None
        return role
    with home.store.transaction(login, time) as tx:
        tx.append_event("command.refused", details={"command": command, "needs": needed, "role": role})
    if role is None:
        raise Forbidden(
            f"`kinko {command}` needs the {needed} role; {login} is not a registered operator of this CA "
            "(an admin adds accounts with `kinko officer add`)"
        )
    raise Forbidden(f"`kinko {command}` needs the {needed} role; {login} is {role}")


def add_officer(home: Home, login: str, role: str, actor: str, time: str) -> None:
    """Registers an OS account with a role."""
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}; use one of: {', '.join(ROLES)}")
    if not _LOGIN.match(login):
        raise InputError(f"{login!r} is not an OS login name")
    with home.store.transaction(actor, time) as tx:
        tx.add_officer(login, role, actor)
        tx.append_event("officer.added", details={"login": login, "role": role})


def remove_officer(home: Home, login: str, actor: str, time: str) -> None:
    """Removes an account; the last admin cannot be removed."""
    with home.store.transaction(actor, time) as tx:
        role = tx.officer_role(login)
        if role is None:
            raise NotFound(f"{login} is not a registered operator")
        if role == "admin" and tx.count_admins() == 1:
            raise Conflict(f"{login} is the last admin; add another admin first")
        tx.remove_officer(login)
        tx.append_event("officer.removed", details={"login": login, "role": role})
