"""The bank's certificate windows as small named checks, each with its own refusal.

All boundaries are inclusive and exact to the second, from the stored instants:
an enrollment is usable through created + 80 days; renewal is open from
notAfter - 30 days through notAfter; re-acquisition from notAfter through
notAfter + 90 days; after that only a reissue helps.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from kinko.ca.clock import from_text, to_text
from kinko.ca.config import LifecycleSettings
from kinko.ca.errors import PolicyError
from kinko.ca.i18n import Phrase
from kinko.ca.store import CertificateRecord

BAD_CODE = "the enrollment code is not valid (wrong, already used or expired)"


def _at(text: str) -> dt.datetime:
    value = from_text(text)
    assert value is not None
    return value


def is_active(certificate: CertificateRecord, now: str) -> bool:
    """Active = not expired and not revoked (a held certificate still counts): at most one per holder."""
    return certificate.status in ("valid", "held") and certificate.not_after >= now


def enrollment_expiry(created: dt.datetime, rules: LifecycleSettings) -> dt.datetime:
    """The last instant an enrollment can be redeemed."""
    return created + dt.timedelta(days=rules.enrollment_days)


def renewal_window(certificate: CertificateRecord, rules: LifecycleSettings) -> tuple[dt.datetime, dt.datetime]:
    """(first, last) instant a certificate may be renewed."""
    end = _at(certificate.not_after)
    return end - dt.timedelta(days=rules.renewal_days), end


def reacquire_window(certificate: CertificateRecord, rules: LifecycleSettings) -> tuple[dt.datetime, dt.datetime]:
    """(first, last) instant a holder whose certificate expired may re-acquire."""
    end = _at(certificate.not_after)
    return end, end + dt.timedelta(days=rules.grace_days)


def who_reissues(role: str) -> Phrase:
    """Who a holder asks for a reissue: administrators ask the bank, users their administrator."""
    if role == "administrator":
        return Phrase("an administrator applies to the bank for a reissue (kinko reissue --subscriber ...)")
    return Phrase("a user asks their administrator for a reissue (kinko reissue --subscriber ... --by ADMIN)")


def check_renewal(certificate: CertificateRecord, now: dt.datetime, rules: LifecycleSettings) -> None:
    """Refuses a renewal outside notAfter - renewal_days .. notAfter, or of a revoked or held one."""
    if certificate.status != "valid":
        raise PolicyError(
            "certificate {serial} is {status}; only a valid one is renewed",
            serial=certificate.serial,
            status=certificate.status,
        )
    opens, closes = renewal_window(certificate, rules)
    if now < opens:
        raise PolicyError(
            "renewal of {serial} opens at {opens} ({days} days before it expires)",
            serial=certificate.serial,
            opens=to_text(opens),
            days=rules.renewal_days,
        )
    if now > closes:
        raise PolicyError(
            "certificate {serial} expired at {closes}; renewal is closed, re-acquire it instead (kinko reacquire)",
            serial=certificate.serial,
            closes=to_text(closes),
        )


def check_reacquire(certificate: CertificateRecord, role: str, now: dt.datetime, rules: LifecycleSettings) -> None:
    """Refuses a re-acquisition unless the last certificate expired unrevoked within the grace period."""
    if certificate.status == "revoked":
        raise PolicyError(
            "certificate {serial} was revoked ({reason}); a revoked certificate cannot be re-acquired: {who}",
            serial=certificate.serial,
            reason=certificate.revocation_reason,
            who=who_reissues(role),
        )
    if certificate.status == "held":
        raise PolicyError("certificate {serial} is on hold; it cannot be re-acquired", serial=certificate.serial)
    opens, closes = reacquire_window(certificate, rules)
    if now < opens:
        # Advice the holder can follow today: renewal may be months away yet.
        renewal = renewal_window(certificate, rules)[0]
        if now >= renewal:
            raise PolicyError(
                "certificate {serial} is valid until {expires}; re-acquisition is only for an expired one: "
                "renew it now (kinko renew)",
                serial=certificate.serial,
                expires=certificate.not_after,
            )
        raise PolicyError(
            "certificate {serial} is valid until {expires}; re-acquisition is only for an expired one: "
            "renew it from {opens} (kinko renew)",
            serial=certificate.serial,
            expires=certificate.not_after,
            opens=to_text(renewal),
        )
    if now > closes:
        raise PolicyError(
            "the {days}-day grace period after {expires} ended at {closes}; a reissue is needed: {who}",
            days=rules.grace_days,
            expires=certificate.not_after,
            closes=to_text(closes),
            who=who_reissues(role),
        )


@dataclass(frozen=True)
class LifecycleStatus:
    """What the login front end shows: one state, with the dates behind it."""

    state: str  # pending | valid | renewal-open | expired-reacquirable | reissue-required | on-hold | revoked
    serial: str | None = None
    not_after: str | None = None
    days_left: int | None = None
    opens_at: str | None = None
    closes_at: str | None = None
    reason: str | None = None


def _days(until: dt.datetime, now: dt.datetime) -> int:
    return max(0, math.ceil((until - now).total_seconds() / 86400))


def status_of(
    certificate: CertificateRecord | None, pending: bool, now: dt.datetime, rules: LifecycleSettings
) -> LifecycleStatus:
    """The state of a holder's latest certificate (or of an open enrollment without one)."""
    if certificate is None:
        return LifecycleStatus("pending" if pending else "reissue-required")
    # Revoked and held win over an open enrollment: the holder's certificate does not work, and
    # why is what the officer and the front end must see (the open code shows beside it).
    if certificate.status == "revoked":
        return LifecycleStatus(
            "revoked", certificate.serial, certificate.not_after, reason=certificate.revocation_reason
        )
    if certificate.status == "held":
        return LifecycleStatus("on-hold", certificate.serial, certificate.not_after)
    if pending and now > _at(certificate.not_after):
        # A reissue's code is out and the old certificate has ended: waiting for acquisition.
        return LifecycleStatus("pending", certificate.serial, certificate.not_after)
    opens, closes = renewal_window(certificate, rules)
    if now < opens:
        return LifecycleStatus(
            "valid", certificate.serial, certificate.not_after, _days(closes, now), to_text(opens), to_text(closes)
        )
    if now <= closes:
        return LifecycleStatus(
            "renewal-open",
            certificate.serial,
            certificate.not_after,
            _days(closes, now),
            to_text(opens),
            to_text(closes),
        )
    grace_opens, grace_closes = reacquire_window(certificate, rules)
    if now <= grace_closes:
        return LifecycleStatus(
            "expired-reacquirable",
            certificate.serial,
            certificate.not_after,
            _days(grace_closes, now),
            to_text(grace_opens),
            to_text(grace_closes),
        )
    return LifecycleStatus("reissue-required", certificate.serial, certificate.not_after)
