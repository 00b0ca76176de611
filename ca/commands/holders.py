"""Enrollments, and the holder's own actions: acquire, renew, re-acquire, reissue."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kinko.ca.commands.certificates import OUT_HELP
from kinko.ca.commands.registry import Context, Operation, param
from kinko.ca.commands.render import Output, key_values
from kinko.ca.commands.views import Delivered, render_delivered
from kinko.ca.i18n import said

if TYPE_CHECKING:
    from kinko.ca.lifecycle import Enrolled

GROUPS = {"enroll": "Create enrollments: one-time codes, valid 80 days, to acquire a certificate."}
CSR_HELP = "PKCS#10 request made on the holder's PC, PEM or DER."


def render_enrolled(result: Enrolled, out: Output, _p: object) -> None:
    human = {
        "subscriber": result.subscriber_id,
        "customer": result.customer_id,
        "role": result.role,
        "name": result.name,
        "code": result.code,
        "expires at": result.expires_at,
    }
    out.emit(dataclasses.asdict(result), key_values(human) + "\n(the code is shown once: hand it to the holder now)")


EMAIL_HELP = "The holder's e-mail address: its certificates name it in their subjectAltName."


@dataclass(frozen=True, kw_only=True)
class EnrollAdministratorParams:
    customer_id: str = param("The customer's id.", flag="--customer")
    name: str = param("The administrator's name.")
    subscriber_id: str | None = param("Subscriber id (generated if not given).", None, flag="--id")
    email: str | None = param(EMAIL_HELP, None)


def enroll_administrator(ctx: Context, p: EnrollAdministratorParams) -> Enrolled:
    """Enroll a customer's administrator (the bank, after the customer's application)."""
    return ctx.kinko().enroll_administrator(p.customer_id, p.name, p.subscriber_id, p.email)


@dataclass(frozen=True, kw_only=True)
class EnrollUserParams:
    customer_id: str = param("The customer's id.", flag="--customer")
    name: str = param("The user's name.")
    by: str = param("The customer's administrator acting (subscriber id).")
    subscriber_id: str | None = param("Subscriber id (generated if not given).", None, flag="--id")
    email: str | None = param(EMAIL_HELP, None)


def enroll_user(ctx: Context, p: EnrollUserParams) -> Enrolled:
    """Enroll a user on behalf of the customer's administrator."""
    return ctx.kinko().enroll_user(p.customer_id, p.name, p.by, p.subscriber_id, p.email)


@dataclass(frozen=True, kw_only=True)
class AcquireParams:
    code: str | None = param(
        "The enrollment code. Leave it out to type it (hidden) or pipe it on standard input: "
        "a code on the command line shows in `ps` and in shell history.",
        None,
        hidden_prompt="Enrollment code",
    )
    csr: bytes = param(CSR_HELP, reads="CSR")
    out: Path | None = param(OUT_HELP, None, file_only=True)


def acquire(ctx: Context, p: AcquireParams) -> Delivered:
    """Redeem an enrollment code: a one-year certificate for its holder."""
    return Delivered.of(ctx.kinko().acquire(str(p.code).strip(), p.csr), ctx.now_text())


@dataclass(frozen=True, kw_only=True)
class RenewParams:
    serial: str = param("The certificate to renew.")
    csr: bytes = param(CSR_HELP, reads="CSR")
    out: Path | None = param(OUT_HELP, None, file_only=True)


def renew(ctx: Context, p: RenewParams) -> Delivered:
    """Renew with a new key, from 30 days before expiry until expiry."""
    return Delivered.of(ctx.kinko().renew(p.serial, p.csr), ctx.now_text())


@dataclass(frozen=True, kw_only=True)
class ReacquireParams:
    subscriber_id: str = param("The holder's subscriber id.", flag="--subscriber")
    csr: bytes = param(CSR_HELP, reads="CSR")
    out: Path | None = param(OUT_HELP, None, file_only=True)


def reacquire(ctx: Context, p: ReacquireParams) -> Delivered:
    """Re-acquire within 90 days after an unrevoked certificate expired."""
    return Delivered.of(ctx.kinko().reacquire(p.subscriber_id, p.csr), ctx.now_text())


@dataclass(frozen=True, kw_only=True)
class ReissueParams:
    subscriber_id: str = param("The holder's subscriber id.", flag="--subscriber")
    by: str | None = param("For a user: the customer's administrator acting.", None)


def reissue(ctx: Context, p: ReissueParams) -> Enrolled:
    """A new enrollment for an existing holder (the current certificate is superseded on acquisition)."""
    return ctx.kinko().reissue(p.subscriber_id, p.by)


def _delivered(result: Delivered, out: Output, p: AcquireParams | RenewParams | ReacquireParams) -> None:
    render_delivered(result, out, p.out)


@dataclass(frozen=True, kw_only=True)
class LocksParams:
    subscriber_id: str | None = param("Only the locks set over this holder's codes.", None, flag="--subscriber")


def enroll_locks(ctx: Context, p: LocksParams) -> list[dict[str, str]]:
    """The clients locked out of trying enrollment codes now (five wrong codes for one holder, or twenty)."""
    return [{"client": c, "subscriber": s, "until": u} for c, s, u in ctx.kinko().code_locks(p.subscriber_id)]


@dataclass(frozen=True, kw_only=True)
class UnlockParams:
    client: str = param("The locked client, as `enroll locks` names it (api:ADDRESS or cli:LOGIN).", argument=True)


def enroll_unlock(ctx: Context, p: UnlockParams) -> dict[str, str]:
    """Lift a client's code lock at once (the holder called the bank); recorded."""
    return {"client": p.client, "was_locked_until": ctx.kinko().clear_code_lock(p.client)}


OPERATIONS: list[Operation[Any, Any]] = [
    Operation(
        "enroll locks",
        LocksParams,
        enroll_locks,
        lambda r, out, p: out.rows(r, ["client", "subscriber", "until"]),
        "auditor",
    ),
    Operation(
        "enroll unlock",
        UnlockParams,
        enroll_unlock,
        lambda r, out, p: out.emit(
            r,
            said(
                "{client} may try codes again (its lock ran until {until})",
                client=r["client"],
                until=r["was_locked_until"],
            ),
        ),
        "officer",
    ),
    Operation("enroll administrator", EnrollAdministratorParams, enroll_administrator, render_enrolled, "officer"),
    Operation("enroll user", EnrollUserParams, enroll_user, render_enrolled, "officer"),
    Operation("acquire", AcquireParams, acquire, _delivered, "officer"),
    Operation("renew", RenewParams, renew, _delivered, "officer"),
    Operation("reacquire", ReacquireParams, reacquire, _delivered, "officer"),
    Operation("reissue", ReissueParams, reissue, render_enrolled, "officer"),
]
