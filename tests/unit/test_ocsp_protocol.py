"""OCSP messages: request parsing (several CertIDs, nonces, malformed input) and responses
checked byte for byte against asn1crypto's encoding and parsed by `cryptography`."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from asn1crypto import core, ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as c_ocsp

from kinko.ca.keys import FileKey, generate_private_key
from kinko.ocsp.protocol import (
    MalformedRequest,
    Responder,
    Status,
    build_response,
    encode_cert_id,
    encode_single,
    error_response,
    make_cert_id,
    parse_request,
    response_data,
)

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)


def self_signed(key: FileKey, name: str) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .issuer_name(subject)
        .subject_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=90))
    )
    return key.sign_certificate(builder)


@pytest.fixture(scope="module", params=["ec-p256", "rsa-2048"])
def responder(request: pytest.FixtureRequest) -> Responder:
    key = FileKey(generate_private_key(request.param))
    return Responder.create(key, self_signed(key, "OCSP").public_bytes(serialization.Encoding.DER))


@pytest.fixture(scope="module")
def issuer() -> x509.Certificate:
    return self_signed(FileKey(generate_private_key("ec-p256")), "Issuing CA")


def spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def cryptography_request(issuer: x509.Certificate, serial: int, algorithm=None, nonce: bytes | None = None):
    algorithm = algorithm or hashes.SHA1()  # noqa: S303 - OCSP CertIDs use SHA-1 (RFC 5019)
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "leaf")])
    leaf = (
        x509.CertificateBuilder()
        .issuer_name(issuer.subject)
        .subject_name(subject)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial_number(serial)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    builder = c_ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.SHA256()], ids=["sha1", "sha256"])  # noqa: S303
def test_parse_single_request_as_cryptography_builds_it(issuer: x509.Certificate, algorithm) -> None:
    parsed = parse_request(cryptography_request(issuer, 0x5F0C, algorithm, nonce=b"\x01" * 16))
    (cert_id,) = parsed.cert_ids
    expected = make_cert_id(algorithm.name, issuer.subject.public_bytes(), spki(issuer), 0x5F0C)
    assert cert_id == expected
    assert core.OctetString.load(parsed.nonce).native == b"\x01" * 16


@pytest.mark.parametrize("serial", [1, 0x7F, 0x80, 0xFF, 0x100, 2**127, 2**128 - 1, 2**159 - 1])
@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha384", "sha512"])
def test_cert_id_encoding_matches_asn1crypto(algorithm: str, serial: int) -> None:
    name, key = b"\x01" * 20, b"\x02" * 32
    expected = ocsp.CertId(
        {
            "hash_algorithm": {"algorithm": algorithm},
            "issuer_name_hash": name,
            "issuer_key_hash": key,
            "serial_number": serial,
        }
    ).dump()
    assert encode_cert_id(algorithm, name, key, serial).der == expected


def test_negative_serial_is_malformed() -> None:
    with pytest.raises(MalformedRequest, match="negative"):
        encode_cert_id("sha1", b"\x01" * 20, b"\x02" * 20, -5)


def test_parse_several_cert_ids(issuer: x509.Certificate) -> None:
    ids = [make_cert_id("sha1", issuer.subject.public_bytes(), spki(issuer), serial) for serial in (1, 2, 3)]
    request = ocsp.OCSPRequest(
        {"tbs_request": {"request_list": [{"req_cert": ocsp.CertId.load(c.der)} for c in ids]}}
    ).dump()
    assert parse_request(request).cert_ids == tuple(ids)
    assert parse_request(request).nonce is None


def with_nonce(issuer: x509.Certificate, value: bytes) -> bytes:
    cert_id = make_cert_id("sha1", issuer.subject.public_bytes(), spki(issuer), 7)
    return ocsp.OCSPRequest(
        {
            "tbs_request": {
                "request_list": [{"req_cert": ocsp.CertId.load(cert_id.der)}],
                "request_extensions": [{"extn_id": "nonce", "critical": False, "extn_value": value}],
            }
        }
    ).dump()


@pytest.mark.parametrize("size", [1, 32])
def test_nonce_sizes_allowed(issuer: x509.Certificate, size: int) -> None:
    assert core.OctetString.load(parse_request(with_nonce(issuer, b"n" * size)).nonce).native == b"n" * size


@pytest.mark.parametrize("size", [0, 33, 1024])
def test_nonce_sizes_refused(issuer: x509.Certificate, size: int) -> None:
    with pytest.raises(MalformedRequest, match="nonce"):
        parse_request(with_nonce(issuer, b"n" * size))


def test_malformed_requests(issuer: x509.Certificate) -> None:
    good = cryptography_request(issuer, 42)
    empty_list = ocsp.OCSPRequest({"tbs_request": {"request_list": []}}).dump()
    for bad in (b"", os.urandom(64), good[:-3], good + b"\x00", good[:10], b"\x30\x00", empty_list):
        with pytest.raises(MalformedRequest):
            parse_request(bad)


# -- responses -----------------------------------------------------------------------------------


def statuses(issuer: x509.Certificate, algorithm: str = "sha1") -> list[Status]:
    name, key = issuer.subject.public_bytes(), spki(issuer)
    later = NOW + dt.timedelta(days=4)
    return [
        Status(make_cert_id(algorithm, name, key, 1), "good", NOW, later),
        Status(make_cert_id(algorithm, name, key, 2), "unknown", NOW, later),
        Status(
            make_cert_id(algorithm, name, key, 3), "revoked", NOW, later, NOW - dt.timedelta(hours=1), "key-compromise"
        ),
        Status(make_cert_id(algorithm, name, key, 4), "revoked", NOW, later, NOW, "unspecified"),
        Status(make_cert_id(algorithm, name, key, 5), "revoked", NOW, later, NOW, "certificate-hold"),
    ]


def reference_single(status: Status) -> ocsp.SingleResponse:
    if status.status == "revoked":
        info = {"revocation_time": status.revoked_at}
        if status.reason != "unspecified":
            info["revocation_reason"] = status.reason.replace("-", "_")
        cert_status = ocsp.CertStatus(name="revoked", value=ocsp.RevokedInfo(info))
    else:
        cert_status = ocsp.CertStatus(name=status.status, value=core.Null())
    return ocsp.SingleResponse(
        {
            "cert_id": ocsp.CertId.load(status.cert_id.der),
            "cert_status": cert_status,
            "this_update": status.this_update,
            "next_update": status.next_update,
        }
    )


def test_response_data_is_byte_identical_to_asn1crypto(issuer: x509.Certificate, responder: Responder) -> None:
    items = statuses(issuer)
    for status in items:
        assert encode_single(status) == reference_single(status).dump()
    nonce = core.OctetString(b"\xab" * 16).dump()
    ours = response_data([encode_single(s) for s in items], responder, NOW, nonce)
    certificate = asn1_x509.Certificate.load(responder.certificate_der)
    key_hash = certificate["tbs_certificate"]["subject_public_key_info"].sha1
    expected = ocsp.ResponseData(
        {
            "responder_id": ocsp.ResponderId(name="by_key", value=key_hash),
            "produced_at": NOW,
            "responses": [reference_single(s) for s in items],
            "response_extensions": [{"extn_id": "nonce", "critical": False, "extn_value": b"\xab" * 16}],
        }
    ).dump()
    assert ours == expected


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_response_parses_and_verifies_with_cryptography(
    issuer: x509.Certificate, responder: Responder, algorithm: str
) -> None:
    items = statuses(issuer, algorithm)
    nonce = core.OctetString(b"\x01\x02\x03").dump()
    response = c_ocsp.load_der_ocsp_response(build_response(items, responder=responder, produced_at=NOW, nonce=nonce))
    assert response.response_status == c_ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.produced_at_utc == NOW
    certificate = x509.load_der_x509_certificate(responder.certificate_der)
    assert response.certificates == [certificate]
    assert response.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest
    public_key = certificate.public_key()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(response.signature_hash_algorithm))
    else:
        from cryptography.hazmat.primitives.asymmetric import padding

        public_key.verify(
            response.signature, response.tbs_response_bytes, padding.PKCS1v15(), response.signature_hash_algorithm
        )
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"\x01\x02\x03"
    singles = list(response.responses)
    assert [s.serial_number for s in singles] == [1, 2, 3, 4, 5]
    assert [s.certificate_status for s in singles] == [
        c_ocsp.OCSPCertStatus.GOOD,
        c_ocsp.OCSPCertStatus.UNKNOWN,
        c_ocsp.OCSPCertStatus.REVOKED,
        c_ocsp.OCSPCertStatus.REVOKED,
        c_ocsp.OCSPCertStatus.REVOKED,
    ]
    assert singles[2].revocation_reason == x509.ReasonFlags.key_compromise
    assert singles[2].revocation_time_utc == NOW - dt.timedelta(hours=1)
    assert singles[3].revocation_reason is None
    assert singles[4].revocation_reason == x509.ReasonFlags.certificate_hold
    assert all(s.hash_algorithm.name == algorithm for s in singles)
    assert all(s.this_update_utc == NOW and s.next_update_utc == NOW + dt.timedelta(days=4) for s in singles)


def test_error_responses() -> None:
    for name, status in [
        ("malformed_request", c_ocsp.OCSPResponseStatus.MALFORMED_REQUEST),
        ("internal_error", c_ocsp.OCSPResponseStatus.INTERNAL_ERROR),
        ("unauthorized", c_ocsp.OCSPResponseStatus.UNAUTHORIZED),
    ]:
        assert c_ocsp.load_der_ocsp_response(error_response(name)).response_status == status


# -- the hand-written request parser against asn1crypto ------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from kinko.ocsp.protocol import HASH_ALGORITHMS  # noqa: E402


def reference_parse(data: bytes):
    """The same parse written with asn1crypto: what ocsp.protocol.parse_request must agree with."""
    request = ocsp.OCSPRequest.load(data, strict=True)
    tbs = request["tbs_request"]
    cert_ids = []
    for single in tbs["request_list"]:
        cert_id = single["req_cert"]
        algorithm = cert_id["hash_algorithm"]["algorithm"].native
        if algorithm not in HASH_ALGORITHMS:
            raise ValueError("hash")
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
            nonce = extension["extn_value"].contents
    return tuple(cert_ids), nonce


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    ids = [
        ocsp.CertId(
            {
                "hash_algorithm": {"algorithm": draw(st.sampled_from(["sha1", "sha256", "sha384", "sha512"]))},
                "issuer_name_hash": draw(st.binary(min_size=1, max_size=64)),
                "issuer_key_hash": draw(st.binary(min_size=1, max_size=64)),
                "serial_number": draw(st.integers(min_value=0, max_value=2**159)),
            }
        )
        for _ in range(draw(st.integers(min_value=1, max_value=3)))
    ]
    tbs = {"request_list": [{"req_cert": cert_id} for cert_id in ids]}
    if draw(st.booleans()):
        tbs["request_extensions"] = [
            {
                "extn_id": "nonce",
                "critical": draw(st.booleans()),
                "extn_value": draw(st.binary(min_size=1, max_size=32)),
            }
        ]
    if draw(st.booleans()):
        tbs["requestor_name"] = {"dns_name": "client.example"}
    return ocsp.OCSPRequest({"tbs_request": tbs}).dump()


@settings(max_examples=400, deadline=None)
@given(requests())
def test_hand_parser_agrees_on_valid_requests(data: bytes) -> None:
    parsed = parse_request(data)
    assert (parsed.cert_ids, parsed.nonce) == reference_parse(data)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.data())
def test_hand_parser_reads_mutated_requests_as_asn1crypto_does(data: bytes, draw: st.DataObject) -> None:
    """Whatever the hand parser accepts, it reads as asn1crypto does. (It does not look inside
    the parts it ignores: requestorName, signatures, per-request extensions and the nonce's
    value, which is echoed as an opaque OCTET STRING; there asn1crypto may refuse more.)"""
    mutated = bytearray(data)
    for _ in range(draw.draw(st.integers(min_value=1, max_value=4))):
        choice = draw.draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        position = draw.draw(st.integers(min_value=0, max_value=max(0, len(mutated) - 1)))
        if choice == "flip" and mutated:
            mutated[position] ^= 1 << draw.draw(st.integers(min_value=0, max_value=7))
        elif choice == "cut":
            del mutated[position:]
        elif choice == "insert":
            mutated.insert(position, draw.draw(st.integers(min_value=0, max_value=255)))
        elif mutated:
            del mutated[position]
    try:
        ours = parse_request(bytes(mutated))
    except MalformedRequest:
        return
    try:
        theirs = reference_parse(bytes(mutated))
    except ValueError:
        return  # junk inside a part the responder ignores
    assert (ours.cert_ids, ours.nonce) == theirs
