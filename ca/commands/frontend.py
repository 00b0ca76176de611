"""The login front end's operations: what `kinko api serve` does for a holder, and nothing more.

They need the `api` role, which nothing else has and which grants nothing else: under the CA
service the API runs as its own account (kinko-api), registered with that role, and holds no
database access at all, so a compromised front end can do no more than these five. Each
proves the holder as the API always has (a code, the presented certificate, a signature by the
expired key). The front end's word is taken for the client's address (the code rate limit, and
only as api:ADDRESS) and for the presented certificate having been verified by its TLS layer
(a certificate is public: the account can renew a holder in its window, or enroll users for an
administrator whose certificate it has seen, under its own login).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kinko.ca.commands.registry import Context, Operation, param
from kinko.ca.commands.render import Output, to_json

GROUPS: dict[str, str] = {}

ROLE = "api"


@dataclass(frozen=True, kw_only=True)
class StatusParams:
    serial: str = param("The certificate's serial (hex).", argument=True)


def api_status(ctx: Context, p: StatusParams) -> dict[str, object]:
    """The lifecycle state of a certificate's holder (GET /v1/certificates/{serial}/status)."""
    return ctx.kinko().certificate_status(p.serial).to_json()


@dataclass(frozen=True, kw_only=True)
class AcquireParams:
    code: str = param("The enrollment code.", hidden_prompt="Enrollment code")
    csr: bytes = param("The holder's PKCS#10 request (PEM).", reads="CSR")
    client: str = param("Who typed the code, for the rate limit: api:ADDRESS (the front end's client).")


def api_acquire(ctx: Context, p: AcquireParams) -> dict[str, object]:
    """A holder redeems an enrollment code (POST /v1/acquire)."""
    import ipaddress

    from kinko.ca.errors import InputError

    # The API speaks for the front end's clients only: never for an officer's CLI (cli:LOGIN),
    # whose code attempts it could otherwise lock out.
    address = p.client.removeprefix("api:")
    try:
        if not p.client.startswith("api:") or address != "unknown":  # a server that saw no peer address
            ipaddress.ip_address(address)
    except ValueError:
        raise InputError("client {client!r} is not api:ADDRESS", client=p.client) from None
    return issued_json(ctx, ctx.kinko().acquire(p.code, p.csr, client=f"api:{address}"))


@dataclass(frozen=True, kw_only=True)
class RenewParams:
    certificate: bytes = param(
        "The holder's client certificate, as the front end's TLS layer verified it.", reads="certificate"
    )
    csr: bytes = param("The new PKCS#10 request (PEM).", reads="CSR")


def api_renew(ctx: Context, p: RenewParams) -> dict[str, object]:
    """A holder renews the certificate it logged in with (POST /v1/renew)."""
    return issued_json(ctx, ctx.kinko().renew_by_holder(p.certificate, p.csr))


@dataclass(frozen=True, kw_only=True)
class ReacquireParams:
    subscriber: str = param("The holder's subscriber id.")
    csr: bytes = param("The new PKCS#10 request (PEM).", reads="CSR")
    signature: bytes = param(
        "A SHA-256 signature over the new CSR's DER by the expired certificate's key.", reads="signature"
    )


def api_reacquire(ctx: Context, p: ReacquireParams) -> dict[str, object]:
    """A holder re-acquires after expiry, proved by the expired key (POST /v1/reacquire)."""
    return issued_json(ctx, ctx.kinko().reacquire_by_holder(p.subscriber, p.csr, p.signature))


@dataclass(frozen=True, kw_only=True)
class EnrollParams:
    certificate: bytes = param(
        "The administrator's client certificate, as the front end's TLS layer verified it.", reads="certificate"
    )
    customer: str = param("The customer id.")
    name: str = param("The user's name.")
    email: str | None = param("The user's e-mail address.", None)


def api_enroll(ctx: Context, p: EnrollParams) -> dict[str, object]:
    """An administrator enrolls a user of its own customer (POST /v1/enrollments)."""
    enrolled = ctx.kinko().enroll_user_by_administrator(p.certificate, p.customer, p.name, p.email)
    data = to_json(enrolled)
    assert isinstance(data, dict)
    return data


def issued_json(ctx: Context, issued: Any) -> dict[str, object]:
    """What the API answers for a new certificate: with its chain (issuing CA, then the root), so
    the holder's PKCS#12 or the front end needs nothing else."""
    from kinko.ca.authorities import chain_pems

    chain = chain_pems(ctx.home())
    record = issued.record
    return {
        "serial": record.serial,
        "subscriber": record.subscriber_id,
        "subject": record.subject,
        "not_before": record.not_before,
        "not_after": record.not_after,
        "fingerprint_sha256": record.fingerprint_sha256,
        "pem": issued.pem,
        "chain": chain,
    }


def render_json(result: dict[str, object], out: Output, _p: object) -> None:
    out.emit(result)


OPERATIONS: list[Operation[Any, Any]] = [
    Operation("api status", StatusParams, api_status, render_json, ROLE, hidden=True),
    Operation("api acquire", AcquireParams, api_acquire, render_json, ROLE, hidden=True),
    Operation("api renew", RenewParams, api_renew, render_json, ROLE, hidden=True),
    Operation("api reacquire", ReacquireParams, api_reacquire, render_json, ROLE, hidden=True),
    Operation("api enroll", EnrollParams, api_enroll, render_json, ROLE, hidden=True),
]
