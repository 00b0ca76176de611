"""What the front end and the officers ask: a holder's state, and who must act soon."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Any

from kinko.ca import windows
from kinko.ca.clock import to_text
from kinko.ca.errors import NotFound
from kinko.ca.lifecycle.base import Base


class Reports(Base):
    """Read-only answers, computed from the registry at the clock's time."""

    def certificate_status(self, serial: str) -> dict[str, Any]:
        """The lifecycle state of the holder of a certificate, judged from that certificate."""
        record = self._certificate(serial)
        now = self.clock.now()
        status = windows.status_of(record, False, now, self.rules)
        return {"subscriber": record.subscriber_id, **dataclasses.asdict(status)}

    def subscriber_status(self, subscriber_id: str) -> dict[str, Any]:
        """The lifecycle state of a holder: from its latest certificate and open enrollment."""
        store = self.home.store
        subscriber = store.subscriber(subscriber_id)
        if subscriber is None:
            raise NotFound(f"no subscriber {subscriber_id}")
        now = self.clock.now()
        now_text = to_text(now) or ""
        history = store.subscriber_certificates(subscriber_id)
        pending = [
            e
            for e in store.enrollments(subscriber_id)
            if e.redeemed_at is None and e.closed_at is None and e.expires_at >= now_text
        ]
        status = windows.status_of(history[0] if history else None, bool(pending), now, self.rules)
        data = {"subscriber": subscriber_id, "role": subscriber.role, **dataclasses.asdict(status)}
        if pending:
            data["enrollment_expires_at"] = pending[0].expires_at
        if status.state == "reissue-required":
            data["reissue"] = windows.who_reissues(subscriber.role)
        return data

    def expiring(self, within_days: int) -> list[dict[str, Any]]:
        """Holders whose certificate ends within the given days (renewal open or about to open)."""
        store = self.home.store
        now = self.clock.now()
        rows = []
        for record in store.expiring_certificates(
            to_text(now) or "", to_text(now + dt.timedelta(days=within_days)) or ""
        ):
            rows.append(
                {
                    **_holder(store, record.subscriber_id or ""),
                    "serial": record.serial,
                    "not_after": record.not_after,
                    "days_left": _days_until(record.not_after, now),
                }
            )
        return rows

    def enrollments_expiring(self, within_days: int) -> list[dict[str, Any]]:
        """Unused enrollment codes that lapse within the given days."""
        store = self.home.store
        now = self.clock.now()
        rows = []
        for enrollment in store.open_enrollments(
            to_text(now + dt.timedelta(days=within_days)) or "", to_text(now) or ""
        ):
            rows.append(
                {
                    **_holder(store, enrollment.subscriber_id),
                    "kind": enrollment.kind,
                    "expires_at": enrollment.expires_at,
                    "days_left": _days_until(enrollment.expires_at, now),
                }
            )
        return rows


def _holder(store: Any, subscriber_id: str) -> dict[str, str]:
    subscriber = store.subscriber(subscriber_id)
    return {
        "customer": subscriber.customer_id if subscriber else "",
        "subscriber": subscriber_id,
        "role": subscriber.role if subscriber else "",
        "name": subscriber.name if subscriber else "",
    }


def _days_until(text: str, now: dt.datetime) -> int:
    end = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return max(0, math.ceil((end - now).total_seconds() / 86400))
