"""The officer's direct issuance path, CRL publication, and OCSP upkeep."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kinko.ca import profiles, windows
from kinko.ca.clock import to_text
from kinko.ca.csr import load_csr
from kinko.ca.errors import InputError, NotFound, PolicyError
from kinko.ca.lifecycle.base import Base, Issued
from kinko.ca.signer import Issuer
from kinko.ca.store import CertificateRecord


class Certificates(Base):
    """Issue, publish CRLs, refresh and rotate OCSP signers."""

    def issue(
        self,
        csr_data: bytes,
        *,
        name: str,
        organization: str | None = None,
        profile: str = "client",
        subscriber_id: str | None = None,
    ) -> Issued:
        """Issues an end-entity certificate from a CSR; the subject comes from the arguments only.

        With a subscriber, the certificate is bound to it (subject serialNumber) and the
        one-active-certificate rule applies."""
        subject = profiles.subject_name(name, organization, serial_number=subscriber_id)
        accepted = load_csr(csr_data)
        self._signing_key()
        now = self.clock.now()
        with self.home.store.transaction(self.actor, self._now_text(now)) as tx:
            if subscriber_id is not None:
                subscriber = tx.subscriber(subscriber_id)
                if subscriber is None:
                    raise NotFound(f"no subscriber {subscriber_id}")
                self._require_active(tx.customer(subscriber.customer_id), subscriber.customer_id)  # type: ignore[attr-defined]
                self._refuse_second_active(tx, subscriber_id, tx.time)
            issued = self._issue_in(
                tx, accepted, subject=subject, now=now, profile=profile, subscriber_id=subscriber_id
            )
            tx.append_event(
                "certificate.issued",
                serial=issued.record.serial,
                subscriber=subscriber_id or "",
                customer=subscriber.customer_id if subscriber_id is not None else "",
                details=self._issued_details(issued.record, via="officer"),
            )
        return issued

    @staticmethod
    def _refuse_second_active(tx: Any, subscriber_id: str, now: str) -> None:
        for record in tx.subscriber_certificates(subscriber_id):
            if windows.is_active(record, now):
                raise PolicyError(
                    f"subscriber {subscriber_id} already has an active certificate ({record.serial}); "
                    "one active certificate per subscriber"
                )

    # -- CRLs ------------------------------------------------------------------------------------

    def publish_crl(self, *, root: bool = False, delta: bool = False) -> list[Any]:
        """Publishes the issuing CA's CRL (and its empty delta), a delta only, or the root's ARL.

        Scheduled service ends that have arrived are applied first, and lapsed enrollments noted."""
        from kinko.crl import publisher

        if root and self.home.config.ca.single_tier:
            raise PolicyError("a single-tier CA has no separate root CRL; use `kinko crl publish`")
        if root and delta:
            raise InputError("the root's ARL has no delta CRLs")
        self.upkeep()  # type: ignore[attr-defined]
        now = self.clock.now()
        if root:
            return [publisher.publish(self.home, now, self.actor, "root", "full")]
        issuer = self.home.issuing_role
        if delta:
            return [publisher.publish(self.home, now, self.actor, issuer, "delta")]
        return publisher.publish_full_and_delta(self.home, now, self.actor, issuer)

    # -- OCSP ------------------------------------------------------------------------------------

    def refresh_ocsp(self) -> dict[str, Any]:
        """Re-signs every pre-signed response past half its lifetime (and any missing one)."""
        from kinko.ocsp.presign import issuer_roles, signer_expiring

        self.upkeep()  # type: ignore[attr-defined]
        now = self.clock.now()
        lifetime = dt.timedelta(days=self.home.config.ocsp.next_update_days)
        refresh_before = to_text(now - lifetime / 2) or ""
        records = self.home.store.certificates_needing_responses(self._now_text(now), refresh_before)
        with self.home.store.transaction(self.actor, self._now_text(now)) as tx:
            # Re-read inside the transaction: a revocation committed since the list was made
            # must not be overwritten by a response signed from the stale row.
            current = [row for row in (tx.certificate(r.serial) for r in records) if row is not None]
            signed = self.presigner.sign(tx, current, now)
        expiring = [
            role
            for role in issuer_roles(self.home)
            if signer_expiring(self.presigner.context(role), now, 2 * self.home.config.ocsp.next_update_days)
        ]
        return {"certificates": len(records), "responses": signed, "signers_expiring": expiring}

    def rotate_ocsp_signers(self) -> list[CertificateRecord]:
        """Issues new delegated OCSP signers and re-signs every unexpired certificate's responses."""
        from kinko.ca.hierarchy import issue_ocsp_signer
        from kinko.ocsp.presign import issuer_roles

        now = self.clock.now()
        now_text = self._now_text(now)
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
