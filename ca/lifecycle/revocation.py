"""Revoke, hold and release: single changes, and the steps bulk operations reuse."""

from __future__ import annotations

import datetime as dt

from kinko.ca.clock import to_text
from kinko.ca.errors import Conflict, InputError, PolicyError
from kinko.ca.lifecycle.session import CA_REVOCATION_REASONS, REVOCATION_REASONS, Session, StatusChange
from kinko.ca.store import CertificateRecord, Writer


class Revocation:
    """Status changes of one certificate, each published before the command returns; the steps
    (`revoke_in`, `hold_in`, `release_in`) also run inside the bulk operations' transactions."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def revoke(
        self,
        serial: str,
        reason: str,
        *,
        invalidity_date: dt.datetime | None = None,
        reported_at: dt.datetime | None = None,
        note: str | None = None,
    ) -> StatusChange:
        """Revokes a certificate for good; a revoked one may only have its reason raised to key-compromise."""
        now = self.s.clock.now()
        record = self._live_certificate(serial, now)
        allowed = CA_REVOCATION_REASONS if record.profile.endswith("-ca") else REVOCATION_REASONS
        if reason not in allowed:
            raise InputError(
                "unknown revocation reason {reason!r}; use one of: {reasons}", reason=reason, reasons=", ".join(allowed)
            )
        check_report_times(now, invalidity_date, reported_at)
        self.s.load_signing_keys({record.issuer})
        audit_signer = self.s.store.authority("audit")
        replaces_signer = audit_signer is not None and audit_signer[0] == record.serial
        with self.s.store.transaction(self.s.actor, self.s.text(now)) as tx:
            if record.status == "revoked":
                if reason != "key-compromise" or record.revocation_reason == "key-compromise":
                    raise Conflict(
                        "certificate {serial} is already revoked ({reason}); "
                        "revocation is final, only a change of reason to key-compromise is allowed",
                        serial=record.serial,
                        reason=record.revocation_reason,
                    )
                self._raise_to_key_compromise_in(tx, record, now, invalidity_date, reported_at, note)
            else:
                self.revoke_in(
                    tx, record, reason, now, invalidity_date=invalidity_date, reported_at=reported_at, note=note
                )
            if replaces_signer:
                # The ledger's own audit signer: a revoked one may seal nothing more, so a new one is
                # appointed in this transaction and seals it (and the CRLs that follow).
                from kinko.ca.hierarchy import replace_audit_signer

                replace_audit_signer(self.s.keys, tx, self.s.config, now, audit_signer, "revoked")
        if replaces_signer and audit_signer is not None:
            self.s.keys.delete_signer_key(audit_signer[1])
        return self._after_status_change(record, now)

    def hold(self, serial: str, *, note: str | None = None) -> StatusChange:
        """Suspends a valid certificate (reason certificateHold); `release` undoes it."""
        now = self.s.clock.now()
        record = self._live_certificate(serial, now)
        if record.status != "valid":
            raise Conflict(
                "certificate {serial} is {status}; only a valid certificate can be held",
                serial=record.serial,
                status=record.status,
            )
        audit_signer = self.s.store.authority("audit")
        if audit_signer is not None and audit_signer[0] == record.serial:
            # A held audit signer could seal nothing, not even its own release.
            raise PolicyError(
                "certificate {serial} is the ledger's audit signer: it cannot be held; "
                "replace it with `kinko ledger signer rotate`, or revoke it",
                serial=record.serial,
            )
        self.s.load_signing_keys({record.issuer})
        with self.s.store.transaction(self.s.actor, self.s.text(now)) as tx:
            self.hold_in(tx, record, now, origin="officer", note=note)
        return self._after_status_change(record, now)

    def release(self, serial: str, *, note: str | None = None) -> StatusChange:
        """Releases a held certificate: it is good again."""
        now = self.s.clock.now()
        record = self.s.certificate(serial)
        if record.status != "held":
            raise Conflict(
                "certificate {serial} is not on hold (it is {status})", serial=record.serial, status=record.status
            )
        self.s.load_signing_keys({record.issuer})
        with self.s.store.transaction(self.s.actor, self.s.text(now)) as tx:
            # Under the write lock: the hold and the customer's status are those being changed.
            current = tx.certificate(record.serial)
            assert current is not None
            customer_id = suspended_customer(current.hold_origin)
            customer = tx.customer(customer_id) if customer_id else None
            if customer is not None and customer.status == "suspended":
                raise PolicyError(
                    "certificate {serial} is held by the suspension of customer {customer}; "
                    "only `kinko customer resume {customer}` releases it",
                    serial=record.serial,
                    customer=customer.id,
                )
            self.release_in(tx, current, now, note=note)
        return self._after_status_change(record, now)

    # -- steps, each inside the caller's transaction ----------------------------------------------

    def revoke_in(
        self,
        tx: Writer,
        record: CertificateRecord,
        reason: str,
        now: dt.datetime,
        *,
        invalidity_date: dt.datetime | None = None,
        reported_at: dt.datetime | None = None,
        note: str | None = None,
        revoked_at: dt.datetime | None = None,
        customer: str = "",
        **details: object,
    ) -> None:
        # An incident's report time is given as --received-at; a revocation's as --reported-at.
        check_times_within(
            record, invalidity_date, reported_at, "received-at" if "incident" in details else "reported-at"
        )
        event = tx.append_event(
            "certificate.revoked",
            serial=record.serial,
            subscriber=record.subscriber_id or "",
            customer=customer,
            details={
                "reason": reason,
                "invalidity_date": to_text(invalidity_date),
                "reported_at": to_text(reported_at),
                "revoked_at": to_text(revoked_at) or tx.time,
                "note": note,
                "previous_status": record.status,
                **details,
            },
        )
        tx.revoke(
            record.serial,
            reason=reason,
            seq=event.seq,
            invalidity_date=to_text(invalidity_date),
            reported_at=to_text(reported_at),
            revoked_at=to_text(revoked_at),
        )
        self.s.presign_changed(tx, record.serial, now)

    def _raise_to_key_compromise_in(
        self,
        tx: Writer,
        record: CertificateRecord,
        now: dt.datetime,
        invalidity_date: dt.datetime | None,
        reported_at: dt.datetime | None,
        note: str | None,
    ) -> None:
        check_times_within(record, invalidity_date, reported_at)
        event = tx.append_event(
            "certificate.reason-changed",
            serial=record.serial,
            subscriber=record.subscriber_id or "",
            details={
                "reason": "key-compromise",
                "previous_reason": record.revocation_reason,
                "invalidity_date": to_text(invalidity_date),
                "reported_at": to_text(reported_at),
                "note": note,
            },
        )
        tx.change_revocation_reason(
            record.serial,
            reason="key-compromise",
            seq=event.seq,
            invalidity_date=to_text(invalidity_date) or record.invalidity_date,
            reported_at=to_text(reported_at) or record.reported_at,
        )
        self.s.presign_changed(tx, record.serial, now)

    def hold_in(
        self,
        tx: Writer,
        record: CertificateRecord,
        now: dt.datetime,
        *,
        origin: str,
        note: str | None = None,
        customer: str = "",
    ) -> None:
        event = tx.append_event(
            "certificate.held",
            serial=record.serial,
            subscriber=record.subscriber_id or "",
            customer=customer,
            details={"note": note, "origin": origin},
        )
        tx.hold(record.serial, seq=event.seq, origin=origin)
        self.s.presign_changed(tx, record.serial, now)

    def release_in(
        self, tx: Writer, record: CertificateRecord, now: dt.datetime, *, note: str | None = None, customer: str = ""
    ) -> None:
        event = tx.append_event(
            "certificate.released",
            serial=record.serial,
            subscriber=record.subscriber_id or "",
            customer=customer,
            details={"note": note, "held_since": record.revoked_at, "origin": record.hold_origin},
        )
        tx.release(record.serial, seq=event.seq)
        self.s.presign_changed(tx, record.serial, now)

    def _live_certificate(self, serial: str, now: dt.datetime) -> CertificateRecord:
        record = self.s.certificate(serial)
        if record.profile == "root-ca":
            raise PolicyError("the root CA certificate cannot be revoked or held; it is trusted directly")
        # Expired certificates leave the CRL and cannot log in: there is nothing left to revoke.
        if record.not_after < self.s.text(now):
            raise PolicyError(
                "certificate {serial} expired at {expired}; expired certificates are not revoked or held",
                serial=record.serial,
                expired=record.not_after,
            )
        return record

    def _after_status_change(self, before: CertificateRecord, now: dt.datetime) -> StatusChange:
        crls = self.s.publish_after({before.issuer}, now)
        after = self.s.store.certificate(before.serial)
        assert after is not None
        return StatusChange(after, crls)


def suspension_origin(customer_id: str) -> str:
    """The hold origin of a customer's suspension."""
    return f"{_SUSPENSION}{customer_id}"


