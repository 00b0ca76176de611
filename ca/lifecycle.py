"""The registration authority: the bank's rules for who gets which certificate, and when.

Each public method is one officer or front-end action; it checks the rules, then runs
the change and its ledger event in one store transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization

from ca import issuance, profiles
from ca.clock import Clock, SystemClock, to_text
from ca.csr import load_csr
from ca.errors import Conflict, InputError, NotFound, PolicyError
from ca.home import Home
from ca.officers import current_login
from ca.serials import normalize_serial
from ca.signer import Issuer
from ca.store import CertificateRecord

# Reasons an officer may give, by RFC 5280 name in kebab case. certificateHold has its own
# command (hold); removeFromCRL only appears in delta CRLs, for released holds.
REVOCATION_REASONS = (
    "unspecified",
    "key-compromise",
    "affiliation-changed",
    "superseded",
    "cessation-of-operation",
    "privilege-withdrawn",
)
CA_REVOCATION_REASONS = (*REVOCATION_REASONS, "ca-compromise")


@dataclass(frozen=True)
class StatusChange:
    """The result of revoke, hold or release: the registry row after it, and the CRLs published."""

    record: CertificateRecord
    crls: list[Any]


@dataclass(frozen=True)
class Issued:
    """A newly issued certificate: its registry row and its PEM."""

    record: CertificateRecord
    pem: str


class Kinko:
    """One operator's session with a CA home."""

    def __init__(self, home: Home, clock: Clock | None = None, actor: str | None = None) -> None:
        self.home = home
        self.clock = clock or SystemClock()
        self.actor = actor or current_login()
        self._presigner: Any = None

    @property
    def presigner(self) -> Any:
        """Signs OCSP responses inside the transactions that change a certificate."""
        if self._presigner is None:
            from ocsp.presign import Presigner

            self._presigner = Presigner(self.home)
        return self._presigner

    def issue(
        self,
        csr_data: bytes,
        *,
        name: str,
        organization: str | None = None,
        profile: str = "client",
        subscriber_id: str | None = None,
    ) -> Issued:
        """Issues an end-entity certificate from a CSR; the subject comes from the arguments only."""
        cfg = self.home.config
        chosen = cfg.profile(profile)
        if chosen.is_ca or chosen.ocsp_no_check:
            raise PolicyError(
                f"profile {profile!r} is for the CA's own certificates; `kinko issue` makes end-entity certificates"
            )
        subject = profiles.subject_name(name, organization, serial_number=subscriber_id)
        accepted = load_csr(csr_data)
        role = self.home.issuing_role
        issuer_cert = self.home.ca_certificate(role)
        issuer = Issuer(name=issuer_cert.subject, not_after=issuer_cert.not_valid_after_utc, key=self.home.key(role))
        now = self.clock.now()
        now_text = to_text(now) or ""
        not_after = profiles.add_validity(now, chosen.validity)
        extensions = profiles.build_extensions(
            chosen,
            subject_key=accepted.public_key,
            issuer_key=issuer_cert.public_key(),
            urls=profiles.issuer_urls(cfg.ca.base_url, role),
            policy_oid=cfg.ca.policy_oid,
        )
        with self.home.store.transaction(self.actor, now_text) as tx:
            holder = tx.active_certificate_with_key(accepted.spki_sha256, now_text)
            if holder is not None:
                raise Conflict(f"this public key is already in active certificate {holder}; generate a new key pair")
            record, certificate = issuance.issue(
                tx,
                issuer=issuer,
                issuer_role=role,
                profile=profile,
                subject=subject,
                public_key=accepted.public_key,
                not_before=now,
                not_after=not_after,
                extensions=extensions,
                subscriber_id=subscriber_id,
            )
            tx.append_event(
                "certificate.issued",
                serial=record.serial,
                subscriber=subscriber_id or "",
                details={
                    "profile": profile,
                    "subject": record.subject,
                    "not_before": record.not_before,
                    "not_after": record.not_after,
                    "fingerprint_sha256": record.fingerprint_sha256,
                    "spki_sha256": record.spki_sha256,
                },
            )
            self.presigner.sign(tx, [record], now)
        return Issued(record, certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"))

    # -- revocation ----------------------------------------------------------------------------

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
        now = self.clock.now()
        record = self._live_certificate(serial, now)
        allowed = CA_REVOCATION_REASONS if record.profile.endswith("-ca") else REVOCATION_REASONS
        if reason not in allowed:
            raise InputError(f"unknown revocation reason {reason!r}; use one of: {', '.join(allowed)}")
        if reported_at is not None and reported_at > now:
            raise InputError(f"reported-at {to_text(reported_at)} is in the future")
        if invalidity_date is not None and invalidity_date > now:
            raise InputError(f"invalidity date {to_text(invalidity_date)} is in the future (after the revocation)")
        details = {
            "reason": reason,
            "invalidity_date": to_text(invalidity_date),
            "reported_at": to_text(reported_at),
            "note": note,
            "previous_status": record.status,
        }
        if record.status == "revoked":
            if reason != "key-compromise" or record.revocation_reason == "key-compromise":
                raise Conflict(
                    f"certificate {record.serial} is already revoked ({record.revocation_reason}); "
                    "revocation is final, only a change of reason to key-compromise is allowed"
                )
            with self.home.store.transaction(self.actor, to_text(now) or "") as tx:
                event = tx.append_event(
                    "certificate.reason-changed",
                    serial=record.serial,
                    subscriber=record.subscriber_id or "",
                    details={**details, "previous_reason": record.revocation_reason},
                )
                tx.change_revocation_reason(
                    record.serial,
                    reason=reason,
                    seq=event.seq,
                    invalidity_date=to_text(invalidity_date) or record.invalidity_date,
                    reported_at=to_text(reported_at) or record.reported_at,
                )
                self._presign_changed(tx, record.serial, now)
        else:
            with self.home.store.transaction(self.actor, to_text(now) or "") as tx:
                event = tx.append_event(
                    "certificate.revoked", serial=record.serial, subscriber=record.subscriber_id or "", details=details
                )
                tx.revoke(
                    record.serial,
                    reason=reason,
                    seq=event.seq,
                    invalidity_date=to_text(invalidity_date),
                    reported_at=to_text(reported_at),
                )
                self._presign_changed(tx, record.serial, now)
        return self._after_status_change(record, now)

    def hold(self, serial: str, *, note: str | None = None) -> StatusChange:
        """Suspends a valid certificate (reason certificateHold); `release` undoes it."""
        now = self.clock.now()
        record = self._live_certificate(serial, now)
        if record.status != "valid":
            raise Conflict(f"certificate {record.serial} is {record.status}; only a valid certificate can be held")
        with self.home.store.transaction(self.actor, to_text(now) or "") as tx:
            event = tx.append_event(
                "certificate.held",
                serial=record.serial,
                subscriber=record.subscriber_id or "",
                details={"note": note, "origin": "officer"},
            )
            tx.hold(record.serial, seq=event.seq, origin="officer")
            self._presign_changed(tx, record.serial, now)
        return self._after_status_change(record, now)

    def release(self, serial: str, *, note: str | None = None) -> StatusChange:
        """Releases a held certificate: it is good again."""
        now = self.clock.now()
        record = self._certificate(serial)
        if record.status != "held":
            raise Conflict(f"certificate {record.serial} is not on hold (it is {record.status})")
        with self.home.store.transaction(self.actor, to_text(now) or "") as tx:
            event = tx.append_event(
                "certificate.released",
                serial=record.serial,
                subscriber=record.subscriber_id or "",
                details={"note": note, "held_since": record.revoked_at, "origin": record.hold_origin},
            )
            tx.release(record.serial, seq=event.seq)
            self._presign_changed(tx, record.serial, now)
        return self._after_status_change(record, now)

    def _presign_changed(self, tx: Any, serial: str, now: dt.datetime) -> None:
        # Same transaction as the status change: the responder can never serve the old status
        # once the change is committed.
        changed = tx.certificate(serial)
        self.presigner.sign(tx, [changed], now)

    def _certificate(self, serial: str) -> CertificateRecord:
        record = self.home.store.certificate(normalize_serial(serial))
        if record is None:
            raise NotFound(f"no certificate with serial {normalize_serial(serial)} in this CA's registry")
        return record

    def _live_certificate(self, serial: str, now: dt.datetime) -> CertificateRecord:
        record = self._certificate(serial)
        if record.profile == "root-ca":
            raise PolicyError("the root CA certificate cannot be revoked or held; it is trusted directly")
        # Expired certificates leave the CRL and cannot log in: there is nothing left to revoke.
        if record.not_after < (to_text(now) or ""):
            raise PolicyError(
                f"certificate {record.serial} expired at {record.not_after}; expired certificates "
                "are not revoked or held"
            )
        return record

    def _after_status_change(self, before: CertificateRecord, now: dt.datetime) -> StatusChange:
        from crl.publisher import publish_after_change

        crls = publish_after_change(self.home, now, self.actor, before.issuer)
        after = self.home.store.certificate(before.serial)
        assert after is not None
        return StatusChange(after, crls)

    # -- CRLs ------------------------------------------------------------------------------------

    def publish_crl(self, *, root: bool = False, delta: bool = False) -> list[Any]:
        """Publishes the issuing CA's CRL (and its empty delta), a delta only, or the root's ARL."""
        from crl import publisher

        now = self.clock.now()
        if root:
            if self.home.config.ca.single_tier:
                raise PolicyError("a single-tier CA has no separate root CRL; use `kinko crl publish`")
            if delta:
                raise InputError("the root's ARL has no delta CRLs")
            return [publisher.publish(self.home, now, self.actor, "root", "full")]
        issuer = self.home.issuing_role
        if delta:
            return [publisher.publish(self.home, now, self.actor, issuer, "delta")]
        return publisher.publish_full_and_delta(self.home, now, self.actor, issuer)

    # -- OCSP ------------------------------------------------------------------------------------

    def refresh_ocsp(self) -> dict[str, Any]:
        """Re-signs every pre-signed response past half its lifetime (and any missing one)."""
        now = self.clock.now()
        lifetime = dt.timedelta(days=self.home.config.ocsp.next_update_days)
        refresh_before = to_text(now - lifetime / 2) or ""
        records = self.home.store.certificates_needing_responses(to_text(now) or "", refresh_before)
        with self.home.store.transaction(self.actor, to_text(now) or "") as tx:
            signed = self.presigner.sign(tx, records, now)
        from ocsp.presign import issuer_roles, signer_expiring

        expiring = [
            role
            for role in issuer_roles(self.home)
            if signer_expiring(self.presigner.context(role), now, 2 * self.home.config.ocsp.next_update_days)
        ]
        return {"certificates": len(records), "responses": signed, "signers_expiring": expiring}

    def rotate_ocsp_signers(self) -> list[CertificateRecord]:
        """Issues new delegated OCSP signers and re-signs every unexpired certificate's responses with them."""
        from ca.hierarchy import issue_ocsp_signer
        from ocsp.presign import issuer_roles

        now = self.clock.now()
        now_text = to_text(now) or ""
        issued = []
        with self.home.store.transaction(self.actor, now_text) as tx:
            for role in issuer_roles(self.home):
                certificate = self.home.ca_certificate(role)
                issuer = Issuer(
                    name=certificate.subject, not_after=certificate.not_valid_after_utc, key=self.home.key(role)
                )
                issued.append(issue_ocsp_signer(self.home, tx, self.home.config, issuer, role, now))
            self.presigner.forget()
            records = [
                r for role in issuer_roles(self.home) for r in self.home.store.unexpired_certificates(role, now_text)
            ]
            self.presigner.sign(tx, records, now)
        return issued
