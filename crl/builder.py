"""Builds and signs X.509 v2 CRLs in one linear pass. Pure: no database, no clock.

`cryptography`'s CertificateRevocationListBuilder copies its entry list on every
`add_revoked_certificate`, which makes a million-entry CRL quadratic. Here each entry is
DER-encoded once, straight from the registry's stored text, and the TBSCertList is
assembled by joining bytes. Everything but the per-entry hot loop (names, OIDs,
extension values) is encoded by `cryptography` or `asn1crypto`; tests check the
result byte for byte against `cryptography`'s builder.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import NamedTuple, Protocol

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kinko.ca.der import REASON_CODES, generalized_time, length, tlv, x509_time

_SIGNATURE_OIDS = {
    ("ec", "sha256"): "1.2.840.10045.4.3.2",
    ("ec", "sha384"): "1.2.840.10045.4.3.3",
    ("ec", "sha512"): "1.2.840.10045.4.3.4",
    ("rsa", "sha256"): "1.2.840.113549.1.1.11",
    ("rsa", "sha384"): "1.2.840.113549.1.1.12",
    ("rsa", "sha512"): "1.2.840.113549.1.1.13",
}


class DataSigner(Protocol):
    """The part of a key backend the CRL builder needs."""

    def public_key(self) -> object: ...

    def hash_algorithm(self) -> hashes.HashAlgorithm: ...

    def sign_data(self, data: bytes) -> bytes: ...


class Entry(NamedTuple):
    """One revokedCertificates entry, in the registry's stored forms (a tuple: rows map straight in)."""

    serial: str  # uppercase hex, whole octets, at most 20 octets
    revoked_at: str  # ISO 8601 UTC, e.g. 2026-11-25T10:00:00Z
    reason: str | None = None  # kebab-case RFC 5280 name; None or "unspecified" omit reasonCode
    invalidity_date: str | None = None


# -- DER, by hand only where it is hot ------------------------------------------------------------


def _extension(oid: str, value: bytes, critical: bool) -> bytes:
    body = core.ObjectIdentifier(oid).dump()
    if critical:
        body += b"\x01\x01\xff"
    return tlv(0x30, body + tlv(0x04, value))


_REASON_EXTENSIONS = {
    name: _extension("2.5.29.21", bytes((0x0A, 0x01, code)), critical=False)
    for name, code in REASON_CODES.items()
    if name != "unspecified"
}
_INVALIDITY_PREFIX = b"\x30\x18" + core.ObjectIdentifier("2.5.29.24").dump() + b"\x04\x11"


def encode_entry(entry: Entry | tuple[str, str, str | None, str | None]) -> bytes:
    """DER of one revokedCertificates entry: serial, revocationDate, reasonCode, invalidityDate."""
    serial_hex, revoked_at, reason, invalidity_date = entry
    serial = bytes.fromhex(serial_hex).lstrip(b"\x00") or b"\x00"  # minimal INTEGER octets
    if serial[0] & 0x80:  # keep the INTEGER positive
        serial = b"\x00" + serial
    # Every length inside an entry is under 128 (serial <= 21, time <= 17, extensions <= 38
    # octets), so the short length form is written directly: this loop runs a million times.
    body = b"\x02" + bytes((len(serial),)) + serial + x509_time(revoked_at)
    extensions = _REASON_EXTENSIONS.get(reason, b"") if reason else b""
    if invalidity_date:
        extensions += _INVALIDITY_PREFIX + generalized_time(invalidity_date)
    if extensions:
        body += b"\x30" + bytes((len(extensions),)) + extensions
    return b"\x30" + bytes((len(body),)) + body


