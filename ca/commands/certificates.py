"""Issue a certificate, change its revocation status, and look certificates up in the registry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kinko.ca.commands.registry import TIME_FORMAT, Context, Operation, param
from kinko.ca.commands.render import Output, key_values, table, to_json

if TYPE_CHECKING:
    from kinko.ca.commands.views import Delivered, StatusChangeView
    from kinko.ca.lifecycle import StatusChange
    from kinko.ca.registry import CertificateView

GROUPS = {"cert": "Look up certificates in the serial registry."}
OUT_HELP = "Write the certificate PEM here (default: standard output)."


@dataclass(frozen=True, kw_only=True)
class IssueParams:
    csr: bytes = param("PKCS#10 request, PEM or DER.", reads="CSR")
    name: str = param("Subject common name (the holder's name).")
    org: str | None = param("Subject organisation (the customer's name).", None)
    profile: str = param("The certificate profile (profiles.toml).", "client", show_default=True)
    subscriber: str | None = param("Bind the certificate to this subscriber id.", None)
    email: str | None = param(
        "The holder's e-mail address for the subjectAltName (a subscriber's is the one recorded).", None
    )
    out: Path | None = param(OUT_HELP, None, file_only=True)


def issue(ctx: Context, p: IssueParams) -> Delivered:
    """Issue a certificate from a CSR; the subject comes from --name/--org only."""
    from kinko.ca.commands.views import Delivered

    issued = ctx.kinko().issue(
        p.csr, name=p.name, organization=p.org, profile=p.profile, subscriber_id=p.subscriber, email=p.email
    )
    return Delivered.of(issued, ctx.now_text())


@dataclass(frozen=True, kw_only=True)
class RevokeParams:
    serial: str = param("The certificate's serial (hex).", argument=True)
    reason: str = param(
        "unspecified, key-compromise, affiliation-changed, superseded, "
        "cessation-of-operation, privilege-withdrawn (ca-compromise for CA certificates)."
    )
    invalidity_date: str | None = param(
        f"Since when the key is known or suspected compromised ({TIME_FORMAT}).",
        None,
    )
    reported_at: str | None = param(
        f"When the holder's report was received ({TIME_FORMAT}).",
        None,
    )
    note: str | None = param("A note for the ledger.", None)


def revoke(ctx: Context, p: RevokeParams) -> StatusChangeView:
    """Revoke a certificate for good, and publish the CRL before returning."""
    from kinko.ca.clock import parse_user_time

    change = ctx.kinko().revoke(
        p.serial,
        p.reason,
        invalidity_date=parse_user_time(p.invalidity_date, "invalidity date") if p.invalidity_date else None,
        reported_at=parse_user_time(p.reported_at, "reported-at") if p.reported_at else None,
        note=p.note,
    )
    return _viewed(change, ctx)


def ca_certificate_needs_admin(ctx: Context, p: RevokeParams) -> list[tuple[str, str]]:
    """Revoking a CA certificate makes Kinko sign with the key above it (the root's ARL): an admin's act."""
    from kinko.ca.serials import normalize_serial

    home = ctx.home()
    home.require()
    record = home.readonly_store.certificate(normalize_serial(p.serial))
    # An unknown serial needs no more than the officer role: `revoke` refuses it itself.
    if record is not None and record.profile.endswith("-ca"):
        return [("revoke (a CA certificate)", "admin")]
    return []


@dataclass(frozen=True, kw_only=True)
class SerialNoteParams:
    serial: str = param("The certificate's serial (hex).", argument=True)
    note: str | None = param("A note for the ledger.", None)


def hold(ctx: Context, p: SerialNoteParams) -> StatusChangeView:
    """Put a certificate on hold (certificateHold); `release` makes it good again."""
    return _viewed(ctx.kinko().hold(p.serial, note=p.note), ctx)


def release(ctx: Context, p: SerialNoteParams) -> StatusChangeView:
    """Release a held certificate."""
    return _viewed(ctx.kinko().release(p.serial, note=p.note), ctx)


def _viewed(change: StatusChange, ctx: Context) -> StatusChangeView:
    # Imported here, like the registration authority: `kinko cert show` loads neither.
    from kinko.ca.commands.views import StatusChangeView

    return StatusChangeView.of(change.record, change.crls, ctx.now_text())


def render_delivered(result: Delivered, out: Output, p: IssueParams) -> None:
    from kinko.ca.commands.views import render_delivered

    render_delivered(result, out, p.out)


def render_status_change(result: StatusChangeView, out: Output, _p: object) -> None:
    from kinko.ca.commands.views import render_status_change

    render_status_change(result, out)


@dataclass(frozen=True, kw_only=True)
class ShowParams:
    serial: str = param("The certificate's serial (hex).", argument=True)
    pem: bool = param("Print the certificate as PEM.", False)


@dataclass(frozen=True)
class Shown:
    """One certificate: its registry view, or its PEM when asked for."""

    certificate: CertificateView | None
    pem: str | None


def cert_show(ctx: Context, p: ShowParams) -> Shown:
    """Show one certificate by serial (hex, any case, colons allowed)."""
    from kinko.ca import registry

    home = ctx.home()
    home.require()
    if p.pem:
        return Shown(None, registry.pem(home.readonly_store, p.serial))
    return Shown(registry.show(home.readonly_store, p.serial, ctx.now_text()), None)


def render_shown(result: Shown, out: Output, _p: ShowParams) -> None:
    if result.pem is not None:
        out.text(result.pem, newline=False)
    else:
        from kinko.ca.commands.views import for_people

        data = to_json(result.certificate)
        assert isinstance(data, dict)
        out.emit(data, key_values(for_people(data)))


@dataclass(frozen=True, kw_only=True)
class ListParams:
    status: str | None = param(
        "Only certificates with this status.", None, choices=("valid", "held", "revoked", "expired")
    )
    limit: int | None = param("At most this many, newest first.", None, minimum=1)


def cert_list(ctx: Context, p: ListParams) -> list[CertificateView]:
    """List certificates, newest first."""
    from kinko.ca import registry

    home = ctx.home()
    home.require()
    return registry.listing(home.readonly_store, ctx.now_text(), p.status, p.limit)


def render_listing(result: list[CertificateView], out: Output, _p: ListParams) -> None:
    from kinko.ca.commands.views import for_people

    rows = to_json(result)
    columns = ["serial", "status", "profile", "not_after", "subject"]
    out.emit(rows, table([for_people(row) for row in rows], columns))


OPERATIONS: list[Operation[Any, Any]] = [
    Operation("issue", IssueParams, issue, render_delivered, "officer"),
    Operation("revoke", RevokeParams, revoke, render_status_change, "officer", state_roles=ca_certificate_needs_admin),
    Operation("hold", SerialNoteParams, hold, render_status_change, "officer"),
    Operation("release", SerialNoteParams, release, render_status_change, "officer"),
    Operation("cert show", ShowParams, cert_show, render_shown, "auditor"),
    Operation("cert list", ListParams, cert_list, render_listing, "auditor"),
]
