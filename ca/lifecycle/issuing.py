"""Issuing inside a transaction: the step every way to a certificate shares (an officer's issue,
acquisition, renewal, re-acquisition), and the customer checks that come before it."""

from __future__ import annotations

import datetime as dt
import json

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kinko.ca import integrity, issuance, profiles, windows
from kinko.ca.csr import AcceptedCSR
from kinko.ca.errors import Conflict, InputError, NotFound, PolicyError
from kinko.ca.i18n import Phrase
from kinko.ca.integrity import MADE_BY_NONE, Mismatch
from kinko.ca.keys import certificate_key
from kinko.ca.lifecycle.session import Issued, Session
from kinko.ca.signer import Issuer
from kinko.ca.store import CertificateRecord, CustomerRecord, SubscriberRecord, Writer


def confirm_subscriber(tx: Writer, subscriber: SubscriberRecord) -> None:
    """A certificate names its holder only as the ledger recorded them: the row's customer, name and
    e-mail must be what its subscriber.added event says (a row edited behind Kinko's back signs nothing)."""
    event = tx.last_event("subscriber.added", subscriber=subscriber.id)
    details = json.loads(event.details) if event is not None else {}
    recorded = (event.customer, details.get("name"), details.get("email")) if event is not None else None
    if recorded != (subscriber.customer_id, subscriber.name, subscriber.email):
        said = Phrase("seq {seq} says otherwise", {"seq": event.seq}) if event is not None else MADE_BY_NONE
        differ = Phrase("customer, name or e-mail differ: {said}", {"said": said})
        mismatch = Mismatch("subscribers", subscriber.id, differ)
        raise integrity.refuse(mismatch, f"certificate for subscriber {subscriber.id}")


class Issuance:
    """Signs and records end-entity certificates for the other parts."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def issue_in(
        self,
        tx: Writer,
        accepted: AcceptedCSR,
        *,
        subject: x509.Name,
        now: dt.datetime,
        profile: str = "client",
        subscriber_id: str | None = None,
        email: str | None = None,
    ) -> Issued:
        """Signs and records a certificate inside `tx`, with its pre-signed OCSP responses;
        the caller appends the ledger event that says why. The subjectAltName names the holder:
        a subscriber's recorded e-mail address, else `email` (an officer's certificate without a
        subscriber), else a URI."""
        s = self.session
        chosen = s.config.profile(profile)
        # The CA's own certificates and its delegated signers (OCSP, ledger audit) are made by
        # init and rotation only: an audit signer from `kinko issue` could re-sign the ledger, and a
        # certificate with the OCSP-signing EKU could answer "good" for a revoked one.
        if (
            chosen.is_ca
            or chosen.ocsp_no_check
            or "ocsp_signing" in chosen.extended_key_usage
            or profile in ("ocsp-signer", "audit-signer")
        ):
            raise PolicyError(
                "profile {profile!r} is for the CA's own certificates; `kinko issue` makes end-entity certificates",
                profile=profile,
            )
        holder = tx.active_certificate_with_key(accepted.spki_sha256, tx.time)
        if holder is not None:
            raise Conflict(
                "this public key is already in active certificate {serial}; generate a new key pair", serial=holder
            )
        compromised = tx.compromised_certificate_with_key(accepted.spki_sha256)
        if compromised is not None:
            raise PolicyError(
                "this public key was revoked for key-compromise (certificate {serial}); generate a new key pair",
                serial=compromised,
            )
        role = s.keys.issuing_role
        issuer_cert = s.keys.ca_certificate(role)
        issuer = Issuer(name=issuer_cert.subject, not_after=issuer_cert.not_valid_after_utc, key=s.keys.key(role))
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
                issuer_key=certificate_key(issuer_cert),
                urls=profiles.issuer_urls(s.config.ca.base_url, role),
                policy_oid=s.config.ca.policy_oid,
                alt_name=self._alt_name(tx, subscriber_id, email),
            ),
            subscriber_id=subscriber_id,
            key_hash=accepted.spki_sha256,
        )
        s.presigner.sign(tx, [record], now)
        return Issued(record, certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"))

    def _alt_name(self, tx: Writer, subscriber_id: str | None, email: str | None) -> x509.GeneralName:
        if subscriber_id is not None:
            if email is not None:
                raise InputError("a subscriber's certificates name the e-mail address recorded at its enrollment")
            subscriber = tx.subscriber(subscriber_id)
            if subscriber is not None:
                confirm_subscriber(tx, subscriber)
            email = subscriber.email if subscriber is not None else None
        elif email is not None:
            email = profiles.checked_email(email)
        return profiles.holder_alt_name(email, subscriber_id, self.session.config.ca.base_url)

    @staticmethod
    def details(record: CertificateRecord, **extra: object) -> dict[str, object]:
        """What a certificate.issued (or renewed, reacquired, reissued) event records."""
        return {
            "issuer": record.issuer,
            "profile": record.profile,
            "subject": record.subject,
            "not_before": record.not_before,
            "not_after": record.not_after,
            "fingerprint_sha256": record.fingerprint_sha256,
            "spki_sha256": record.spki_sha256,
            **extra,
        }


def require_active_customer(customer: CustomerRecord | None, customer_id: str) -> CustomerRecord:
    """Refuses enrollments and certificates for a missing, suspended, terminated or ending customer."""
    if customer is None:
        raise NotFound("no customer {customer}", customer=customer_id)
    if customer.status != "active":
        raise PolicyError(
            "customer {customer}'s service is {status}: no enrollments or acquisitions",
            customer=customer_id,
            status=customer.status,
        )
    if customer.terminate_at is not None:
        raise PolicyError(
            "customer {customer}'s service ends at {when}: no new certificates",
            customer=customer_id,
            when=customer.terminate_at,
        )
    return customer


def refuse_second_active(tx: Writer, subscriber_id: str, now: str) -> None:
    """One active certificate per subscriber."""
    for record in tx.subscriber_certificates(subscriber_id):
        if windows.is_active(record, now):
            raise PolicyError(
                "subscriber {subscriber} already has an active certificate ({serial}); "
                "one active certificate per subscriber",
                subscriber=subscriber_id,
                serial=record.serial,
            )


def active_certificates(tx: Writer, subscriber_id: str, now: str) -> list[CertificateRecord]:
    """A subscriber's active certificates (unexpired, valid or held)."""
    return [r for r in tx.subscriber_certificates(subscriber_id) if windows.is_active(r, now)]
