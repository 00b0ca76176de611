"""Operators and their roles. The operator is the OS account of the effective uid, never
$USER (anyone can set it). Roles nest: an admin may do what an officer may, an officer
what an auditor may.

    auditor  reads, exports and verifies
    officer  issues, enrolls, revokes, holds, releases, handles incidents and customers, publishes
    admin    manages officers and the CA (signer rotation, the root's ARL)

    api      the login front end's own account: its five operations (ca/commands/frontend.py) only
"""

from __future__ import annotations

import os
import pwd
import re
from typing import TYPE_CHECKING

from kinko.ca import integrity
from kinko.ca.errors import Conflict, Forbidden, InputError, NotFound
from kinko.ca.i18n import Phrase
from kinko.ca.integrity import MADE_BY_NONE, Mismatch
from kinko.ca.ledger import Event

if TYPE_CHECKING:
    from kinko.ca.home import Home

ROLES = ("auditor", "officer", "admin")
# The API's own identity: the login front end's operations and nothing else (not even an auditor's reads).
API_ROLE = "api"
GRANTABLE = (*ROLES, API_ROLE)
_RANK = {role: rank for rank, role in enumerate(ROLES, 1)}
_LOGIN = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$")


def current_login() -> str:
    """The login name of the effective uid; falls back to 'uid:N' for an account without a name."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


def allows(role: str | None, needed: str) -> bool:
    """Whether a role (None: unregistered) may run something that needs `needed`."""
    if API_ROLE in (role, needed):
        return role == needed
    return role is not None and _RANK[role] >= _RANK[needed]


def authorize(home: Home, login: str, command: str, needed: str, time: str) -> str:
    """Returns the operator's role, or records the refused attempt and raises Forbidden."""
    role = home.store.officer_role(login)
    if allows(role, needed):
        assert role is not None
        # A role grants power only as the ledger granted it: a row edited behind Kinko's back does not.
        with integrity.recorded(home.store, login, time):
            mismatch = confirm_role(login, role, home.store.officer_event(login))
            if mismatch is not None:
                raise integrity.refuse(mismatch, f"`kinko {command}`", doing="run")
        return role
    with home.store.transaction(login, time) as tx:
        tx.append_event("command.refused", details={"command": command, "needs": needed, "role": role})
    if role is None:
        raise Forbidden(
            "`kinko {command}` needs the {needed} role; {login} is not a registered operator of this CA "
            "(an admin adds accounts with `kinko officer add`)",
            command=command,
            needed=needed,
            login=login,
        )
    raise Forbidden(
        "`kinko {command}` needs the {needed} role; {login} is {role}",
        command=command,
        needed=needed,
        login=login,
        role=role,
    )


def confirm_role(login: str, role: str | None, event: Event | None) -> Mismatch | None:
    """Checks an officer's role against its newest officer event."""
    import json

    granted = ("officer.added", "officer.role-changed")
    expected = json.loads(event.details).get("role") if event is not None and event.action in granted else None
    if role == expected:
        return None
    said = (
        Phrase(
            "seq {seq} ({action}) says {expected}",
            {"seq": event.seq, "action": event.action, "expected": repr(expected)},
        )
        if event is not None
        else MADE_BY_NONE
    )
    contradiction = Phrase("role is {role}, but {said}", {"role": repr(role), "said": said})
    return Mismatch("officers", login, contradiction, event.seq if event is not None else None)


def add_officer(home: Home, login: str, role: str, actor: str, time: str) -> None:
    """Registers an existing OS account with a role."""
    if role not in GRANTABLE:
        raise InputError("unknown role {role!r}; use one of: {roles}", role=role, roles=", ".join(GRANTABLE))
    if not _LOGIN.match(login):
        raise InputError("{login!r} is not an OS login name", login=login)
    try:
        pwd.getpwnam(login)
    except KeyError:
        # A role for a login nobody has yet would pass to whoever creates that account later.
        raise NotFound(
            "there is no OS account {login} on this host; create it first (useradd {login})", login=login
        ) from None
    with home.store.transaction(actor, time) as tx:
        tx.add_officer(login, role, actor)
        tx.append_event("officer.added", details={"login": login, "role": role})


def set_role(home: Home, login: str, role: str, actor: str, time: str) -> str:
    """Changes a registered account's role (never the last admin's away); returns the old role."""
    if role not in GRANTABLE:
        raise InputError("unknown role {role!r}; use one of: {roles}", role=role, roles=", ".join(GRANTABLE))
    with home.store.transaction(actor, time) as tx:
        old = tx.officer_role(login)
        if old is None:
            raise NotFound(
                "{login} is not a registered operator (an admin adds it with `kinko officer add`)", login=login
            )
        if old == role:
            raise Conflict("{login} is already {role}", login=login, role=role)
        if old == "admin" and tx.count_admins() == 1:
            raise Conflict("{login} is the last admin; make another account admin first", login=login)
        tx.set_officer_role(login, role)
        tx.append_event("officer.role-changed", details={"login": login, "role": role, "was": old})
    return old


def remove_officer(home: Home, login: str, actor: str, time: str) -> None:
    """Removes an account; the last admin cannot be removed."""
    with home.store.transaction(actor, time) as tx:
        role = tx.officer_role(login)
        if role is None:
            raise NotFound("{login} is not a registered operator", login=login)
        if role == "admin" and tx.count_admins() == 1:
            raise Conflict("{login} is the last admin; add another admin first", login=login)
        tx.remove_officer(login)
        tx.append_event("officer.removed", details={"login": login, "role": role})
