"""OCSP messages (RFC 6960, RFC 8954 nonces): parse requests with any number of CertIDs,
and build signed responses. Pure: no database, no HTTP.

`cryptography`'s OCSP request parser reads one CertID only and its response builder
writes one SingleResponse, so both directions use asn1crypto's OCSP structures.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from asn1crypto import algos, core, ocsp
from asn1crypto import x509 as asn1_x509

from ca import der

HASH_ALGORITHMS = ("sha1", "sha256", "sha384", "sha512")
MAX_NONCE = 32  # RFC 8954 section 2.1


class MalformedRequest(Exception):
    """The request is not a well-formed OCSP request (answered with malformedRequest)."""


@dataclass(frozen=True)
class CertID:
    """One CertID as the client sent it; `der` is echoed verbatim in the SingleResponse."""

    hash_algorithm: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int
    der: bytes


@dataclass(frozen=True)
class Request:
    """A parsed OCSP request: its CertIDs and, if any, the nonce extension's value to echo."""

    cert_ids: tuple[CertID, ...]
    nonce: bytes | None


@dataclass(frozen=True)
class Status:
    """What the registry says about one CertID."""

    cert_id: CertID
    status: str  # good | revoked | unknown
    this_update: dt.datetime
    next_update: dt.datetime
    revoked_at: dt.datetime | None = None
    reason: str | None = None  # kebab-case RFC 5280 name; certificate-hold for held


class ResponseSigner(Protocol):
    """A delegated OCSP signer: its key (behind a backend) and its certificate."""

    def public_key(self) -> object: ...

    def sign_data(self, data: bytes) -> bytes: ...

    def hash_algorithm(self) -> object: ...


def parse_request(data: bytes) -> Request:
    """Parses a DER OCSPRequest; anything else, trailing bytes included, is MalformedRequest."""
    if not data:
        raise MalformedRequest("empty request")
    try:
        request = ocsp.OCSPRequest.load(data, strict=True)
        tbs = request["tbs_request"]
        cert_ids = []
        for single in tbs["request_list"]:
            cert_id = single["req_cert"]
            algorithm = cert_id["hash_algorithm"]["algorithm"].native
            if algorithm not in HASH_ALGORITHMS:
                raise MalformedRequest(f"unsupported CertID hash {algorithm}")
            # Re-encoded, not echoed: a CertID with junk parameters or a non-minimal serial in the
            # request must not end up inside a signed response.
            cert_ids.append(
                encode_cert_id(
                    algorithm,
                    cert_id["issuer_name_hash"].native,
                    cert_id["issuer_key_hash"].native,
                    cert_id["serial_number"].native,
                )
            )
        nonce = None
        for extension in tbs["request_extensions"] or ():
            if extension["extn_id"].dotted == "1.3.6.1.5.5.7.48.1.2":
                nonce = _checked_nonce(extension["extn_value"].contents)
    except MalformedRequest:
        raise
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise MalformedRequest(f"not a DER OCSP request: {exc}") from None
    if not cert_ids:
        raise MalformedRequest("request has no CertID")
    return Request(tuple(cert_ids), nonce)


def _checked_nonce(value: bytes) -> bytes:
    # RFC 8954: the extnValue holds an OCTET STRING of 1 to 32 octets. Some old clients put the
    # raw bytes there instead; both are echoed as sent, after the length check.
    try:
        inner = core.OctetString.load(value, strict=True).native
    except ValueError:
        inner = value
    if not 1 <= len(inner) <= MAX_NONCE:
        raise MalformedRequest(f"nonce of {len(inner)} octets (RFC 8954 allows 1 to {MAX_NONCE})")
    return value


def key_id(public_key_der: bytes, algorithm: str = "sha1") -> bytes:
    """Hash of a SubjectPublicKeyInfo's subjectPublicKey bits: CertID issuerKeyHash, ResponderID byKey."""
    bits = asn1_x509.PublicKeyInfo.load(public_key_der)["public_key"].contents[1:]  # drop unused-bits octet
    return hashlib.new(algorithm, bits).digest()


def name_hash(name_der: bytes, algorithm: str) -> bytes:
    """CertID issuerNameHash: the hash of the issuer's DER subject."""
    return hashlib.new(algorithm, name_der).digest()


def make_cert_id(algorithm: str, issuer_name_der: bytes, issuer_key_der: bytes, serial: int) -> CertID:
    """Builds the CertID a client would send for a certificate of this issuer."""
    return encode_cert_id(algorithm, name_hash(issuer_name_der, algorithm), key_id(issuer_key_der, algorithm), serial)


_HASH_OIDS = {
    "sha1": "1.3.14.3.2.26",
    "sha256": "2.16.840.1.101.3.4.2.1",
    "sha384": "2.16.840.1.101.3.4.2.2",
    "sha512": "2.16.840.1.101.3.4.2.3",
}
# AlgorithmIdentifier with NULL parameters, as OpenSSL writes CertIDs.
_HASH_ALGORITHM_DER = {
    name: der.sequence(core.ObjectIdentifier(oid).dump(), b"\x05\x00") for name, oid in _HASH_OIDS.items()
}


