"""Detached CMS (PKCS#7) signatures over files of any size, for auditors' exports.

The digest is computed while streaming, so a large export is never held in memory;
`cryptography`'s PKCS7 builder needs the whole content, so SignedData is assembled with
asn1crypto. `openssl cms -verify -binary -content FILE -inform DER -in FILE.sig
-CAfile root.pem -untrusted FILE.chain.pem` accepts the result (tests check that).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

CHUNK = 1 << 20


class DataSigner(Protocol):
    """A key backend that signs bytes."""

    def public_key(self) -> object: ...

    def sign_data(self, data: bytes) -> bytes: ...


def file_sha256(path: Path) -> bytes:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.digest()


def sign_detached(
    digest: bytes,
    signer: DataSigner,
    certificate: x509.Certificate,
    chain: list[x509.Certificate],
    signing_time: dt.datetime,
) -> bytes:
    """A DER CMS SignedData over content with this SHA-256 digest, without the content."""
    # DER orders a SET OF by encoding; OpenSSL re-encodes signedAttrs that way before it
    # checks the signature, so they are sorted here before signing.
    attributes = sorted(
        (
            cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
            cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": signing_time})]}),
            cms.CMSAttribute({"type": "message_digest", "values": [digest]}),
        ),
        key=lambda attribute: attribute.dump(),
    )
    signed_attrs = cms.CMSAttributes(attributes)
    signature = signer.sign_data(signed_attrs.dump())
    asn1_cert = asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
    is_ec = isinstance(signer.public_key(), ec.EllipticCurvePublicKey)
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": cms.IssuerAndSerialNumber(
                        {"issuer": asn1_cert.issuer, "serial_number": asn1_cert.serial_number}
                    )
                }
            ),
            "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
            "signed_attrs": signed_attrs,
            "signature_algorithm": algos.SignedDigestAlgorithm(
                {"algorithm": "sha256_ecdsa"} if is_ec else {"algorithm": "sha256_rsa", "parameters": core.Null()}
            ),
            "signature": signature,
        }
    )
    certificates = [asn1_cert] + [asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in chain]
    signed_data = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": {"content_type": "data"},
            "certificates": certificates,
            "signer_infos": [signer_info],
        }
    )
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump())


@dataclass(frozen=True)
class Verified:
    """A detached signature that holds: its signer's certificate and its signingTime (as text)."""

    signer: x509.Certificate
    signing_time: str


def verify_detached(
    signature_der: bytes,
    digest: bytes,
    trusted: list[x509.Certificate],
    untrusted: list[x509.Certificate] | None = None,
) -> Verified:
    """Checks a detached signature against a content digest and a chain ending in a `trusted`
    certificate (the auditor's own); `untrusted` may supply intermediates, never an anchor.

    Raises ValueError saying what does not hold."""
    try:
        info = cms.ContentInfo.load(signature_der)
        signed_data = info["content"]
        (signer_info,) = list(signed_data["signer_infos"])
        attributes = {a["type"].native: a["values"][0].native for a in signer_info["signed_attrs"]}
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"the signature file is not a CMS SignedData: {exc}") from None
    if attributes.get("message_digest") != digest:
        raise ValueError("the file does not match its signature (SHA-256 differs): changed after signing")
    sid = signer_info["sid"].chosen
    certificates = [x509.load_der_x509_certificate(c.chosen.dump()) for c in signed_data["certificates"]]
    signer = next(
        (
            c
            for c in certificates
            if c.serial_number == sid["serial_number"].native and c.issuer.public_bytes() == sid["issuer"].dump()
        ),
        None,
    )
    if signer is None:
        raise ValueError("the signature does not carry its signer's certificate")
    signed = b"\x31" + signer_info["signed_attrs"].dump()[1:]  # [0] IMPLICIT back to SET OF
    public_key = signer.public_key()
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signer_info["signature"].native, signed, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signer_info["signature"].native, signed, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise ValueError("unsupported signer key type")
    except InvalidSignature:
        raise ValueError("the signature does not verify with its signer's certificate") from None
    # Trusted certificates first: a look-alike root in the signature must not be picked before the real one.
    _check_chain(signer, trusted + certificates + (untrusted or []), trusted)
    signed_at = attributes.get("signing_time")
    if not isinstance(signed_at, dt.datetime):
        raise ValueError("the signature has no signingTime")
    return Verified(signer, signed_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def certificates_in(signature_der: bytes) -> list[x509.Certificate]:
    """The certificates a CMS SignedData carries (none when it cannot be read)."""
    try:
        signed_data = cms.ContentInfo.load(signature_der)["content"]
        return [x509.load_der_x509_certificate(c.chosen.dump()) for c in signed_data["certificates"]]
    except (ValueError, TypeError, KeyError):
        return []


def _check_chain(leaf: x509.Certificate, pool: list[x509.Certificate], trusted: list[x509.Certificate]) -> None:
    current = leaf
    for _ in range(5):
        if any(current == anchor for anchor in trusted) and current.issuer == current.subject:
            return
        issuer = next((c for c in pool if c.subject == current.issuer and c != current), None)
        if issuer is None:
            if current in trusted:
                return
            raise ValueError(f"no certificate for {current.issuer.rfc4514_string()} in the chain file")
        try:
            current.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise ValueError(f"{current.subject.rfc4514_string()} is not signed by its issuer in the chain") from None
        current = issuer
    raise ValueError("the certificate chain is too long")
