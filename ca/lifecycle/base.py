"""What every part of the registration authority shares: the home, the clock, the actor,
issuing a certificate inside a transaction, and publishing after a change."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kinko.ca import issuance, profiles
from kinko.ca.clock import Clock, SystemClock, to_text
from kinko.ca.csr import AcceptedCSR
from kinko.ca.errors import Conflict, NotFound, PolicyError
from kinko.ca.home import Home
from kinko.ca.officers import current_login
from kinko.ca.serials import normalize_serial
from kinko.ca.signer import Issuer
from kinko.ca.store import CertificateRecord, Writer

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


class Base:
    """The session's state and the steps the actions share."""

    def __init__(self, home: Home, clock: Clock | None = None, actor: str | None = None) -> None:
        self.home = home
        self.clock = clock or SystemClock()
        self.actor = actor or current_login()
        self._presigner: Any = None

    @property
    def presigner(self) -> Any:
        """Signs OCSP responses inside the transactions that change a certificate."""
        if self._presigner is None:
            from kinko.ocsp.presign import Presigner

            self._presigner = Presigner(self.home)
        return self._presigner

    @property
    def rules(self) -> Any:
        """The bank's windows from the config ([lifecycle])."""
        return self.home.config.lifecycle

    def _certificate(self, serial: str) -> CertificateRecord:
        record = self.home.store.certificate(normalize_serial(serial))
        if record is None:
            raise NotFound(f"no certificate with serial {normalize_serial(serial)} in this CA's registry")
        return record

    def _issue_in(
        self,
        tx: Writer,
        accepted: AcceptedCSR,
        *,
        subject: x509.Name,
        now: dt.datetime,
        profile: str = "client",
        subscriber_id: str | None = None,
    ) -> Issued:
        """Signs and records a certificate inside `tx`, with its pre-signed OCSP responses;
        the caller appends the ledger event that says why."""
        cfg = self.home.config
        chosen = cfg.profile(profile)
        # The CA's own certificates and its delegated signers (OCSP, ledger audit) are made by
        # init and rotation only: an audit signer from `kinko issue` could re-sign the ledger.
        if chosen.is_ca or chosen.ocsp_no_check or profile in ("ocsp-signer", "audit-signer"):
            raise PolicyError(
                f"profile {profile!r} is for the CA's own certificates; `kinko issue` makes end-entity certificates"
            )
        holder = tx.active_certificate_with_key(accepted.spki_sha256, tx.time)
        if holder is not None:
            raise Conflict(f"this public key is already in active certificate {holder}; generate a new key pair")
        compromised = tx.compromised_certificate_with_key(accepted.spki_sha256)
        if compromised is not None:
            raise PolicyError(
                f"this public key was revoked for key-compromise (certificate {compromised}); generate a new key pair"
            )
        role = self.home.issuing_role
        issuer_cert = self.home.ca_certificate(role)
        issuer = Issuer(name=issuer_cert.subject, not_after=issuer_cert.not_valid_after_utc, key=self.home.key(role))
        record, certificate = issuance.issue(
            tx,
            issuer=issuer,
            issuer_role=role,
            profile=profile,
            subject=subject,
            public_key=accepted.public_key,
            not_before=now,
            not_after=profiles.add_validity(now, chosen.validity),
            extensions=profiles.build_extensions(
                chosen,
                subject_key=accepted.public_key,
                issuer_key=issuer_cert.public_key(),
                urls=profiles.issuer_urls(cfg.ca.base_url, role),
                policy_oid=cfg.ca.policy_oid,
            ),
            subscriber_id=subscriber_id,
            key_hash=accepted.spki_sha256,
        )
        self.presigner.sign(tx, [record], now)
        return Issued(record, certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"))

    @staticmethod
    def _issued_details(record: CertificateRecord, **extra: Any) -> dict[str, Any]:
        return {
            "profile": record.profile,
            "subject": record.subject,
            "not_before": record.not_before,
            "not_after": record.not_after,
            "fingerprint_sha256": record.fingerprint_sha256,
            "spki_sha256": record.spki_sha256,
            **extra,
        }

    def _signing_key(self, roles: set[str] | None = None) -> None:
        """Loads (and, on a terminal, asks the passphrase for) the CA keys a change will need,
        before the write lock is taken: never while other writers wait, and never after the
        change has committed (a revocation whose CRL then cannot be signed)."""
        for role in sorted(roles or {self.home.issuing_role}):
            self.home.key(role)

    def _presign_changed(self, tx: Writer, serial: str, now: dt.datetime) -> None:
        # Same transaction as the status change: the responder can never serve the old status
        # once the change is committed.
        changed = tx.certificate(serial)
        self.presigner.sign(tx, [changed], now)

    def _publish_after(self, issuers: set[str], now: dt.datetime) -> list[Any]:
        """Publishes each affected issuer's CRL once, after a change has committed."""
        from kinko.crl.publisher import publish_after_change

        published: list[Any] = []
        for issuer in sorted(issuers):
            published.extend(publish_after_change(self.home, now, self.actor, issuer))
        return published

    def _now_text(self, now: dt.datetime) -> str:
        return to_text(now) or ""
