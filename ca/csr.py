"""CSR intake: parse PEM or DER, verify proof of possession, and apply the key policy.

The CSR contributes its public key and its signature only; who may have a certificate,
and what it says, is decided elsewhere.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from kinko.ca.errors import InputError, PolicyError

MAX_CSR_BYTES = 64 * 1024
RSA_MIN_BITS = 2048
RSA_MAX_BITS = 8192
ALLOWED_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384"}


@dataclass(frozen=True)
class AcceptedCSR:
    """A CSR whose signature verified and whose key the policy allows."""

    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    spki_sha256: str
    der: bytes = b""  # the request as DER: what a holder's signature by its old key covers


def load_csr(data: bytes) -> AcceptedCSR:
    """Parses a PEM or DER CSR, checks its signature and key; raises InputError or PolicyError."""
    if len(data) > MAX_CSR_BYTES:
        raise InputError("CSR is too large ({size} bytes; at most {limit})", size=len(data), limit=MAX_CSR_BYTES)
    request = _parse(data)
    try:
        public_key = request.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise PolicyError("the CSR's key type or curve is not supported; use EC P-256/P-384 or RSA >= 2048") from None
    check_key_policy(public_key)
    try:
        valid = request.is_signature_valid
    except (ValueError, UnsupportedAlgorithm):
        valid = False
    if not valid:
        raise InputError("CSR signature does not verify: no proof of possession of the private key")
    assert isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    return AcceptedCSR(
        public_key=public_key,
        spki_sha256=spki_sha256(public_key),
        der=request.public_bytes(serialization.Encoding.DER),
    )


def check_key_policy(public_key: object) -> None:
    """Refuses, by name, any key other than RSA >= 2048 with e = 65537 or ECDSA P-256/P-384."""
    if isinstance(public_key, rsa.RSAPublicKey):
        bits = public_key.key_size
        if bits < RSA_MIN_BITS:
            raise PolicyError(
                "RSA {bits}-bit keys are not accepted; use {minimum} or more", bits=bits, minimum=RSA_MIN_BITS
            )
        if bits > RSA_MAX_BITS:
            raise PolicyError(
                "RSA {bits}-bit keys are not accepted; use at most {maximum}", bits=bits, maximum=RSA_MAX_BITS
            )
        exponent = public_key.public_numbers().e
        if exponent != 65537:
            raise PolicyError("RSA public exponent {exponent} is not accepted; use 65537", exponent=exponent)
        return
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = public_key.curve.name
        if curve not in ALLOWED_CURVES:
            raise PolicyError("EC curve {curve} is not accepted; use P-256 or P-384", curve=curve)
        return
    name = type(public_key).__name__.removeprefix("_").replace("PublicKey", "")
    raise PolicyError("{kind} keys are not accepted; use EC P-256, EC P-384 or RSA 2048 or more", kind=name)


def spki_sha256(public_key: CertificatePublicKeyTypes) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo, hex: the key's identity in the registry."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _parse(data: bytes) -> x509.CertificateSigningRequest:
    stripped = data.strip()
    if not stripped:
        raise InputError("CSR file is empty")
    try:
        if stripped.startswith(b"-----BEGIN"):
            if b"-----BEGIN CERTIFICATE REQUEST-----" not in stripped and (
                b"-----BEGIN NEW CERTIFICATE REQUEST-----" not in stripped
            ):
                raise InputError("PEM file holds no CERTIFICATE REQUEST block")
            if b"-----END" not in stripped:
                raise InputError("CSR PEM is truncated: no END line")
            return x509.load_pem_x509_csr(stripped)
        return x509.load_der_x509_csr(data)
    except InputError:
        raise
    except (ValueError, UnsupportedAlgorithm):
        raise InputError("not a valid certificate signing request (expected PKCS#10 in PEM or DER)") from None
