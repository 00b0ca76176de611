"""What the front end and the officers ask: a holder's state, a customer's holders, and who must act soon."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass

from kinko.ca import windows
from kinko.ca.clock import to_text
from kinko.ca.errors import NotFound
from kinko.ca.lifecycle.session import Session
from kinko.ca.store import CustomerRecord, SubscriberRecord

JSONObject = dict[str, object]


@dataclass(frozen=True)
class HolderStatus:
    """A holder's lifecycle state, judged from its latest certificate (and open enrollment)."""

    subscriber: str | None
    status: windows.LifecycleStatus
    role: str | None = None
    enrollment_expires_at: str | None = None
    reissue: str | None = None
    # Clients locked out of trying this holder's codes now: (client, locked_until).
    locks: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> JSONObject:
        """The `status` document: the subscriber, its role (when asked by subscriber), the state's fields."""
        data: JSONObject = {"subscriber": self.subscriber}
        if self.role is not None:
            data["role"] = self.role
        data.update(dataclasses.asdict(self.status))
        for name in ("enrollment_expires_at", "reissue"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.locks:
            data["locked_out"] = [{"client": client, "until": until} for client, until in self.locks]
        return data


@dataclass(frozen=True)
class CustomerOverview:
    """A customer with each of its holders' state, as of a time."""

    customer: CustomerRecord
    holders: list[tuple[SubscriberRecord, HolderStatus]]
    as_of: str

    def holder_rows(self) -> list[JSONObject]:
        """One row per holder: who it is and its state."""
        return [
            {"id": subscriber.id, "role": subscriber.role, "name": subscriber.name, **status.to_json()}
            for subscriber, status in self.holders
        ]

    def to_json(self) -> JSONObject:
        """The `customer show` document."""
        return {**dataclasses.asdict(self.customer), "subscribers": self.holder_rows(), "as_of": self.as_of}


@dataclass(frozen=True)
class ExpiringCertificate:
    """A holder whose certificate ends soon."""

    customer: str
    subscriber: str
    role: str
    name: str
    serial: str
    not_after: str
    days_left: int


@dataclass(frozen=True)
class ExpiringEnrollment:
    """An unused enrollment code that lapses soon."""

    customer: str
    subscriber: str
    role: str
    name: str
    kind: str
    expires_at: str
    days_left: int


class Reports:
    """Read-only answers, computed from the registry at the clock's time."""

    def __init__(self, session: Session, locks: Callable[[str], list[tuple[str, str, str]]] | None = None) -> None:
        self.s = session
        self.locks = locks  # the clients locked out of a holder's codes now (Accounts.code_locks)

    def certificate_status(self, serial: str) -> HolderStatus:
        """The lifecycle state of the holder of a certificate, judged from that certificate."""
        record = self.s.certificate(serial)
        now = self.s.clock.now()
        return HolderStatus(record.subscriber_id, windows.status_of(record, False, now, self.s.config.lifecycle))

    def subscriber_status(self, subscriber_id: str) -> HolderStatus:
        """The lifecycle state of a holder: from its latest certificate and open enrollment."""
        store = self.s.store
        subscriber = store.subscriber(subscriber_id)
        if subscriber is None:
            raise NotFound("no subscriber {subscriber}", subscriber=subscriber_id)
        now = self.s.clock.now()
        now_text = to_text(now) or ""
        history = store.subscriber_certificates(subscriber_id)
        pending = [
            e
            for e in store.enrollments(subscriber_id)
            if e.redeemed_at is None and e.closed_at is None and e.expires_at >= now_text
        ]
        status = windows.status_of(history[0] if history else None, bool(pending), now, self.s.config.lifecycle)
        return HolderStatus(
            subscriber_id,
            status,
            role=subscriber.role,
            enrollment_expires_at=pending[0].expires_at if pending else None,
            reissue=str(windows.who_reissues(subscriber.role)) if status.state == "reissue-required" else None,
            locks=tuple((client, until) for client, _, until in self.locks(subscriber_id)) if self.locks else (),
        )

    def customer_overview(self, customer_id: str) -> CustomerOverview:
        """A customer with its subscribers and their current state."""
        customer = self.s.store.customer(customer_id)
        if customer is None:
            raise NotFound("no customer {customer}", customer=customer_id)
        now = self.s.clock.now()
        subscribers = self.s.store.subscribers(customer_id)
        holders = [(subscriber, self.subscriber_status(subscriber.id)) for subscriber in subscribers]
        return CustomerOverview(customer, holders, self.s.text(now))

    def expiring(self, within_days: int) -> list[ExpiringCertificate]:
        """Holders whose certificate ends within the given days (renewal open or about to open)."""
        store = self.s.store
        now = self.s.clock.now()
        rows = []
        for record in store.expiring_certificates(
            to_text(now) or "", to_text(now + dt.timedelta(days=within_days)) or ""
        ):
            rows.append(
                ExpiringCertificate(
                    *self._holder(record.subscriber_id or ""),
                    serial=record.serial,
                    not_after=record.not_after,
                    days_left=_days_until(record.not_after, now),
                )
            )
        return rows

    def enrollments_expiring(self, within_days: int) -> list[ExpiringEnrollment]:
        """Unused enrollment codes that lapse within the given days."""
        store = self.s.store
        now = self.s.clock.now()
        rows = []
        for enrollment in store.open_enrollments(
            to_text(now + dt.timedelta(days=within_days)) or "", to_text(now) or ""
        ):
            rows.append(
                ExpiringEnrollment(
                    *self._holder(enrollment.subscriber_id),
                    kind=enrollment.kind,
                    expires_at=enrollment.expires_at,
                    days_left=_days_until(enrollment.expires_at, now),
                )
            )
        return rows

    def _holder(self, subscriber_id: str) -> tuple[str, str, str, str]:
        """(customer, subscriber, role, name) of a holder; blanks for an unknown id."""
        subscriber = self.s.store.subscriber(subscriber_id)
        if subscriber is None:
            return "", subscriber_id, "", ""
        return subscriber.customer_id, subscriber_id, subscriber.role, subscriber.name


def _days_until(text: str, now: dt.datetime) -> int:
    end = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return max(0, math.ceil((end - now).total_seconds() / 86400))
