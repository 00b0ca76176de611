"""Builds and signs certificates. No policy, no database, no clock: given everything, signs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

from kinko.ca.errors import PolicyError


class CertificateSigner(Protocol):
    """The part of a key backend the signer needs."""

    def public_key(self) -> CertificateIssuerPublicKeyTypes:
        """The public half, for the authority key identifier."""
        ...

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        """Signs a certificate builder."""
        ...


@dataclass(frozen=True)
class Issuer:
    """The CA that signs: its name, its certificate's end, and its key backend."""

    name: x509.Name
    not_after: dt.datetime | None
    key: CertificateSigner


def sign_certificate(
    issuer: Issuer,
    *,
    subject: x509.Name,
    public_key: CertificateIssuerPublicKeyTypes,
    serial: int,
    not_before: dt.datetime,
    not_after: dt.datetime,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    """Signs one certificate; refuses a validity that would outlive the issuer."""
    if not_after <= not_before:
        raise PolicyError("certificate would end before it begins")
    if issuer.not_after is not None and not_after > issuer.not_after:
        raise PolicyError(
            "certificate would end {ends}, after its issuing CA ({ca_ends}); renew the CA first",
            ends=format(not_after, "%Y-%m-%dT%H:%M:%SZ"),
            ca_ends=format(issuer.not_after, "%Y-%m-%dT%H:%M:%SZ"),
        )
    builder = (
        x509.CertificateBuilder()
        .issuer_name(issuer.name)
        .subject_name(subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return issuer.key.sign_certificate(builder)
