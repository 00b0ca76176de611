"""Rows the store hands out: frozen dataclasses named for what they hold."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class CertificateRecord:
    """One row of the serial registry."""

    serial: str
    issuer: str
    profile: str
    subject: str
    subscriber_id: str | None
    not_before: str
    not_after: str
    status: str
    issued_at: str
    fingerprint_sha256: str
    spki_sha256: str
    der: bytes
    revoked_at: str | None = None
    revocation_reason: str | None = None
    invalidity_date: str | None = None
    reported_at: str | None = None
    hold_origin: str | None = None
    status_changed_at: str | None = None
    changed_seq: int | None = None


@dataclass(frozen=True)
class RevocationState:
    """What OCSP needs of a registry row: its issuer and revocation columns."""

    issuer: str
    status: str
    revoked_at: str | None
    revocation_reason: str | None
    changed_seq: int | None


@dataclass(frozen=True)
class PresignedResponse:
    """A pre-signed OCSP response and the window it is valid in."""

    der: bytes
    this_update: str
    next_update: str
    issuer: str


@dataclass(frozen=True)
class CRLRecord:
    """One published (or reserved) CRL."""

    issuer: str
    number: int
    kind: str
    base_number: int | None
    this_update: str | None
    next_update: str | None
    entries: int | None
    state: str
    published_at: str | None
    ledger_seq: int | None
    sha256: str | None


CERT_COLUMNS = ", ".join(f.name for f in fields(CertificateRecord))
CRL_COLUMNS = ", ".join(f.name for f in fields(CRLRecord))


@dataclass(frozen=True)
class CustomerRecord:
    """A company using the service."""

    id: str
    name: str
    status: str  # active | suspended | terminated
    created_at: str
    status_changed_at: str | None
    terminate_at: str | None


@dataclass(frozen=True)
class SubscriberRecord:
    """An administrator or user of a customer: the holder of at most one active certificate."""

    id: str
    customer_id: str
    role: str  # administrator | user
    name: str
    status: str
    created_at: str
    created_by: str | None
    failed_attempts: int
    locked_until: str | None
    email: str | None = None  # put in its certificates' subjectAltName


@dataclass(frozen=True)
class EnrollmentRecord:
    """A one-time acquisition code (kept as a hash) for a subscriber."""

    id: int
    subscriber_id: str
    kind: str  # new | reissue
    lookup: str
    code_hash: str
    created_at: str
    expires_at: str
    created_by: str | None
    redeemed_at: str | None
    redeemed_serial: str | None
    closed_at: str | None
    expiry_recorded: int


@dataclass(frozen=True)
class IncidentRecord:
    """A holder's report of a lost, stolen, disposed or compromised certificate."""

    id: int
    subscriber_id: str
    serial: str | None
    kind: str
    reason: str | None
    received_at: str
    suspected_since: str | None
    officer: str
    recorded_at: str
    revoked_at: str | None
    suspended_customer: int
    note: str | None


CUSTOMER_COLUMNS = ", ".join(f.name for f in fields(CustomerRecord))
SUBSCRIBER_COLUMNS = ", ".join(f.name for f in fields(SubscriberRecord))
ENROLLMENT_COLUMNS = ", ".join(f.name for f in fields(EnrollmentRecord))
INCIDENT_COLUMNS = ", ".join(f.name for f in fields(IncidentRecord))
