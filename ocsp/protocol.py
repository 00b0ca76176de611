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
from typing import TYPE_CHECKING, Protocol

from asn1crypto import algos, core, ocsp
from asn1crypto import x509 as asn1_x509

from kinko.ca import der

if TYPE_CHECKING:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

HASH_ALGORITHMS = ("sha1", "sha256", "sha384", "sha512")
MAX_NONCE = 32  # RFC 8954 section 2.1


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

    def public_key(self) -> CertificateIssuerPublicKeyTypes:
        """The public half."""
        ...

    def sign_data(self, data: bytes) -> bytes:
        """Signs the ResponseData."""
        ...

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        """The digest it signs with."""
        ...


def parse_request(data: bytes) -> Request:
    """Parses a DER OCSPRequest; anything else, trailing bytes included, is MalformedRequest.

    Read by hand (see `_element`): asn1crypto took 60% of answering a request with a nonce.
    tests/unit/test_ocsp_protocol.py holds an asn1crypto parser and checks, over valid and
    fuzzed requests, that this one never accepts what it refuses and always agrees with it."""
    if not data:
        raise MalformedRequest("empty request")
    tag, start, end = _element(data, 0, len(data))
    if tag != 0x30 or end != len(data):
        raise MalformedRequest("not a single DER SEQUENCE (trailing bytes, or not an OCSPRequest)")
    parts = _children(data, start, end)
    if not parts or parts[0][0] != 0x30 or any(t != 0xA0 for t, _, _ in parts[1:]) or len(parts) > 2:
        raise MalformedRequest("OCSPRequest must be tbsRequest [optionalSignature]")
    fields = _children(data, parts[0][1], parts[0][2])
    while fields and fields[0][0] in (0xA0, 0xA1):  # version (v1 only), requestorName (not needed)
        if fields[0][0] == 0xA0 and data[fields[0][1] : fields[0][2]] != b"\x02\x01\x00":
            raise MalformedRequest("unsupported OCSP request version")
        fields = fields[1:]
    if not fields or fields[0][0] != 0x30 or len(fields) > 2 or (len(fields) == 2 and fields[1][0] != 0xA2):
        raise MalformedRequest("TBSRequest must hold requestList [requestExtensions]")
    cert_ids = []
    for tag, start, end in _children(data, fields[0][1], fields[0][2]):
        single = _children(data, start, end) if tag == 0x30 else []
        if not single or single[0][0] != 0x30 or len(single) > 2 or (len(single) == 2 and single[1][0] != 0xA0):
            raise MalformedRequest("Request must be reqCert [singleRequestExtensions]")
        cert_ids.append(_cert_id(data, single[0][1], single[0][2]))
    if not cert_ids:
        raise MalformedRequest("request has no CertID")
    nonce = None
    if len(fields) == 2:
        for oid, value in _extensions(data, fields[1][1], fields[1][2]):
            if oid == _NONCE_OID_CONTENTS:
                nonce = _checked_nonce(value)
    return Request(tuple(cert_ids), nonce)


