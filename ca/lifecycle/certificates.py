"""The officer's direct issuance path, CRL publication, and OCSP upkeep."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kinko.ca import integrity, profiles
from kinko.ca.clock import to_text
from kinko.ca.csr import load_csr
from kinko.ca.errors import InputError, NotFound, PolicyError
from kinko.ca.lifecycle.issuing import Issuance, refuse_second_active, require_active_customer
from kinko.ca.lifecycle.session import Issued, Session
from kinko.ca.signer import Issuer
from kinko.ca.store import CertificateRecord

if TYPE_CHECKING:
    from kinko.crl.publisher import Published


@dataclass(frozen=True)
class OCSPRefresh:
    """What `ocsp refresh` did: rows re-signed, responses stored, and signers near their end."""

    certificates: int
    responses: int
    signers_expiring: list[str]


class Certificates:
    """Issue, publish CRLs, refresh and rotate OCSP signers."""

    def __init__(self, session: Session, issuance: Issuance, upkeep: Callable[[], None]) -> None:
        self.s = session
        self.issuance = issuance
        # The daily jobs (scheduled service ends, lapsed enrollments) run before publishing.
        self.upkeep = upkeep

    def issue(
        self,
        csr_data: bytes,
        *,
        name: str,
        organization: str | None = None,
        profile: str = "client",
        subscriber_id: str | None = None,
        email: str | None = None,
    ) -> Issued:
        """Issues an end-entity certificate from a CSR; the subject comes from the arguments only.

        With a subscriber, the certificate is bound to it (subject serialNumber) and the
        one-active-certificate rule applies."""
        subject = profiles.subject_name(name, organization, serial_number=subscriber_id)
        accepted = load_csr(csr_data)
        self.s.load_signing_keys()
        now = self.s.clock.now()
        customer_id = ""
        with self.s.store.transaction(self.s.actor, self.s.text(now)) as tx:
            if subscriber_id is not None:
                subscriber = tx.subscriber(subscriber_id)
                if subscriber is None:
                    raise NotFound("no subscriber {subscriber}", subscriber=subscriber_id)
                customer_id = subscriber.customer_id
                require_active_customer(tx.customer(customer_id), customer_id)
                refuse_second_active(tx, subscriber_id, tx.time)
            issued = self.issuance.issue_in(
                tx, accepted, subject=subject, now=now, profile=profile, subscriber_id=subscriber_id, email=email
            )
            tx.append_event(
                "certificate.issued",
                serial=issued.record.serial,
                subscriber=subscriber_id or "",
                customer=customer_id,
                details=self.issuance.details(issued.record, via="officer"),
            )
        return issued

    # -- CRLs ------------------------------------------------------------------------------------

    def publish_crl(self, *, root: bool = False, delta: bool = False) -> list[Published]:
        """Publishes the issuing CA's CRL (and its empty delta), a delta only, or the root's ARL.

        Scheduled service ends that have arrived are applied first, and lapsed enrollments noted."""
        if root and self.s.config.ca.single_tier:
            raise PolicyError("a single-tier CA has no separate root CRL; use `kinko crl publish`")
        if root and delta:
            raise InputError("the root's ARL has no delta CRLs")
        self.upkeep()
        now = self.s.clock.now()
        if root:
            return [self.s.crls.publish("root", "full", now, self.s.actor)]
        issuer = self.s.keys.issuing_role
        if delta:
            return [self.s.crls.publish(issuer, "delta", now, self.s.actor)]
        return self.s.crls.full_and_delta(issuer, now, self.s.actor)

    # -- OCSP ------------------------------------------------------------------------------------

    def refresh_ocsp(self) -> OCSPRefresh:
        """Re-signs every pre-signed response past half its lifetime (and any missing one)."""
        self.upkeep()
        now = self.s.clock.now()
        lifetime = dt.timedelta(days=self.s.config.ocsp.next_update_days)
        refresh_before = to_text(now - lifetime / 2) or ""
        records = self.s.store.certificates_needing_responses(self.s.text(now), refresh_before)
        now_text = self.s.text(now)
        with (
            integrity.recorded(self.s.store, self.s.actor, now_text),
            self.s.store.transaction(self.s.actor, now_text) as tx,
        ):
            # Re-read inside the transaction: a revocation committed since the list was made
            # must not be overwritten by a response signed from the stale row.
            current = [row for row in (tx.certificate(r.serial) for r in records) if row is not None]
            signed = self.s.presigner.refresh(tx, current, now)
        horizon = dt.timedelta(days=2 * self.s.config.ocsp.next_update_days)
        expiring = [
            role for role in self.s.presigner.roles() if self.s.presigner.signer_not_after(role) - now < horizon
        ]
        return OCSPRefresh(len(records), signed, expiring)

    def rotate_ocsp_signers(self, roles: list[str] | None = None) -> list[CertificateRecord]:
        """Issues new delegated OCSP signers, re-signs every unexpired certificate's responses with
        them, and retires the old ones: their key files are deleted once the commit is done."""
        from kinko.ca.hierarchy import issue_ocsp_signer

        now = self.s.clock.now()
        now_text = self.s.text(now)
        issued = []
        retired: list[str] = []
        roles = roles if roles is not None else self.s.presigner.roles()
        with (
            integrity.recorded(self.s.store, self.s.actor, now_text),
            self.s.store.transaction(self.s.actor, now_text) as tx,
        ):
            for role in roles:
                old = self.s.store.authority(f"ocsp:{role}")
                certificate = self.s.keys.ca_certificate(role)
                issuer = Issuer(
                    name=certificate.subject, not_after=certificate.not_valid_after_utc, key=self.s.keys.key(role)
                )
                record = issue_ocsp_signer(self.s.keys, tx, self.s.config, issuer, role, now)
                issued.append(record)
                if old is not None:
                    tx.append_event(
                        "ocsp.signer-retired",
                        serial=old[0],
                        details={"issuer": role, "key_file": old[1], "replaced_by": record.serial},
                    )
                    retired.append(old[1])
            self.s.presigner.forget()
            records = [r for role in roles for r in self.s.store.unexpired_certificates(role, now_text)]
            self.s.presigner.refresh(tx, records, now)
        # After the commit: until then the old signer's responses are what the responder serves.
        for key_file in retired:
            self.s.keys.delete_signer_key(key_file)
        return issued

    def renew_due_ocsp_signers(self) -> list[CertificateRecord]:
        """Rotates each OCSP signer past two-thirds of its life (id-pkix-ocsp-nocheck: it cannot
        be revoked, only outlived), so none is ever used near or past its end."""
        now = self.s.clock.now()
        due = []
        for role in self.s.presigner.roles():
            signer = self.s.keys.ca_certificate(f"ocsp:{role}")
            start, end = signer.not_valid_before_utc, signer.not_valid_after_utc
            if now >= start + (end - start) * 2 / 3:
                due.append(role)
        if not due:
            return []
        for role in due:  # the CA keys before the write lock (not load_signing_keys: it calls this)
            self.s.keys.key(role)
        return self.rotate_ocsp_signers(due)
