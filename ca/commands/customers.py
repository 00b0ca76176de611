"""Customers: companies using the service, and their service status."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kinko.ca.commands.registry import TIME_FORMAT, Context, NoParams, Operation, param
from kinko.ca.commands.render import JSONData, Output, key_values, shown_value, table, to_json
from kinko.ca.commands.views import CRLView, crl_views
from kinko.ca.i18n import N_, said

if TYPE_CHECKING:
    from kinko.ca.lifecycle import BulkChange, CustomerOverview
    from kinko.ca.store import CustomerRecord

GROUPS = {"customer": "Customers: companies using the service."}


@dataclass(frozen=True, kw_only=True)
class AddParams:
    customer_id: str = param("The customer's id.", argument=True)
    name: str = param("The company's name (Japanese is fine).")


def customer_add(ctx: Context, p: AddParams) -> CustomerRecord:
    """Register a customer."""
    return ctx.kinko().add_customer(p.customer_id, p.name)


def customer_list(ctx: Context, _p: NoParams) -> list[CustomerRecord]:
    """List customers."""
    return ctx.kinko().session.store.customers()


@dataclass(frozen=True, kw_only=True)
class CustomerParams:
    customer_id: str = param("The customer's id.", argument=True)


def customer_show(ctx: Context, p: CustomerParams) -> CustomerOverview:
    """Show a customer and the state of each of its certificate holders."""
    return ctx.kinko().customer_overview(p.customer_id)


def render_overview(result: CustomerOverview, out: Output, _p: object) -> None:
    data = result.to_json()
    holders = table(result.holder_rows(), ["id", "role", "name", "state", "serial", "not_after", "days_left"])
    shown = {k: v for k, v in data.items() if k != "subscribers"}
    if shown.get("terminate_at") and shown.get("status") != "terminated":
        # Already closed to new enrollments: the officer must not read a plain "active".
        shown["status"] = said(
            "{status}, terminating at {when}", status=shown_value("status", shown["status"]), when=shown["terminate_at"]
        )
    out.emit(data, key_values(shown) + "\n\n" + holders)


@dataclass(frozen=True)
class BulkView:
    """A customer-wide change: the certificates it touched and the CRLs it published."""

    customer: str
    status: str
    certificates: list[str]
    terminate_at: str | None
    crls_published: list[CRLView]

    @classmethod
    def of(cls, change: BulkChange) -> BulkView:
        """The view of a suspension, resumption or termination."""
        return cls(change.customer_id, change.status, change.certificates, change.terminate_at, crl_views(change.crls))


def render_bulk(result: BulkView, out: Output, _p: object) -> None:
    human = {
        "customer": result.customer,
        "status": result.status,
        "certificates": len(result.certificates),
        "effective": result.terminate_at,
    }
    out.emit(dataclasses.asdict(result), key_values(human))


def customer_suspend(ctx: Context, p: CustomerParams) -> BulkView:
    """Hold every valid certificate of the customer and refuse its enrollments and acquisitions."""
    return BulkView.of(ctx.kinko().suspend_customer(p.customer_id, ctx.progress(N_("certificates"))))


def customer_resume(ctx: Context, p: CustomerParams) -> BulkView:
    """Release exactly the holds the suspension made."""
    return BulkView.of(ctx.kinko().resume_customer(p.customer_id, ctx.progress(N_("certificates"))))


@dataclass(frozen=True, kw_only=True)
class TerminateParams:
    customer_id: str = param("The customer's id.", argument=True)
    effective: str | None = param(f"When the service ends ({TIME_FORMAT}); default now.", None)
    reschedule: bool = param("Move a termination already scheduled to this date (or to now).", False)
    yes: bool = param("Do it without asking (for scripts); on a terminal Kinko asks first.", False)


def terminate_question(p: TerminateParams) -> str:
    """What the officer confirms before a termination."""
    if p.effective:
        return said(
            "Terminate customer {customer} at {when}: revoke every certificate of it and close it for good?",
            customer=p.customer_id,
            when=p.effective,
        )
    return said(
        "Terminate customer {customer} now: revoke every certificate of it and close it for good?",
        customer=p.customer_id,
    )


def customer_terminate(ctx: Context, p: TerminateParams) -> BulkView:
    """Revoke every certificate of the customer (cessation-of-operation) and close it for good."""
    from kinko.ca.clock import parse_user_time
    from kinko.ca.errors import InputError

    if not p.yes:  # the CLI asks on a terminal and then sets it; anyone else says it outright
        raise InputError(
            "customer terminate revokes every certificate of {customer}: confirm with --yes", customer=p.customer_id
        )
    when = parse_user_time(p.effective, "effective date") if p.effective else None
    change = ctx.kinko().terminate_customer(p.customer_id, when, ctx.progress(N_("certificates")), p.reschedule)
    return BulkView.of(change)


def _emit(result: JSONData, out: Output, _p: object) -> None:
    out.emit(to_json(result))


def _rows(result: list[CustomerRecord], out: Output, _p: object) -> None:
    out.rows(to_json(result), ["id", "status", "name", "created_at", "terminate_at"])


OPERATIONS: list[Operation[Any, Any]] = [
    Operation("customer add", AddParams, customer_add, _emit, "officer"),
    Operation("customer list", NoParams, customer_list, _rows, "auditor"),
    Operation("customer show", CustomerParams, customer_show, render_overview, "auditor"),
    Operation("customer suspend", CustomerParams, customer_suspend, render_bulk, "officer"),
    Operation("customer resume", CustomerParams, customer_resume, render_bulk, "officer"),
    Operation(
        "customer terminate", TerminateParams, customer_terminate, render_bulk, "officer", confirm=terminate_question
    ),
]