def suspended_customer(origin: str | None) -> str | None:
    """The customer whose suspension made a hold, or None for an officer's hold."""
    if origin is None or not origin.startswith(_SUSPENSION):
        return None
    return origin[len(_SUSPENSION) :]


_SUSPENSION = "suspension:"


def check_report_times(
    now: dt.datetime, invalidity_date: dt.datetime | None, reported_at: dt.datetime | None, label: str = "reported-at"
) -> None:
    """Refuses report and compromise times in the future (`label`: the option that gave the report's time)."""
    if reported_at is not None and reported_at > now:
        raise InputError("{label} {when} is in the future", label=label, when=to_text(reported_at))
    if invalidity_date is not None and invalidity_date > now:
        raise InputError(
            "invalidity date {when} is in the future (after the revocation)", when=to_text(invalidity_date)
        )


def check_times_within(
    record: CertificateRecord,
    invalidity_date: dt.datetime | None,
    reported_at: dt.datetime | None,
    report_label: str = "reported-at",
) -> None:
    """Refuses report and compromise times before the certificate's notBefore."""
    # Such a date is meaningless for this certificate, and one at the calendar's edge (year 1)
    # would be signed into every CRL of the issuer until the certificate expires.
    for label, when in (("invalidity date", invalidity_date), (report_label, reported_at)):
        text = to_text(when)
        if text is not None and text < record.not_before:
            raise InputError(
                "{label} {text} is before certificate {serial} was issued ({issued})",
                label=label,
                text=text,
                serial=record.serial,
                issued=record.not_before,
            )
