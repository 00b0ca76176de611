"""Results several command groups share: a delivered certificate, a status change, a CRL.

Kept free of cryptography imports, like `kinko.ca.registry`, so quick reads start fast.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kinko.ca.commands.render import JSONData, Output, key_values, pick, plain
from kinko.ca.i18n import said
from kinko.ca.registry import CertificateView

if TYPE_CHECKING:
    from kinko.ca.lifecycle import Issued
    from kinko.ca.store import CertificateRecord
    from kinko.crl.publisher import Published


@dataclass(frozen=True)
class CRLView:
    """A published CRL: its number, dates, size and files."""

    issuer: str
    kind: str
    number: int
    base_number: int | None
    this_update: str | None
    next_update: str | None
    entries: int | None
    der: str
    pem: str
    sha256: str | None

    @classmethod
    def of(cls, published: Published) -> CRLView:
        """The view of a CRL that was just published."""
        return cls(
            published.issuer,
            published.kind,
            published.number,
            published.base_number,
            published.this_update,
            published.next_update,
            published.entries,
            str(published.der_path),
            str(published.pem_path),
            published.sha256,
        )


CRL_COLUMNS = ["issuer", "kind", "number", "entries", "this_update", "next_update", "der"]


def crl_views(published: Sequence[Published]) -> list[CRLView]:
    """Views of CRLs just published."""
    return [CRLView.of(p) for p in published]


def crl_summary(crls: Sequence[CRLView]) -> str:
    """'full #3 (12 entries), delta #4 (0 entries)'."""
    return ", ".join(
        said("{kind} #{number} ({entries} entry)", kind=c.kind, number=c.number, entries=c.entries)
        if c.entries == 1
        else said("{kind} #{number} ({entries} entries)", kind=c.kind, number=c.number, entries=c.entries)
        for c in crls
    )


@dataclass(frozen=True)
class Delivered:
    """A newly issued certificate for its holder: the registry view and the PEM."""

    certificate: CertificateView
    pem: str

    @classmethod
    def of(cls, issued: Issued, now: str) -> Delivered:
        """The view of an `Issued` at a time."""
        from kinko.ca.registry import describe

        return cls(describe(issued.record, now), issued.pem)


# cryptography writes the subject's serialNumber (the subscriber id) by its OID; people read the name.
_SERIAL_NUMBER = re.compile(r"(^|(?<!\\),)2\.5\.4\.5=")


def for_people(data: Mapping[str, JSONData]) -> dict[str, JSONData]:
    """A certificate's fields as the human output shows them: serialNumber= in names, and the
    SHA-256 fingerprint as `ca show` and `openssl x509 -fingerprint` print it (AB:CD:...)."""
    shown: dict[str, JSONData] = {}
    for key, value in data.items():
        if key == "fingerprint_sha256" and isinstance(value, str):
            shown["sha256_fingerprint"] = ":".join(value[i : i + 2] for i in range(0, len(value), 2)).upper()
        elif key in ("subject", "issuer") and isinstance(value, str):
            shown[key] = _SERIAL_NUMBER.sub(r"\1serialNumber=", value)
        else:
            shown[key] = value
    return shown


def render_delivered(result: Delivered, out: Output, destination: Path | None) -> None:
    """Writes the PEM to a file (and prints what was written), or prints it."""
    data: dict[str, JSONData] = plain(result.certificate)
    if destination is not None:
        out.write_file(destination, result.pem)
        data["written_to"] = str(destination)
        keys = ("serial", "subject", "not_before", "not_after", "fingerprint_sha256", "written_to")
        out.emit(data, key_values(for_people(pick(data, keys))))
    elif out.as_json:
        out.emit({**data, "pem": result.pem})
    else:
        out.text(result.pem, newline=False)


@dataclass(frozen=True)
class StatusChangeView:
    """A certificate after revoke, hold or release, and the CRLs that made it visible."""

    certificate: CertificateView
    crls: list[CRLView]

    @classmethod
    def of(cls, record: CertificateRecord, crls: Sequence[Published], now: str) -> StatusChangeView:
        """The view of a status change at a time."""
        from kinko.ca.registry import describe

        return cls(describe(record, now), crl_views(crls))

    def to_json(self) -> dict[str, JSONData]:
        """The certificate's fields with the CRLs published."""
        return {**plain(self.certificate), "crls_published": [plain(c) for c in self.crls]}


def render_status_change(result: StatusChangeView, out: Output) -> None:
    """The new status and its dates, and the CRLs published."""
    data = result.to_json()
    shown = pick(data, ("serial", "status", "revocation_reason", "revoked_at", "invalidity_date", "reported_at"))
    if data.get("status") == "held":  # a hold is not a revocation: its time is when it was held
        shown = {("held_at" if key == "revoked_at" else key): value for key, value in shown.items()}
    shown["crl"] = crl_summary(result.crls)
    out.emit(data, key_values(shown))
