"""The registration authority: the bank's rules for who gets which certificate, and when.

Each public method is one officer or front-end action; it checks the rules, then runs
the change and its ledger event in one store transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization

from ca import issuance, profiles
from ca.clock import Clock, SystemClock, to_text
from ca.csr import load_csr
from ca.errors import Conflict, PolicyError
from ca.home import Home
from ca.officers import current_login
from ca.signer import Issuer
from ca.store import CertificateRecord


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
        return Issued(record, certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"))
