"""Incidents and the end of service: suspension (holds), resumption, termination."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kinko.ca.clock import to_text
from kinko.ca.errors import Conflict, InputError, NotFound, PolicyError
from kinko.ca.lifecycle.issuing import active_certificates
from kinko.ca.lifecycle.revocation import Revocation, check_report_times, suspension_origin
from kinko.ca.lifecycle.session import REVOCATION_REASONS, Session
from kinko.ca.store import CertificateRecord, IncidentRecord, SubscriberRecord, Writer

if TYPE_CHECKING:
    from kinko.crl.publisher import Published

INCIDENT_KINDS = ("disposed-without-deletion", "lost", "stolen", "compromised")
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BulkChange:
    """What a customer-wide change did: the certificates it touched and the CRLs it published."""

    customer_id: str
    status: str
    certificates: list[str]
    crls: list[Published]
    terminate_at: str | None = None


@dataclass(frozen=True)
class Incident:
    """A recorded incident and the procedure carried out."""

    record: IncidentRecord
    crls: list[Published]
    voided_enrollments: int = 0


class ServiceEnd:
    """Incidents, and customer-wide changes run as one transaction that publish CRL and OCSP once at the end."""

    def __init__(self, session: Session, revocation: Revocation) -> None:
        self.s = session
        self.revocation = revocation

    def report_incident(
        self,
        subscriber_id: str,
        kind: str,
        *,
        received_at: dt.datetime,
        suspected_since: dt.datetime | None = None,
        suspend_customer: bool = False,
        note: str | None = None,
        reason: str = "key-compromise",
        keep_enrollments: bool = False,
    ) -> Incident:
        """Records a holder's report and revokes the certificate (key-compromise by default,
        invalidityDate = suspected_since), optionally suspending the whole customer. A
        key-compromise also voids the holder's open enrollment codes (a code sent before the PC
        was lost may be in the wrong hands too), unless `keep_enrollments`."""
        if kind not in INCIDENT_KINDS:
            raise InputError(
                "unknown incident kind {kind!r}; use one of: {kinds}", kind=kind, kinds=", ".join(INCIDENT_KINDS)
            )
        if reason not in REVOCATION_REASONS:
            raise InputError(
                "unknown revocation reason {reason!r}; use one of: {reasons}",
                reason=reason,
                reasons=", ".join(REVOCATION_REASONS),
            )
        if reason != "key-compromise" and kind != "disposed-without-deletion":
            raise PolicyError(
                "a {kind} certificate is revoked for key-compromise; only a disposal may use another reason", kind=kind
            )
        now = self.s.clock.now()
        check_report_times(now, suspected_since, received_at, "received-at")
        self.s.load_signing_keys()
        if suspected_since is not None and suspected_since > received_at:
            raise InputError("suspected-since is after the report was received")
        issuers: set[str] = set()
        with self.s.store.transaction(self.s.actor, self.s.text(now)) as tx:
            subscriber = _subscriber(tx, subscriber_id)
            active = active_certificates(tx, subscriber_id, self.s.text(now))
            voided = 0
            if reason == "key-compromise" and not keep_enrollments:
                voided = sum(1 for e in tx.enrollments(subscriber.id) if e.redeemed_at is None and e.closed_at is None)
                if voided:
                    tx.close_enrollments(subscriber.id)
            for record in active:
                self.revocation.revoke_in(
                    tx,
                    record,
                    reason,
                    now,
                    invalidity_date=suspected_since,
                    reported_at=received_at,
                    note=note,
                    customer=subscriber.customer_id,
                    incident=kind,
                )
                issuers.add(record.issuer)
            incident_id = tx.add_incident(
                subscriber_id=subscriber.id,
                serial=active[0].serial if active else None,
                kind=kind,
                reason=reason if active else None,
                received_at=to_text(received_at) or "",
                suspected_since=to_text(suspected_since),
                revoked_at=tx.time if active else None,
                suspended_customer=suspend_customer,
                note=note,
            )
            tx.append_event(
                "incident.recorded",
                serial=active[0].serial if active else "",
                subscriber=subscriber.id,
                customer=subscriber.customer_id,
                details={
                    "incident": incident_id,
                    "kind": kind,
                    "received_at": to_text(received_at),
                    "suspected_since": to_text(suspected_since),
                    "revoked_at": tx.time if active else None,
                    "reason": reason if active else None,
                    "suspend_customer": suspend_customer,
                    "note": note,
                    "voided_enrollments": voided,
                },
            )
            if suspend_customer:
                issuers |= self._suspend_in(tx, subscriber.customer_id, now, None)
        crls = self.s.publish_after(issuers, now)
        incident = next(i for i in self.s.store.incidents(subscriber_id) if i.id == incident_id)
        return Incident(incident, crls, voided)

    def incidents(self, subscriber_id: str | None = None) -> list[IncidentRecord]:
        """Recorded incidents, newest first."""
        return self.s.store.incidents(subscriber_id)

    def suspend_customer(self, customer_id: str, progress: Progress | None = None) -> BulkChange:
        """Holds every valid certificate of the customer and refuses its enrollments and acquisitions."""
        now = self.s.clock.now()
        self.s.load_signing_keys()
        with self.s.store.transaction(self.s.actor, self.s.text(now)) as tx:
            issuers = self._suspend_in(tx, customer_id, now, progress)
            held = [r.serial for r in tx.held_by(suspension_origin(customer_id))]
        return BulkChange(customer_id, "suspended", held, self.s.publish_after(issuers, now))

    def _suspend_in(self, tx: Writer, customer_id: str, now: dt.datetime, progress: Progress | None) -> set[str]:
        customer = tx.customer(customer_id)
        if customer is None:
            raise NotFound("no customer {customer}", customer=customer_id)
        if customer.status != "active":
            raise Conflict("customer {customer} is {status}, not active", customer=customer_id, status=customer.status)
        records = tx.customer_certificates(customer_id, ("valid",), tx.time)
        for done, record in enumerate(records, 1):
            self.revocation.hold_in(tx, record, now, origin=suspension_origin(customer_id), customer=customer_id)
            _report(progress, done, len(records))
        tx.set_customer_status(customer_id, "suspended")
        tx.append_event("customer.suspended", customer=customer_id, details={"held": len(records)})
        return {r.issuer for r in records}

    def resume_customer(self, customer_id: str, progress: Progress | None = None) -> BulkChange:
        """Releases exactly the holds the suspension made, and reopens the service."""
        now = self.s.clock.now()
        self.s.load_signing_keys()
        with self.s.store.transaction(self.s.actor, self.s.text(now)) as tx:
            customer = tx.customer(customer_id)
            if customer is None:
                raise NotFound("no customer {customer}", customer=customer_id)
            if customer.status != "suspended":
                raise Conflict(
                    "customer {customer} is {status}, not suspended", customer=customer_id, status=customer.status
                )
            records = tx.held_by(suspension_origin(customer_id))
            for done, record in enumerate(records, 1):
                self.revocation.release_in(tx, record, now, customer=customer_id)
                _report(progress, done, len(records))
            tx.set_customer_status(customer_id, "active")
            tx.append_event("customer.resumed", customer=customer_id, details={"released": len(records)})
        crls = self.s.publish_after({r.issuer for r in records}, now)
        return BulkChange(customer_id, "active", [r.serial for r in records], crls)

    def terminate_customer(
        self,
        customer_id: str,
        effective: dt.datetime | None = None,
        progress: Progress | None = None,
        reschedule: bool = False,
    ) -> BulkChange:
        """Ends the service: every certificate revoked (cessation-of-operation) as of `effective`,
        now or, for a future date, when `kinko` next runs its upkeep (crl publish, ocsp refresh).
        A termination already scheduled is moved only when `reschedule` says so."""
        now = self.s.clock.now()
        when = effective or now
        self.s.load_signing_keys()
        with self.s.store.transaction(self.s.actor, self.s.text(now)) as tx:
            customer = tx.customer(customer_id)
            if customer is None:
                raise NotFound("no customer {customer}", customer=customer_id)
            if customer.status == "terminated":
                raise Conflict(
                    "customer {customer} was terminated at {when}",
                    customer=customer_id,
                    when=customer.status_changed_at,
                )
            scheduled = customer.terminate_at
            if scheduled is not None and scheduled == to_text(when):
                raise Conflict(
                    "customer {customer}'s termination is already scheduled for {scheduled}",
                    customer=customer_id,
                    scheduled=scheduled,
                )
            if scheduled is not None and not reschedule:
                raise Conflict(
                    "customer {customer}'s termination is scheduled for {scheduled}: "
                    "to end it at {when} instead, add --reschedule",
                    customer=customer_id,
                    scheduled=scheduled,
                    when=to_text(when),
                )
            if when > now:
                tx.schedule_termination(customer_id, to_text(when) or "")
                tx.append_event(
                    "customer.termination-scheduled", customer=customer_id, details={"effective": to_text(when)}
                )
                return BulkChange(customer_id, customer.status, [], [], to_text(when))
            records = self._terminate_in(tx, customer_id, when, now, progress)
        crls = self.s.publish_after({r.issuer for r in records}, now)
        return BulkChange(customer_id, "terminated", [r.serial for r in records], crls, to_text(when))

    def _terminate_in(
        self, tx: Writer, customer_id: str, when: dt.datetime, now: dt.datetime, progress: Progress | None
    ) -> list[CertificateRecord]:
        records = tx.customer_certificates(customer_id, ("valid", "held"), tx.time)
        for done, record in enumerate(records, 1):
            self.revocation.revoke_in(
                tx, record, "cessation-of-operation", now, revoked_at=min(when, now), customer=customer_id
            )
            _report(progress, done, len(records))
        for subscriber in tx.subscribers(customer_id):
            tx.close_enrollments(subscriber.id)
        tx.set_customer_status(customer_id, "terminated", to_text(when))
        tx.append_event(
            "customer.terminated",
            customer=customer_id,
            details={"effective": to_text(when), "revoked": len(records)},
        )
        return records

    def apply_due_terminations(self) -> list[str]:
        """Applies scheduled service ends whose date has arrived; returns the customers ended."""
        now = self.s.clock.now()
        due = self.s.store.due_terminations(self.s.text(now))
        ended = []
        for customer in due:
            assert customer.terminate_at is not None
            when = dt.datetime.fromisoformat(customer.terminate_at.replace("Z", "+00:00"))
            with self.s.store.transaction(self.s.actor, self.s.text(now)) as tx:
                fresh = tx.customer(customer.id)
                if fresh is None or fresh.status == "terminated":
                    continue  # another process applied it first
                records = self._terminate_in(tx, customer.id, when, now, None)
            self.s.publish_after({r.issuer for r in records}, now)
            ended.append(customer.id)
        return ended

    def note_lapsed_enrollments(self) -> int:
        """Records enrollments that expired unused (`enrollment.expired-unused`), once each."""
        now = self.s.clock.now()
        lapsed = self.s.store.lapsed_enrollments(self.s.text(now))
        if not lapsed:
            return 0
        with self.s.store.transaction(self.s.actor, self.s.text(now)) as tx:
            for enrollment in lapsed:
                subscriber = tx.subscriber(enrollment.subscriber_id)
                if not tx.mark_enrollment_lapsed(enrollment.id):
                    continue  # another process recorded it first
                tx.append_event(
                    "enrollment.expired-unused",
                    subscriber=enrollment.subscriber_id,
                    customer=subscriber.customer_id if subscriber else "",
                    details={"enrollment": enrollment.id, "kind": enrollment.kind, "expired_at": enrollment.expires_at},
                )
        return len(lapsed)

    def upkeep(self) -> None:
        """What the daily jobs also do: apply scheduled service ends, note lapsed enrollments."""
        self.apply_due_terminations()
        self.note_lapsed_enrollments()


def _subscriber(tx: Writer, subscriber_id: str) -> SubscriberRecord:
    subscriber = tx.subscriber(subscriber_id)
    if subscriber is None:
        raise NotFound("no subscriber {subscriber}", subscriber=subscriber_id)
    return subscriber


def _report(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)
