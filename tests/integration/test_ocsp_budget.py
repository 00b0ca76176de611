"""Signatures on demand are budgeted per client: one client asking for a fresh nonce every time
spends its own share, gets the pre-signed answer past it, and slows no one else."""

from __future__ import annotations

import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from kinko.ca.clock import FixedClock
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from kinko.ocsp.source import DatabaseSource, SigningBudget
from tests.conftest import make_csr


class Ticks:
    """An injected monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def request_for(certificate: x509.Certificate, issuer: x509.Certificate, nonce: bool) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1())  # noqa: S303 - RFC 5019
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def echoes_nonce(body: bytes) -> bool:
    response = ocsp.load_der_ocsp_response(body)
    try:
        response.extensions.get_extension_for_class(x509.OCSPNonce)
    except x509.ExtensionNotFound:
        return False
    return True


def test_the_budget_refills_at_its_rate_up_to_twice_it() -> None:
    ticks = Ticks()
    budget = SigningBudget(5, ticks)
    assert [budget.take("a") for _ in range(11)] == [True] * 10 + [False]
    assert budget.take("b")  # another client has its own
    ticks.now += 1.0
    assert [budget.take("a") for _ in range(6)] == [True] * 5 + [False]
    ticks.now += 100.0  # never more than the burst
    assert sum(budget.take("a") for _ in range(30)) == 10
    assert all(SigningBudget(0, ticks).take("a") for _ in range(100))  # 0: no limit


def test_a_client_past_its_budget_gets_the_presigned_answer_and_others_are_not_slowed(
    home: Home, kinko: Kinko, clock: FixedClock
) -> None:
    issued = kinko.issue(make_csr(), name="山田 太郎")
    certificate = x509.load_pem_x509_certificate(issued.pem.encode("ascii"))
    issuer = home.ca_certificate("issuing")
    ticks = Ticks()
    source = DatabaseSource(home.path, clock=clock, monotonic=ticks)
    burst = 2 * home.config.ocsp.on_demand_per_client
    signed = [
        echoes_nonce(source.response(request_for(certificate, issuer, True), "10.0.0.1").body) for _ in range(burst)
    ]
    assert all(signed)
    over = source.response(request_for(certificate, issuer, True), "10.0.0.1")
    assert not echoes_nonce(over.body)  # the pre-signed answer, nonce not echoed
    parsed = ocsp.load_der_ocsp_response(over.body)
    assert parsed.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert parsed.certificate_status == ocsp.OCSPCertStatus.GOOD
    # Someone else still gets its nonce signed, and the pre-signed path is untouched.
    assert echoes_nonce(source.response(request_for(certificate, issuer, True), "10.0.0.2").body)
    plain = source.response(request_for(certificate, issuer, False), "10.0.0.1")
    assert plain.cacheable and plain.body == over.body
    # A second later the client has its rate back.
    ticks.now += 1.0
    assert echoes_nonce(source.response(request_for(certificate, issuer, True), "10.0.0.1").body)


def test_past_its_budget_a_question_with_no_presigned_answer_gets_try_later(
    home: Home, kinko: Kinko, clock: FixedClock
) -> None:
    issued = kinko.issue(make_csr(), name="山田 太郎")
    certificate = x509.load_pem_x509_certificate(issued.pem.encode("ascii"))
    issuer = home.ca_certificate("issuing")
    source = DatabaseSource(home.path, clock=clock, monotonic=Ticks())
    for _ in range(2 * home.config.ocsp.on_demand_per_client):
        source.response(request_for(certificate, issuer, True), "10.0.0.9")
    # SHA-256 CertIDs are signed on demand (only SHA-1 is pre-signed): none is stored for it.
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA256())
    request = builder.build().public_bytes(serialization.Encoding.DER)
    answer = ocsp.load_der_ocsp_response(source.response(request, "10.0.0.9").body)
    assert answer.response_status == ocsp.OCSPResponseStatus.TRY_LATER
    assert ocsp.load_der_ocsp_response(source.response(request, "10.0.0.8").body).response_status == (
        ocsp.OCSPResponseStatus.SUCCESSFUL
    )
