"""A holder's state, and who must act soon."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kinko.ca.commands.registry import Context, Operation, param
from kinko.ca.commands.render import Output, csv_text, shown_value, to_json
from kinko.ca.errors import InputError
from kinko.ca.i18n import said

if TYPE_CHECKING:
    from kinko.ca.lifecycle import ExpiringCertificate, ExpiringEnrollment, HolderStatus

GROUPS = {"report": "Who must act soon."}


@dataclass(frozen=True, kw_only=True)
class StatusParams:
    serial: str | None = param("A certificate's serial.", None, argument=True)
    subscriber_id: str | None = param("A holder's subscriber id.", None, flag="--subscriber")


def status(ctx: Context, p: StatusParams) -> HolderStatus:
    """A holder's state: pending, valid, renewal-open, expired-reacquirable, reissue-required, on-hold, revoked."""
    import click

    if (p.serial is None) == (p.subscriber_id is None):
        raise click.UsageError("give either SERIAL or --subscriber")
    kinko = ctx.kinko()
    if p.subscriber_id is not None:
        return kinko.subscriber_status(p.subscriber_id)
    assert p.serial is not None
    return kinko.certificate_status(p.serial)


def render_status(result: HolderStatus, out: Output, _p: object) -> None:
    state = result.status
    summary = shown_value("state", state.state)
    if state.state in ("renewal-open", "expired-reacquirable", "valid") and state.days_left is not None:
        summary = said("{state} ({days} days left)", state=summary, days=state.days_left)
    if state.reason:
        summary = said("{state} ({reason})", state=summary, reason=state.reason)
    for client, until in result.locks:
        summary += "\n" + said(
            "locked out: {client} may not try codes until {until} (`kinko enroll unlock {client}`)",
            client=client,
            until=until,
        )
    out.emit(result.to_json(), summary)


def _days(text: str) -> int:
    """Parses '30d' or '30' as a number of days."""
    value = text.strip().lower().removesuffix("d")
    if not value.isdigit() or int(value) > 36500:
        raise InputError("{text!r} is not a number of days from 0 to 36500 (e.g. 30d)", text=text)
    return int(value)


EXCEL_HELP = "CSV with a UTF-8 byte order mark, so that Excel shows the Japanese names (implies --csv)."


@dataclass(frozen=True, kw_only=True)
class ExpiringParams:
    within: str = param("Certificates that end within this many days from now (30d).", "30d", show_default=True)
    as_csv: bool = param("CSV instead of a table.", False, flag="--csv")
    excel: bool = param(EXCEL_HELP, False)


def report_expiring(ctx: Context, p: ExpiringParams) -> list[ExpiringCertificate]:
    """Certificates that expire within the period: their holders should renew."""
    return ctx.kinko().expiring(_days(p.within))


def render_expiring(result: list[ExpiringCertificate], out: Output, p: ExpiringParams) -> None:
    columns = ["customer", "subscriber", "role", "name", "serial", "not_after", "days_left"]
    _rows(out, to_json(result), columns, p.as_csv, p.excel)


def _rows(out: Output, rows: Any, columns: list[str], as_csv: bool, excel: bool) -> None:
    if excel and not out.as_json:
        out.text("\ufeff" + csv_text(rows, columns), newline=False)
    else:
        out.rows(rows, columns, as_csv)


@dataclass(frozen=True, kw_only=True)
class EnrollmentsParams:
    within: str = param("Unused codes that lapse within this many days from now (14d).", "14d", show_default=True)
    as_csv: bool = param("CSV instead of a table.", False, flag="--csv")
    excel: bool = param(EXCEL_HELP, False)


def report_enrollments(ctx: Context, p: EnrollmentsParams) -> list[ExpiringEnrollment]:
    """Unused enrollment codes that lapse within the period."""
    return ctx.kinko().enrollments_expiring(_days(p.within))


def render_enrollments(result: list[ExpiringEnrollment], out: Output, p: EnrollmentsParams) -> None:
    columns = ["customer", "subscriber", "role", "name", "kind", "expires_at", "days_left"]
    _rows(out, to_json(result), columns, p.as_csv, p.excel)


OPERATIONS: list[Operation[Any, Any]] = [
    Operation("status", StatusParams, status, render_status, "auditor"),
    Operation("report expiring", ExpiringParams, report_expiring, render_expiring, "auditor"),
    Operation("report enrollments", EnrollmentsParams, report_enrollments, render_enrollments, "auditor"),
]
