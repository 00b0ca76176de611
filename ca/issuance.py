"""The CA's side of issuance: reserve a serial, sign, record — inside the caller's transaction."""

from __future__ import annotations

import datetime as dt
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

from kinko.ca import signer
from kinko.ca.clock import to_text
from kinko.ca.csr import spki_sha256
from kinko.ca.errors import StorageError
from kinko.ca.serials import format_serial, new_serial
from kinko.ca.store import CertificateRecord, Writer

SERIAL_ATTEMPTS = 8


def issue(
    tx: Writer,
    *,
    issuer: signer.Issuer,
    issuer_role: str,
    profile: str,
    subject: x509.Name,
    public_key: CertificateIssuerPublicKeyTypes,
    not_before: dt.datetime,
    not_after: dt.datetime,
    extensions: list[tuple[x509.ExtensionType, bool]],
    subscriber_id: str | None = None,
    key_hash: str | None = None,
) -> tuple[CertificateRecord, x509.Certificate]:
    """Signs a certificate and records it in the registry; the caller appends the ledger event."""
    # Reserve, sign, record: the serial is claimed by the registry's unique key *before*
    # anything is signed, so two certificates can never share a serial. All three steps
    # run in the caller's transaction: a crash after signing rolls the claim back, and
    # the certificate, never returned to anyone, does not exist.
    for _ in range(SERIAL_ATTEMPTS):
        serial = new_serial()
        if tx.reserve_serial(format_serial(serial), issuer_role):
            break
    else:
        raise StorageError("could not draw an unused serial in {count} attempts", count=SERIAL_ATTEMPTS)
    certificate = signer.sign_certificate(
        issuer,
        subject=subject,
        public_key=public_key,
        serial=serial,
        not_before=not_before,
        not_after=not_after,
        extensions=extensions,
    )
    der = certificate.public_bytes(serialization.Encoding.DER)
    record = CertificateRecord(
        serial=format_serial(serial),
        issuer=issuer_role,
        profile=profile,
        subject=subject.rfc4514_string(),
        subscriber_id=subscriber_id,
        not_before=to_text(not_before) or "",
        not_after=to_text(not_after) or "",
        status="valid",
        issued_at=tx.time,
        fingerprint_sha256=hashlib.sha256(der).hexdigest(),
        spki_sha256=key_hash or spki_sha256(public_key),  # CSR intake has usually hashed it already
        der=der,
    )
    tx.record_certificate(record)
    return record, certificate
