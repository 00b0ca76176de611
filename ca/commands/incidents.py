"""Holders' reports of lost, stolen, disposed or compromised certificates."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kinko.ca.commands.registry import TIME_FORMAT, Context, Operation, param
from kinko.ca.commands.render import Output, key_values, to_json
from kinko.ca.commands.views import CRLView, crl_views

if TYPE_CHECKING:
    from kinko.ca.store import IncidentRecord

GROUPS = {"incident": "Holders' reports of lost, stolen, disposed or compromised certificates."}


@dataclass(frozen=True, kw_only=True)
class ReportParams:
    subscriber_id: str = param("The holder's subscriber id.", flag="--subscriber")
    kind: str = param("disposed-without-deletion, lost, stolen or compromised.")
    received_at: str = param(f"When the report was received ({TIME_FORMAT}).")
    suspected_since: str | None = param(
        f"Since when misuse is suspected ({TIME_FORMAT}): invalidityDate.",
        None,
    )
    suspend_customer: bool = param("Also suspend the whole customer's service.", False)
    reason: str = param(
        "For a disposal the officer may choose another revocation reason.", "key-compromise", show_default=True
    )
    note: str | None = param("A note for the ledger.", None)
    keep_enrollments: bool = param(
        "Keep the holder's open enrollment codes (a key-compromise voids them unless told otherwise).", False
    )


@dataclass(frozen=True)
class IncidentView:
    """A recorded incident, the procedure carried out, and the CRLs published."""

    record: IncidentRecord
    crls: list[CRLView]
    voided_enrollments: int = 0

    def to_json(self) -> dict[str, Any]:
        """The incident's fields with the CRLs published and the enrollment codes voided."""
        crls = [dataclasses.asdict(c) for c in self.crls]
        return {
            **dataclasses.asdict(self.record),
            "crls_published": crls,
            "voided_enrollments": self.voided_enrollments,
        }


def incident_report(ctx: Context, p: ReportParams) -> IncidentView:
    """Record an incident and revoke the holder's certificate."""
    from kinko.ca.clock import parse_user_time

    result = ctx.kinko().report_incident(
        p.subscriber_id,
        p.kind,
        received_at=parse_user_time(p.received_at, "received-at"),
        suspected_since=parse_user_time(p.suspected_since, "suspected-since") if p.suspected_since else None,
        suspend_customer=p.suspend_customer,
        note=p.note,
        reason=p.reason,
        keep_enrollments=p.keep_enrollments,
    )
    return IncidentView(result.record, crl_views(result.crls), result.voided_enrollments)


def render_incident(result: IncidentView, out: Output, _p: object) -> None:
    fields = dataclasses.asdict(result.record)
    fields["suspended_customer"] = "yes" if fields["suspended_customer"] else "no"
    human = key_values({**fields, "voided enrollments": result.voided_enrollments})
    out.emit(result.to_json(), human)


@dataclass(frozen=True, kw_only=True)
class ListParams:
    subscriber_id: str | None = param("Only this holder's incidents.", None, flag="--subscriber")


def incident_list(ctx: Context, p: ListParams) -> list[IncidentRecord]:
    """List recorded incidents, newest first."""
    return ctx.kinko().incidents(p.subscriber_id)


def render_incidents(result: list[IncidentRecord], out: Output, _p: object) -> None:
    columns = ["id", "subscriber_id", "kind", "received_at", "suspected_since", "revoked_at", "officer", "serial"]
    out.rows(to_json(result), columns)


OPERATIONS: list[Operation[Any, Any]] = [
    Operation("incident report", ReportParams, incident_report, render_incident, "officer"),
    Operation("incident list", ListParams, incident_list, render_incidents, "auditor"),
]
