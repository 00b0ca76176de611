"""Reading the serial registry for people: a certificate's effective status at a given time.

Kept free of cryptography imports so that `kinko cert show` starts fast.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from kinko.ca.errors import InputError
from kinko.ca.serials import no_such_certificate, normalize_serial
from kinko.ca.store import CertificateRecord

if TYPE_CHECKING:
    from kinko.ca.store import Reader

STATUSES = ("valid", "held", "revoked", "expired")


def effective_status(record: CertificateRecord, now: str) -> str:
    """revoked and held win; otherwise a certificate past notAfter is expired."""
    if record.status in ("revoked", "held"):
        return record.status
    return "expired" if record.not_after < now else "valid"


@dataclass(frozen=True)
class CertificateView:
    """A registry row as people and `--json` see it: DER and internals left out, the status effective."""

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
    revoked_at: str | None
    revocation_reason: str | None
    invalidity_date: str | None
    reported_at: str | None
    hold_origin: str | None
    status_changed_at: str | None


def show(store: Reader, serial_text: str, now: str) -> CertificateView:
    """A certificate's registry entry, with its effective status."""
    serial = normalize_serial(serial_text)
    record = store.certificate(serial)
    if record is None:
        raise no_such_certificate(serial_text)
    return describe(record, now)


def pem(store: Reader, serial_text: str) -> str:
    """A certificate as PEM text."""
    serial = normalize_serial(serial_text)
    record = store.certificate(serial)
    if record is None:
        raise no_such_certificate(serial_text)
    body = base64.encodebytes(record.der).decode("ascii").replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def listing(store: Reader, now: str, status: str | None = None, limit: int | None = None) -> list[CertificateView]:
    """Registry entries newest first, optionally only those with one effective status."""
    if status is not None and status not in STATUSES:
        raise InputError("unknown status {status!r}; use one of {choices}", status=status, choices=", ".join(STATUSES))
    if status == "expired":
        records = store.certificates(("valid",), limit, expired=True, now=now)
    elif status == "valid":
        records = store.certificates(("valid",), limit, expired=False, now=now)
    elif status is not None:
        records = store.certificates((status,), limit)
    else:
        records = store.certificates(None, limit)
    return [describe(record, now) for record in records]


def describe(record: CertificateRecord, now: str) -> CertificateView:
    """A registry row as people see it, with the effective status."""
    # Flat rows: a shallow copy of the fields (asdict's deep copies cost more than the query).
    data = {f.name: getattr(record, f.name) for f in fields(record) if f.name not in ("der", "changed_seq")}
    data["status"] = effective_status(record, now)
    return CertificateView(**data)