def encode_cert_id(algorithm: str, issuer_name_hash: bytes, issuer_key_hash: bytes, serial: int) -> CertID:
    """A CertID with its canonical DER (hash parameters NULL, minimal serial). Encoded by hand:
    asn1crypto took half the time of parsing a request; tests compare with its encoding."""
    if not isinstance(issuer_name_hash, bytes) or not isinstance(issuer_key_hash, bytes) or not isinstance(serial, int):
        raise MalformedRequest("CertID fields of the wrong type")
    if serial < 0:
        raise MalformedRequest("negative serial number in a CertID")
    serial_der = serial.to_bytes(serial.bit_length() // 8 + 1, "big")
    encoded = der.sequence(
        _HASH_ALGORITHM_DER[algorithm],
        der.tlv(0x04, issuer_name_hash),
        der.tlv(0x04, issuer_key_hash),
        der.tlv(0x02, serial_der),
    )
    return CertID(algorithm, issuer_name_hash, issuer_key_hash, serial, encoded)


_ERRORS = {
    name: ocsp.OCSPResponse({"response_status": name}).dump()
    for name in ("malformed_request", "internal_error", "try_later", "unauthorized")
}


def error_response(name: str) -> bytes:
    """An unsigned OCSP response with an error status: malformed_request, internal_error, try_later, unauthorized."""
    return _ERRORS[name]


@dataclass(frozen=True)
class Responder:
    """A delegated OCSP signer, with what every response repeats encoded once."""

    key: ResponseSigner
    certificate_der: bytes
    key_hash: bytes  # SHA-1 of the signer's public key bits: ResponderID byKey
    algorithm_der: bytes  # the signature AlgorithmIdentifier

    @classmethod
    def create(cls, key: ResponseSigner, certificate_der: bytes) -> Responder:
        """Prepares a signer from its key backend and its DER certificate."""
        spki = asn1_x509.Certificate.load(certificate_der)["tbs_certificate"]["subject_public_key_info"].dump()
        return cls(key, certificate_der, key_id(spki), _signature_algorithm(key).dump())


# Responses are assembled from bytes: building them with asn1crypto's objects took ~500 us,
# twenty times the ECDSA signature itself. tests/unit/test_ocsp_protocol.py checks the bytes
# against asn1crypto's encoding of the same structures.
_SUCCESSFUL = b"\x0a\x01\x00"
_BASIC_OID = core.ObjectIdentifier("1.3.6.1.5.5.7.48.1.1").dump()
_NONCE_OID = core.ObjectIdentifier("1.3.6.1.5.5.7.48.1.2").dump()
_GOOD = b"\x80\x00"
_UNKNOWN = b"\x82\x00"


def encode_single(status: Status) -> bytes:
    """DER SingleResponse: the client's CertID echoed, status, thisUpdate, nextUpdate."""
    if status.status == "good":
        cert_status = _GOOD
    elif status.status == "unknown":
        cert_status = _UNKNOWN
    elif status.status == "revoked":
        if status.revoked_at is None:
            raise ValueError("a revoked status needs its revocation time")
        info = der.generalized_time(status.revoked_at)
        if status.reason and status.reason != "unspecified":
            info += b"\xa0\x03\x0a\x01" + bytes((der.REASON_CODES[status.reason],))
        cert_status = der.tlv(0xA1, info)
    else:
        raise ValueError(f"unknown certificate status {status.status!r}")
    return der.sequence(
        status.cert_id.der,
        cert_status,
        der.generalized_time(status.this_update),
        der.tlv(0xA0, der.generalized_time(status.next_update)),
    )


def response_data(
    singles: Sequence[bytes], responder: Responder, produced_at: dt.datetime, nonce: bytes | None
) -> bytes:
    """DER ResponseData (v1, ResponderID byKey) around encoded SingleResponses."""
    parts = [
        b"\xa2\x16\x04\x14" + responder.key_hash,
        der.generalized_time(produced_at),
        der.sequence(*singles),
    ]
    if nonce is not None:
        # The nonce extension is echoed exactly as the client sent its extnValue (RFC 8954).
        parts.append(der.tlv(0xA1, der.sequence(der.sequence(_NONCE_OID, der.tlv(0x04, nonce)))))
    return der.sequence(*parts)


def build_response(
    statuses: Sequence[Status], *, responder: Responder, produced_at: dt.datetime, nonce: bytes | None = None
) -> bytes:
    """Signs a successful OCSPResponse carrying one SingleResponse per status and the signer's certificate."""
    tbs = response_data([encode_single(status) for status in statuses], responder, produced_at, nonce)
    return sign_response_data(tbs, responder)


def sign_response_data(tbs: bytes, responder: Responder) -> bytes:
    """Signs encoded ResponseData and wraps it as a successful OCSPResponse."""
    signature = responder.key.sign_data(tbs)
    basic = der.sequence(
        tbs,
        responder.algorithm_der,
        der.tlv(0x03, b"\x00" + signature),
        der.tlv(0xA0, der.sequence(responder.certificate_der)),
    )
    return der.sequence(_SUCCESSFUL, der.tlv(0xA0, der.sequence(_BASIC_OID, der.tlv(0x04, basic))))


def _signature_algorithm(signer: ResponseSigner) -> algos.SignedDigestAlgorithm:
    from cryptography.hazmat.primitives.asymmetric import ec

    digest = signer.hash_algorithm().name  # type: ignore[attr-defined]
    if isinstance(signer.public_key(), ec.EllipticCurvePublicKey):
        return algos.SignedDigestAlgorithm({"algorithm": f"{digest}_ecdsa"})
    return algos.SignedDigestAlgorithm({"algorithm": f"{digest}_rsa", "parameters": core.Null()})