def signature_algorithm(signer: DataSigner) -> bytes:
    """DER AlgorithmIdentifier for the signer's key and digest (RSA carries NULL parameters)."""
    public_key = signer.public_key()
    family = "ec" if isinstance(public_key, ec.EllipticCurvePublicKey) else "rsa"
    if family == "rsa" and not isinstance(public_key, rsa.RSAPublicKey):
        raise ValueError("CRLs are signed with EC or RSA keys")
    oid = core.ObjectIdentifier(_SIGNATURE_OIDS[(family, signer.hash_algorithm().name)]).dump()
    return tlv(0x30, oid + (b"\x05\x00" if family == "rsa" else b""))


# -- the builder ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CRLBuilder:
    """Immutable CRL builder in the style of `cryptography`'s: each setter returns a new builder."""

    _issuer: x509.Name | None = None
    _this_update: str | None = None
    _next_update: str | None = None
    _extensions: tuple[tuple[x509.ExtensionType, bool], ...] = field(default=())
    _entries: Iterable[Entry | tuple[str, str, str | None, str | None]] | None = None

    def issuer_name(self, name: x509.Name) -> CRLBuilder:
        """Sets the CA's distinguished name."""
        if self._issuer is not None:
            raise ValueError("the issuer name may only be set once")
        return replace(self, _issuer=name)

    def this_update(self, when: str) -> CRLBuilder:
        """Sets thisUpdate (ISO 8601 UTC text)."""
        if self._this_update is not None:
            raise ValueError("thisUpdate may only be set once")
        return replace(self, _this_update=when)

    def next_update(self, when: str) -> CRLBuilder:
        """Sets nextUpdate (ISO 8601 UTC text)."""
        if self._next_update is not None:
            raise ValueError("nextUpdate may only be set once")
        return replace(self, _next_update=when)

    def add_extension(self, extension: x509.ExtensionType, critical: bool) -> CRLBuilder:
        """Adds a crlExtension; each type at most once."""
        if any(type(existing) is type(extension) for existing, _ in self._extensions):
            raise ValueError(f"{type(extension).__name__} may only be added once")
        return replace(self, _extensions=(*self._extensions, (extension, critical)))

    def entries(self, entries: Iterable[Entry | tuple[str, str, str | None, str | None]]) -> CRLBuilder:
        """Sets the revoked entries; any iterable, consumed once at sign()."""
        if self._entries is not None:
            raise ValueError("entries may only be set once")
        return replace(self, _entries=entries)

    def tbs(self, signer: DataSigner) -> tuple[bytes, int]:
        """Returns the DER TBSCertList and the number of entries in it."""
        if self._issuer is None or self._this_update is None or self._next_update is None:
            raise ValueError("a CRL needs an issuer name, thisUpdate and nextUpdate")
        encoded = list(map(encode_entry, self._entries or ()))
        body = b"".join(
            (
                b"\x02\x01\x01",  # version v2
                signature_algorithm(signer),
                self._issuer.public_bytes(),
                x509_time(self._this_update),
                x509_time(self._next_update),
            )
        )
        if encoded:  # RFC 5280: absent, not empty, when nothing is revoked
            entries_der = b"".join(encoded)
            body += b"\x30" + length(len(entries_der)) + entries_der
        if self._extensions:
            extensions = b"".join(
                _extension(ext.oid.dotted_string, ext.public_bytes(), critical) for ext, critical in self._extensions
            )
            body += tlv(0xA0, tlv(0x30, extensions))
        return b"\x30" + length(len(body)) + body, len(encoded)

    def sign(self, signer: DataSigner) -> tuple[bytes, int]:
        """Signs and returns the DER CertificateList and its entry count."""
        tbs, count = self.tbs(signer)
        signature = signer.sign_data(tbs)
        body = tbs + signature_algorithm(signer) + tlv(0x03, b"\x00" + signature)
        return b"\x30" + length(len(body)) + body, count


def pem(der: bytes) -> bytes:
    """PEM armour for a DER CRL (RFC 7468: base64 in 64-character lines)."""
    text = base64.b64encode(der)
    lines = b"\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    return b"-----BEGIN X509 CRL-----\n" + lines + b"\n-----END X509 CRL-----\n"