def _element(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at `pos`: definite, minimal lengths."""
    if pos + 2 > end:
        raise MalformedRequest("truncated DER")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or pos + count > end or data[pos] == 0:
            raise MalformedRequest("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        if length < 0x80:
            raise MalformedRequest("non-minimal DER length")
        pos += count
    if tag & 0x1F == 0x1F or pos + length > end:
        raise MalformedRequest("truncated DER" if pos + length > end else "unsupported DER tag")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    children = []
    while start < end:
        child = _element(data, start, end)
        children.append(child)
        start = child[2]
    return children


def _oid_contents(dotted: str) -> bytes:
    return bytes(core.ObjectIdentifier(dotted).dump()[2:])  # every OID here is under 128 octets


_ALGORITHMS_BY_OID = {_oid_contents(oid): name for name, oid in _HASH_OIDS.items()}


def _cert_id(data: bytes, start: int, end: int) -> CertID:
    parts = _children(data, start, end)
    if [tag for tag, _, _ in parts] != [0x30, 0x04, 0x04, 0x02]:
        raise MalformedRequest("CertID must be hashAlgorithm, issuerNameHash, issuerKeyHash, serialNumber")
    algorithm = _children(data, parts[0][1], parts[0][2])
    if (
        not algorithm
        or algorithm[0][0] != 0x06
        or len(algorithm) > 2
        or (len(algorithm) == 2 and data[algorithm[1][1] - 2 : algorithm[1][2]] != b"\x05\x00")
    ):
        raise MalformedRequest("CertID hashAlgorithm must be an OID with absent or NULL parameters")
    name = _ALGORITHMS_BY_OID.get(data[algorithm[0][1] : algorithm[0][2]])
    if name is None:
        raise MalformedRequest("unsupported CertID hash algorithm")
    serial = data[parts[3][1] : parts[3][2]]
    if not serial:
        raise MalformedRequest("empty serial number")
    return encode_cert_id(
        name,
        data[parts[1][1] : parts[1][2]],
        data[parts[2][1] : parts[2][2]],
        int.from_bytes(serial, "big", signed=True),
    )


def _extensions(data: bytes, start: int, end: int) -> list[tuple[bytes, bytes]]:
    """(OID contents, extnValue contents) of an [n] EXPLICIT Extensions."""
    wrapper = _children(data, start, end)
    if len(wrapper) != 1 or wrapper[0][0] != 0x30:
        raise MalformedRequest("Extensions must be a SEQUENCE")
    found = []
    for tag, s, e in _children(data, wrapper[0][1], wrapper[0][2]):
        parts = _children(data, s, e) if tag == 0x30 else []
        tags = [t for t, _, _ in parts]
        if tags not in ([0x06, 0x04], [0x06, 0x01, 0x04]):
            raise MalformedRequest("Extension must be extnID [critical] extnValue")
        found.append((data[parts[0][1] : parts[0][2]], data[parts[-1][1] : parts[-1][2]]))
    return found


_NONCE_OID_CONTENTS = _oid_contents("1.3.6.1.5.5.7.48.1.2")


def _checked_nonce(value: bytes) -> bytes:
    # RFC 8954: the extnValue holds an OCTET STRING of 1 to 32 octets. Some old clients put the
    # raw bytes there instead; both are echoed as sent, after the length check.
    inner = value
    if value[:1] == b"\x04":
        try:
            _tag, start, end = _element(value, 0, len(value))
            if end == len(value):
                inner = value[start:end]
        except MalformedRequest:
            pass
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
    name: bytes(ocsp.OCSPResponse({"response_status": name}).dump())
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


def encode_cert_status(status: str, revoked_at: dt.datetime | None = None, reason: str | None = None) -> bytes:
    """DER CertStatus: good, unknown, or revoked with its time and (but unspecified) reason."""
    if status == "good":
        return _GOOD
    if status == "unknown":
        return _UNKNOWN
    if status != "revoked":
        raise ValueError(f"unknown certificate status {status!r}")
    if revoked_at is None:
        raise ValueError("a revoked status needs its revocation time")
    info = der.generalized_time(revoked_at)
    if reason and reason != "unspecified":
        info += b"\xa0\x03\x0a\x01" + bytes((der.REASON_CODES[reason],))
    return der.tlv(0xA1, info)


def says(response: bytes, cert_id: CertID, cert_status: bytes) -> bool:
    """Whether a response Kinko encoded answers this CertID with this status: its SingleResponse
    starts with the canonical CertID followed by the status, so the pair is a substring."""
    return cert_id.der + cert_status in response


def encode_single(status: Status) -> bytes:
    """DER SingleResponse: the client's CertID echoed, status, thisUpdate, nextUpdate."""
    cert_status = encode_cert_status(status.status, status.revoked_at, status.reason)
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

    digest = signer.hash_algorithm().name
    if isinstance(signer.public_key(), ec.EllipticCurvePublicKey):
        return algos.SignedDigestAlgorithm({"algorithm": f"{digest}_ecdsa"})
    return algos.SignedDigestAlgorithm({"algorithm": f"{digest}_rsa", "parameters": core.Null()})
