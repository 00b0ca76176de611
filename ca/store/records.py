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
class PresignedResponse:
    """A pre-signed OCSP response and the window it is valid in."""

    der: bytes
    this_update: str
    next_update: str


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
