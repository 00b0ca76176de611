"""Kinko's OCSP responder as outside clients see it: openssl, GnuTLS ocsptool, curl, pkilint,
raw sockets, and hypothesis-mutated requests against a real `kinko ocsp serve` on 127.0.0.1.

Nothing is mocked: every test talks HTTP to the responder process. openssl, curl and
ocsptool (gnutls-bin) must be on PATH; pkilint's lint_ocsp_response and lint_pkix_cert come
with the test extra (`pip install -e '.[test]'`).

openssl and ocsptool judge response times against the real clock, so no test here moves
`clock` ahead of the real second the fixture started at.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.client
import os
import random
import re
import socket
import statistics
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kinko.ca.clock import FixedClock
from kinko.ca.hierarchy import InitOptions, create_home
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from kinko.ca.officers import current_login
from kinko.ocsp.source import CHECK_SECONDS
from tests.conftest import ORG, RunningResponder, make_csr
from tests.interop.tools import openssl, output, run, tool

HOLDER = "山田 太郎"
CUSTOMER = "株式会社テスト"
OCSP_REQUEST = {"Content-Type": "application/ocsp-request"}
HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha1": hashes.SHA1(),  # noqa: S303 - SHA-1 CertIDs are what RFC 5019 clients send
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


# ---------------------------------------------------------------- helpers


def openssl_time(moment: dt.datetime) -> str:
    """A time as `openssl ocsp` prints it: 'Nov  5 10:25:30 2026 GMT'."""
    moment = moment.astimezone(dt.UTC)
    return f"{moment:%b} {moment.day:2d} {moment:%H:%M:%S %Y} GMT"


def settle() -> None:
    """Waits out the responder's change detection: each worker looks for commits every CHECK_SECONDS,
    so a pre-signed answer may lag a status change by that much (the bank allows one second)."""
    time.sleep(4 * CHECK_SECONDS)


def write_pem(certificate: x509.Certificate, out: Path) -> Path:
    out.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return out


def build_request(
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    algorithm: str = "sha1",
    nonce: bytes | None = None,
) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, HASHES[algorithm])
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def parsed(self) -> ocsp.OCSPResponse:
        assert self.status == 200, f"HTTP {self.status}: {self.body[:200]!r}"
        assert self.headers.get("content-type") == "application/ocsp-response", self.headers
        return ocsp.load_der_ocsp_response(self.body)


def http_request(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    *,
    encode_chunked: bool = False,
    timeout: float = 20,
) -> Reply:
    """One request on a fresh connection; `path` is sent exactly as given (no normalization)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {}, encode_chunked=encode_chunked)
        reply = connection.getresponse()
        data = reply.read()
        return Reply(reply.status, {k.lower(): v for k, v in reply.getheaders()}, data)
    finally:
        connection.close()


def post(responder: RunningResponder, body: bytes) -> Reply:
    return http_request(responder.port, "POST", "/", body, OCSP_REQUEST)


def is_malformed(reply: Reply) -> bool:
    """malformedRequest over HTTP 200, as RFC 6960 section 2.3 asks."""
    return (
        reply.status == 200
        and reply.headers.get("content-type") == "application/ocsp-response"
        and ocsp.load_der_ocsp_response(reply.body).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )


def single_status(response: ocsp.OCSPResponse) -> ocsp.OCSPCertStatus:
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL, response.response_status
    return response.certificate_status


@dataclass
class Pki:
    """The `home` fixture's CA as a client sees it, with its responder running."""

    home: Home
    kinko: Kinko
    clock: FixedClock
    responder: RunningResponder
    dir: Path
    root: Path
    issuing: Path
    chain: Path
    issuing_cert: x509.Certificate
    root_cert: x509.Certificate

    def issue(self, name: str) -> tuple[str, x509.Certificate, Path]:
        """A client certificate: (serial in hex, certificate, PEM file)."""
        issued = self.kinko.issue(make_csr(), name=HOLDER, organization=CUSTOMER)
        path = self.dir / f"{name}.pem"
        path.write_text(issued.pem, encoding="ascii")
        return issued.record.serial, x509.load_pem_x509_certificate(issued.pem.encode("ascii")), path

    def ask(self, *args: str | Path, issuer: Path | None = None, ca_file: Path | None = None) -> tuple[int, str]:
        """`openssl ocsp -issuer ... ARGS -url <responder> -CAfile chain -resp_text`: (exit code, all output)."""
        result = openssl(
            "ocsp",
            "-issuer",
            issuer or self.issuing,
            *args,
            "-url",
            self.responder.url,
            "-CAfile",
            ca_file or self.chain,
            "-resp_text",
        )
        return result.returncode, output(result)


def assert_openssl_status(said: tuple[int, str], label: str, status: str) -> str:
    code, text = said
    assert code == 0, f"openssl ocsp failed (exit {code}):\n{text}"
    assert "Response verify OK" in text, text
    assert re.search(rf"^{re.escape(label)}: {status}$", text, re.MULTILINE), f"expected '{label}: {status}':\n{text}"
    return text


@pytest.fixture
def pki(tmp_path: Path, home: Home, kinko: Kinko, clock: FixedClock, responder: RunningResponder) -> Pki:
    ca = home.public_dir / "ca"
    chain = tmp_path / "chain.pem"
    chain.write_bytes((ca / "issuing.pem").read_bytes() + (ca / "root.pem").read_bytes())
    work = tmp_path / "work"
    work.mkdir()
    return Pki(
        home=home,
        kinko=kinko,
        clock=clock,
        responder=responder,
        dir=work,
        root=ca / "root.pem",
        issuing=ca / "issuing.pem",
        chain=chain,
        issuing_cert=x509.load_pem_x509_certificate((ca / "issuing.pem").read_bytes()),
        root_cert=x509.load_pem_x509_certificate((ca / "root.pem").read_bytes()),
    )


# ---------------------------------------------------------------- openssl ocsp


def test_openssl_follows_hold_release_and_revoke(pki: Pki) -> None:
    serial, _, client = pki.issue("client")
    for extra in ((), ("-no_nonce",)):  # signed on demand (nonce), then the pre-signed answer
        assert_openssl_status(pki.ask("-cert", client, *extra), str(client), "good")

    pki.kinko.hold(serial)
    settle()
    for extra in ((), ("-no_nonce",)):
        text = assert_openssl_status(pki.ask("-cert", client, *extra), str(client), "revoked")
        assert "Reason: certificateHold" in text, text

    pki.kinko.release(serial)
    settle()
    for extra in ((), ("-no_nonce",)):
        assert_openssl_status(pki.ask("-cert", client, *extra), str(client), "good")

    pki.kinko.revoke(serial, "key-compromise")
    settle()
    for extra in ((), ("-no_nonce",)):
        text = assert_openssl_status(pki.ask("-cert", client, *extra), str(client), "revoked")
        assert "Reason: keyCompromise" in text, text
        assert f"Revocation Time: {openssl_time(pki.clock.now())}" in text, text
    assert pki.responder.alive()


def test_openssl_certificate_of_another_ca_is_unauthorized(
    pki: Pki, tmp_path: Path, clock: FixedClock, passphrase_file: Path
) -> None:
    other = create_home(
        tmp_path / "other-home", InitOptions(organization=ORG, passphrase_file=passphrase_file), clock, current_login()
    )
    issued = Kinko(other, clock=clock).issue(make_csr(), name=HOLDER, organization=CUSTOMER)
    client = pki.dir / "other-client.pem"
    client.write_text(issued.pem, encoding="ascii")
    other_issuing = other.public_dir / "ca" / "issuing.pem"
    for extra in ((), ("-no_nonce",)):
        _, text = pki.ask("-cert", client, *extra, issuer=other_issuing)
        assert "Responder Error: unauthorized" in text, text


def test_openssl_serial_never_issued_is_unknown(pki: Pki) -> None:
    for extra in ((), ("-no_nonce",)):
        assert_openssl_status(pki.ask("-serial", "0x1234", *extra), "0x1234", "unknown")


def test_openssl_nonce_is_echoed_and_no_nonce_works(pki: Pki) -> None:
    _, _, client = pki.issue("client")
    text = assert_openssl_status(pki.ask("-cert", client), str(client), "good")
    assert "WARNING: no nonce in response" not in text, text
    assert "OCSP Nonce" in text, text

    text = assert_openssl_status(pki.ask("-cert", client, "-no_nonce"), str(client), "good")
    assert "OCSP Nonce" not in text, text
    assert "WARNING" not in text, text


def test_openssl_sha256_cert_id(pki: Pki) -> None:
    _, _, client = pki.issue("client")
    for extra in ((), ("-no_nonce",)):
        text = assert_openssl_status(pki.ask("-sha256", "-cert", client, *extra), str(client), "good")
        assert re.search(r"Hash Algorithm: sha256$", text, re.MULTILINE), text


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha384", "sha512"])
def test_cert_id_hash_is_echoed(pki: Pki, algorithm: str) -> None:
    serial, certificate, _ = pki.issue("client")
    for nonce in (None, os.urandom(16)):
        response = post(pki.responder, build_request(certificate, pki.issuing_cert, algorithm, nonce)).parsed()
        assert single_status(response) == ocsp.OCSPCertStatus.GOOD
        assert response.hash_algorithm.name == algorithm
        assert response.serial_number == int(serial, 16)


def test_openssl_two_cert_ids_get_two_answers(pki: Pki) -> None:
    _, _, first = pki.issue("first")
    second_serial, _, second = pki.issue("second")
    pki.kinko.revoke(second_serial, "superseded")
    settle()
    for extra in ((), ("-no_nonce",)):
        code, text = pki.ask("-cert", first, "-cert", second, "-serial", "0x1234", *extra)
        assert_openssl_status((code, text), str(first), "good")
        assert_openssl_status((code, text), str(second), "revoked")
        assert_openssl_status((code, text), "0x1234", "unknown")
        assert text.count("Cert Status:") == 3, text


def test_openssl_issuing_ca_status_under_the_root(pki: Pki) -> None:
    for extra in ((), ("-no_nonce",)):
        text = assert_openssl_status(
            pki.ask("-cert", pki.issuing, *extra, issuer=pki.root, ca_file=pki.root), str(pki.issuing), "good"
        )
        # Signed by the root's delegated signer (ResponderID byKey), not the issuing CA's one.
        signer = pki.home.ca_certificate("ocsp:root").public_key()
        key_hash = x509.SubjectKeyIdentifier.from_public_key(signer).digest.hex().upper()
        assert f"Responder Id: {key_hash}" in text, text


def test_cert_id_naming_the_other_ca_is_unknown(pki: Pki) -> None:
    """A serial Kinko issued under one CA, asked about under the other CA, is unknown to that CA.

    The on-demand path (with a nonce) answers unknown; the pre-signed path (no nonce) must give
    the same answer for the same CertID, and every SingleResponse must carry the CertID asked.
    """
    client_serial, _, _ = pki.issue("client")
    issuing_serial = f"0x{pki.issuing_cert.serial_number:X}"
    cases = [
        (pki.issuing, issuing_serial),  # the issuing CA's own serial (a root-issued certificate) under the issuing CA
        (pki.root, f"0x{client_serial}"),  # a client serial (issuing-CA-issued) under the root
    ]
    failures = []
    for issuer, serial in cases:
        subject = x509.load_pem_x509_certificate(issuer.read_bytes()).subject.public_bytes()
        asked = hashlib.sha1(subject, usedforsecurity=False).hexdigest().upper()
        for extra in ((), ("-no_nonce",)):
            code, text = pki.ask("-serial", serial, *extra, issuer=issuer)
            if not (code == 0 and re.search(rf"^{serial}: unknown$", text, re.MULTILINE)):
                answered = re.findall(r"Issuer Name Hash: ([0-9A-F]+)", text)
                verdict = [line for line in text.splitlines() if line.startswith(serial)]
                failures.append(
                    f"-issuer {issuer.name} -serial {serial} {' '.join(extra)}: asked issuerNameHash {asked}, "
                    f"the SingleResponse carries {answered}; openssl: {verdict}"
                )
    assert not failures, "a CertID of the other CA is not answered unknown:\n" + "\n".join(failures)


# ---------------------------------------------------------------- GET (RFC 5019) and caching headers


def curl_get(url: str, out: Path, headers_file: Path) -> dict[str, str]:
    result = run(tool("curl"), "-s", "-o", out, "-D", headers_file, url)
    assert result.returncode == 0, output(result)
    lines = headers_file.read_text(encoding="latin-1").splitlines()
    assert lines and " 200" in lines[0], lines
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return headers


def http_date(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=dt.UTC)


def test_get_equals_post_and_carries_rfc5019_headers(pki: Pki) -> None:
    _, _, client = pki.issue("client")
    request = pki.dir / "req.der"
    posted = pki.dir / "post.der"
    result = openssl(
        "ocsp", "-issuer", pki.issuing, "-cert", client, "-no_nonce", "-reqout", request,
        "-url", pki.responder.url, "-CAfile", pki.chain, "-respout", posted,
    )  # fmt: skip
    assert result.returncode == 0 and f"{client}: good" in output(result), output(result)

    encoded = base64.b64encode(request.read_bytes()).decode("ascii")
    fetched = pki.dir / "get.der"
    headers = curl_get(pki.responder.url + encoded, fetched, pki.dir / "headers.txt")
    result = openssl(
        "ocsp", "-respin", fetched, "-issuer", pki.issuing, "-cert", client, "-CAfile", pki.chain, "-no_nonce"
    )
    assert result.returncode == 0, output(result)
    assert "Response verify OK" in output(result) and f"{client}: good" in output(result), output(result)
    assert fetched.read_bytes() == posted.read_bytes(), "GET and POST of the same pre-signed answer differ"

    response = ocsp.load_der_ocsp_response(fetched.read_bytes())
    assert headers.get("content-type") == "application/ocsp-response", headers
    for name in ("last-modified", "expires", "etag", "cache-control"):
        assert name in headers, f"no {name} header: {headers}"
    assert http_date(headers["last-modified"]) == response.this_update_utc, headers
    assert response.next_update_utc is not None
    assert http_date(headers["expires"]) == response.next_update_utc, headers
    assert re.fullmatch(r'(W/)?"[^"]+"', headers["etag"]), headers
    directives = {d.strip().split("=")[0]: d.strip() for d in headers["cache-control"].split(",")}
    assert {"max-age", "public", "no-transform", "must-revalidate"} <= set(directives), headers
    max_age = int(directives["max-age"].split("=")[1])
    remaining = (response.next_update_utc - dt.datetime.now(dt.UTC)).total_seconds()
    assert 0 < max_age <= remaining + 2 and max_age >= remaining - 60, (max_age, remaining)


def test_get_with_url_encoded_base64(pki: Pki) -> None:
    # Find a client whose request's base64 holds '+', '/' and '=' (the serial is random).
    for attempt in range(100):
        _, certificate, _ = pki.issue(f"client{attempt}")
        candidates = [build_request(certificate, pki.issuing_cert, a) for a in ("sha1", "sha256")]
        chosen = [c for c in candidates if all(ch in base64.b64encode(c) for ch in b"+/=")]
        if chosen:
            break
    else:
        pytest.fail("no request with '+', '/' and '=' in its base64 after 100 certificates")
    encoded = base64.b64encode(chosen[0]).decode("ascii")
    escaped = urllib.parse.quote(encoded, safe="")
    assert all(e in escaped for e in ("%2B", "%2F", "%3D")), escaped
    plain = http_request(pki.responder.port, "GET", "/" + encoded)
    quoted = http_request(pki.responder.port, "GET", "/" + escaped)
    lower = http_request(
        pki.responder.port, "GET", "/" + escaped.replace("%2B", "%2b").replace("%2F", "%2f").replace("%3D", "%3d")
    )
    assert single_status(plain.parsed()) == ocsp.OCSPCertStatus.GOOD
    # The same question, however it is escaped (percent-escapes are case-insensitive, RFC 3986
    # section 2.1). A SHA-256 CertID is signed on demand, so compare what the answers say.
    for reply in (quoted, lower):
        assert reply.parsed().serial_number == plain.parsed().serial_number
        assert single_status(reply.parsed()) == ocsp.OCSPCertStatus.GOOD
        assert reply.parsed().hash_algorithm.name == plain.parsed().hash_algorithm.name


def test_nonce_response_is_not_cacheable(pki: Pki) -> None:
    _, certificate, _ = pki.issue("client")
    nonce = os.urandom(32)  # the RFC 8954 maximum
    request = urllib.request.Request(  # noqa: S310 - loopback
        pki.responder.url, data=build_request(certificate, pki.issuing_cert, nonce=nonce), headers=OCSP_REQUEST
    )
    with urllib.request.urlopen(request, timeout=20) as reply:  # noqa: S310 - loopback
        headers = {k.lower(): v for k, v in reply.headers.items()}
        body = reply.read()
    response = ocsp.load_der_ocsp_response(body)
    assert single_status(response) == ocsp.OCSPCertStatus.GOOD
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    assert headers.get("content-type") == "application/ocsp-response", headers
    assert "no-store" in headers.get("cache-control", ""), headers
    assert "public" not in headers.get("cache-control", ""), headers


# ---------------------------------------------------------------- GnuTLS ocsptool


def ocsptool(pki: Pki, client: Path, *extra: str) -> str:
    result = run(
        tool("ocsptool"),
        f"--ask={pki.responder.url}",
        "--load-cert",
        client,
        "--load-issuer",
        pki.issuing,
        "--load-trust",
        pki.chain,
        *extra,
    )
    text = output(result)
    assert result.returncode == 0, f"ocsptool failed (exit {result.returncode}):\n{text}"
    assert "Verifying OCSP Response: Success." in text, text
    return text


def test_gnutls_ocsptool_good_then_revoked(pki: Pki) -> None:
    serial, _, client = pki.issue("client")
    for extra in ((), ("--nonce",)):
        assert "Certificate Status: good" in ocsptool(pki, client, *extra)
    pki.kinko.revoke(serial, "key-compromise")
    settle()
    for extra in ((), ("--nonce",)):
        assert "Certificate Status: revoked" in ocsptool(pki, client, *extra)


# ---------------------------------------------------------------- pkilint


def assert_lint_clean(linter: str, path: Path) -> None:
    result = run(tool(linter), "lint", "-s", "ERROR", path)
    out = result.stdout.decode("utf-8", "replace")
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0 and not out.strip(), (
        f"pkilint ({linter} lint -s ERROR) reported findings on {path.name} (exit {result.returncode}):\n{out}{err}"
    )


def test_pkilint_on_responses(pki: Pki) -> None:
    _, _, good = pki.issue("good")
    revoked_serial, _, revoked = pki.issue("revoked")
    held_serial, _, held = pki.issue("held")
    pki.kinko.revoke(revoked_serial, "key-compromise")
    pki.kinko.hold(held_serial)
    settle()
    saved: dict[str, tuple[tuple[str | Path, ...], Path]] = {
        "good": (("-cert", good, "-no_nonce"), pki.issuing),
        "good-nonce": (("-cert", good), pki.issuing),
        "good-sha256": (("-sha256", "-cert", good, "-no_nonce"), pki.issuing),
        "revoked": (("-cert", revoked, "-no_nonce"), pki.issuing),
        "revoked-nonce": (("-cert", revoked), pki.issuing),
        "held": (("-cert", held, "-no_nonce"), pki.issuing),
        "unknown": (("-serial", "0x1234", "-no_nonce"), pki.issuing),
        "three-cert-ids": (("-cert", good, "-cert", revoked, "-serial", "0x1234"), pki.issuing),
        "issuing-ca": (("-cert", pki.issuing, "-no_nonce"), pki.root),
    }
    for name, (args, issuer) in saved.items():
        out = pki.dir / f"{name}.der"
        result = openssl(
            "ocsp", "-issuer", issuer, *args, "-url", pki.responder.url, "-CAfile", pki.chain, "-respout", out
        )
        assert result.returncode == 0 and "Response verify OK" in output(result), output(result)
        assert_lint_clean("lint_ocsp_response", out)


@pytest.mark.parametrize("role", ["ocsp:issuing", "ocsp:root"])
def test_pkilint_on_signer_certificates(home: Home, tmp_path: Path, role: str) -> None:
    path = write_pem(home.ca_certificate(role), tmp_path / f"{role.replace(':', '-')}.pem")
    assert_lint_clean("lint_pkix_cert", path)


# ---------------------------------------------------------------- freshness


def worker_cpu_ticks(responder: RunningResponder) -> dict[int, int]:
    """utime + stime (clock ticks) of each worker process of the responder (Linux /proc)."""
    pid = responder.process.pid
    children = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        children.update(int(c) for c in (task / "children").read_text().split())
    ticks = {}
    for child in children:
        fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        ticks[child] = int(fields[11]) + int(fields[12])
    return ticks


def test_revocation_reaches_every_worker_within_a_second(pki: Pki) -> None:
    serial, certificate, _ = pki.issue("client")
    request = build_request(certificate, pki.issuing_cert)  # no nonce: the pre-signed, per-worker cached path
    assert single_status(post(pki.responder, request).parsed()) == ocsp.OCSPCertStatus.GOOD

    stop = threading.Event()
    results: list[tuple[float, ocsp.OCSPCertStatus]] = []
    errors: list[str] = []
    lock = threading.Lock()
    hard_stop = time.monotonic() + 5

    def hammer() -> None:
        seen: list[tuple[float, ocsp.OCSPCertStatus]] = []
        connection: http.client.HTTPConnection | None = None
        count = 0
        try:
            while not stop.is_set() and time.monotonic() < hard_stop:
                if connection is None or count % 20 == 0:  # new connections land on either worker
                    if connection is not None:
                        connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", pki.responder.port, timeout=5)
                connection.request("POST", "/", body=request, headers=OCSP_REQUEST)
                reply = connection.getresponse()
                body = reply.read()
                received = time.monotonic()
                if reply.status != 200:
                    errors.append(f"HTTP {reply.status}")
                    continue
                seen.append((received, single_status(ocsp.load_der_ocsp_response(body))))
                count += 1
        except Exception as exc:  # reported below, not lost in the thread
            errors.append(repr(exc))
        finally:
            if connection is not None:
                connection.close()
            with lock:
                results.extend(seen)

    cpu_before = worker_cpu_ticks(pki.responder)
    assert len(cpu_before) == 2, f"expected 2 worker processes, found {sorted(cpu_before)}"
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(hammer) for _ in range(6)]
        time.sleep(0.5)
        started = time.monotonic()
        pki.kinko.revoke(serial, "key-compromise")
        returned = time.monotonic()
        time.sleep(max(0.0, min(returned + 1.8, hard_stop) - time.monotonic()))
        stop.set()
        for future in futures:
            future.result(timeout=15)

    cpu_after = worker_cpu_ticks(pki.responder)
    assert not errors, errors[:5]
    # Both workers answered some of the load (each burned CPU), so both saw the revocation.
    busy = {pid: cpu_after.get(pid, 0) - ticks for pid, ticks in cpu_before.items()}
    assert all(used >= 5 for used in busy.values()), f"CPU ticks used per worker during the load: {busy}"
    before = [status for when, status in results if when < started]
    after = [(when, status) for when, status in results if when >= returned + 1.0]
    assert before and all(s == ocsp.OCSPCertStatus.GOOD for s in before), "good before the revocation"
    assert len(after) >= 20, f"only {len(after)} responses after the deadline; the loop did not keep up"
    stale = [(round(when - returned, 3), status) for when, status in after if status != ocsp.OCSPCertStatus.REVOKED]
    assert not stale, f"{len(stale)} of {len(after)} responses >1 s after revoke() still not revoked: {stale[:5]}"
    last_good = max((when for when, s in results if s == ocsp.OCSPCertStatus.GOOD), default=started)
    assert last_good - returned < 1.0, f"last good answer {last_good - returned:.3f} s after revoke() returned"


# ---------------------------------------------------------------- a shared responder for the rest


@dataclass
class Shared:
    home: Home
    responder: RunningResponder
    certificate: x509.Certificate
    issuer: x509.Certificate
    request: bytes  # SHA-1, no nonce: the pre-signed path

    def good_request_works(self) -> bool:
        reply = post(self.responder, self.request)
        return single_status(reply.parsed()) == ocsp.OCSPCertStatus.GOOD


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    base = tmp_path_factory.mktemp("ocsp-shared")
    passphrase = base / "pass.txt"
    passphrase.write_text("correct horse battery staple\n", encoding="utf-8")
    passphrase.chmod(0o600)
    clock = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    home = create_home(base / "home", InitOptions(organization=ORG, passphrase_file=passphrase), clock, current_login())
    issued = Kinko(home, clock=clock).issue(make_csr(), name=HOLDER, organization=CUSTOMER)
    certificate = x509.load_pem_x509_certificate(issued.pem.encode("ascii"))
    issuer = home.ca_certificate("issuing")
    running = RunningResponder(home)
    try:
        yield Shared(home, running, certificate, issuer, build_request(certificate, issuer))
    finally:
        running.stop()


def _valid_request_with_trailing_garbage(s: Shared) -> bytes:
    return s.request + b"\x00\x01garbage"


MALFORMED_BODIES = {
    "empty": lambda s: b"",
    "random bytes": lambda s: random.Random(7).randbytes(300),
    "truncated DER": lambda s: s.request[:-7],
    "one byte short": lambda s: s.request[:-1],
    "trailing garbage": _valid_request_with_trailing_garbage,
    "trailing zero byte": lambda s: s.request + b"\x00",
    "nonce of 33 octets": lambda s: build_request(s.certificate, s.issuer, nonce=os.urandom(33)),
    "empty nonce": lambda s: build_request(s.certificate, s.issuer, nonce=b""),
    "a certificate, not a request": lambda s: s.certificate.public_bytes(serialization.Encoding.DER),
    "PEM text": lambda s: b"-----BEGIN OCSP REQUEST-----\n" + base64.encodebytes(s.request) + b"-----END",
}


@pytest.mark.parametrize("case", list(MALFORMED_BODIES))
def test_malformed_post_is_malformed_request(shared: Shared, case: str) -> None:
    body = MALFORMED_BODIES[case](shared)
    reply = post(shared.responder, body)
    assert reply.status < 500, reply
    assert is_malformed(reply) or 400 <= reply.status < 500, f"{case}: {reply}"
    assert shared.responder.alive() and shared.good_request_works()


def test_32_octet_nonce_is_accepted(shared: Shared) -> None:
    nonce = os.urandom(32)
    response = post(shared.responder, build_request(shared.certificate, shared.issuer, nonce=nonce)).parsed()
    assert single_status(response) == ocsp.OCSPCertStatus.GOOD
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce


def test_chunked_valid_request_is_answered(shared: Shared) -> None:
    reply = http_request(
        shared.responder.port,
        "POST",
        "/",
        iter([shared.request[:10], shared.request[10:]]),
        {**OCSP_REQUEST, "Transfer-Encoding": "chunked"},
        encode_chunked=True,
    )
    assert single_status(reply.parsed()) == ocsp.OCSPCertStatus.GOOD


def _raw_status(port: int, head: bytes, body: bytes = b"") -> int:
    """Sends a request by hand (no body beyond `body`) and returns the status code of the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body)
        reply = b""
        while b"\r\n" not in reply:
            data = sock.recv(4096)
            if not data:
                break
            reply += data
    return int(reply.split(b" ", 2)[1])


def test_one_mebibyte_body_is_refused(shared: Shared) -> None:
    # Declared 1 MiB: refused from the header alone, before any of the body is sent (so the
    # client never writes into a closed socket, which would make the test racy).
    head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/ocsp-request\r\nContent-Length: %d\r\n\r\n"
    assert _raw_status(shared.responder.port, head % (1 << 20)) == 413
    # Chunked, with no length: refused once just over 64 KiB has arrived, the rest never read.
    chunked = (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/ocsp-request\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    body = b"".join(b"%x\r\n" % len(part) + part + b"\r\n" for part in (b"\x30" * 65536, b"\x30"))
    assert _raw_status(shared.responder.port, chunked, body) == 413
    assert shared.responder.alive() and shared.good_request_works()


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405(shared: Shared, method: str) -> None:
    reply = http_request(shared.responder.port, method, "/", shared.request, OCSP_REQUEST)
    assert reply.status == 405, reply
    assert shared.responder.alive() and shared.good_request_works()


@pytest.mark.parametrize(
    "path",
    ["/!!!not-base64***", "/MFIwUDBO%ZZ", "/" + "A" * 5, "/%00%01", "/ca/issuing.pem", "/crl/issuing.pem", "/"],
)
def test_get_with_broken_base64_is_malformed_request(shared: Shared, path: str) -> None:
    reply = http_request(shared.responder.port, "GET", path)
    assert reply.status < 500, reply
    assert is_malformed(reply), reply
    assert shared.responder.alive() and shared.good_request_works()


TRAVERSALS = [
    "/ca/../kinko.toml",
    "/ca/../../kinko.toml",
    "/crl/../../kinko.toml",
    "/ca/..%2F..%2Fkinko.toml",
    "/ca/%2e%2e/%2e%2e/kinko.toml",
    "/../kinko.toml",
    "/kinko.toml",
    "/ca/../../kinko.db",
    "/ca/../../keys/root.key",
    "/crl/..%2f..%2fkeys%2froot.key",
    "/healthz/../ca/root.cer",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_get_never_serves_files_outside_public(shared: Shared, path: str) -> None:
    reply = http_request(shared.responder.port, "GET", path)
    assert reply.status < 500, reply
    assert is_malformed(reply) or reply.status in (400, 403, 404), reply
    secrets = [shared.home.config_file.read_bytes(), shared.home.db_file.read_bytes()[:16]]
    for key in shared.home.keys_dir.iterdir():
        secrets.append(key.read_bytes())
    for secret in secrets:
        assert secret not in reply.body, f"{path} served a file from the home"
    for marker in (b"[ca]", b"PRIVATE KEY", b"SQLite format"):
        assert marker not in reply.body, f"{path} served {marker!r}"


def test_curl_path_as_is_cannot_escape(shared: Shared, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(
        tool("curl"),
        "-s",
        "--path-as-is",
        "-o",
        out,
        "-w",
        "%{http_code}",
        shared.responder.url + "ca/../../kinko.toml",
    )
    code = result.stdout.decode("ascii")
    assert result.returncode == 0 and code.isdigit() and int(code) < 500, output(result)
    assert b"[ca]" not in out.read_bytes()


@pytest.mark.parametrize(
    ("path", "content_type", "file"),
    [
        ("/crl/issuing.crl", "application/pkix-crl", "crl/issuing.crl"),
        ("/crl/root.crl", "application/pkix-crl", "crl/root.crl"),
        ("/crl/issuing-delta.crl", "application/pkix-crl", "crl/issuing-delta.crl"),
        ("/ca/issuing.cer", "application/pkix-cert", "ca/issuing.cer"),
        ("/ca/root.cer", "application/pkix-cert", "ca/root.cer"),
    ],
)
def test_static_files(shared: Shared, path: str, content_type: str, file: str) -> None:
    reply = http_request(shared.responder.port, "GET", path)
    assert reply.status == 200, reply
    assert reply.headers.get("content-type") == content_type, reply.headers
    assert reply.body == (shared.home.public_dir / file).read_bytes()
    if content_type == "application/pkix-crl":
        x509.load_der_x509_crl(reply.body)
    else:
        role = Path(file).stem
        assert x509.load_der_x509_certificate(reply.body) == shared.home.ca_certificate(role)


# ---------------------------------------------------------------- slow clients


def wait_for_close(sock: socket.socket, limit: float) -> tuple[float | None, bytes]:
    """Reads until the server closes or `limit` seconds pass: (seconds until closed or None, bytes)."""
    started = time.monotonic()
    data = b""
    while time.monotonic() - started < limit:
        sock.settimeout(max(0.05, limit - (time.monotonic() - started)))
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            break
        except OSError:
            return time.monotonic() - started, data
        if not chunk:
            return time.monotonic() - started, data
        data += chunk
    return None, data


def test_stalled_clients_are_cut_off(shared: Shared) -> None:
    port = shared.responder.port
    outcomes: dict[str, tuple[float | None, bytes]] = {}

    def stall(label: str, payload: bytes, limit: float) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(payload)
            outcomes[label] = wait_for_close(sock, limit)

    stalls = [
        threading.Thread(target=stall, args=("headers", b"POST / HTTP/1.1\r\nHost: x\r\n", 10.0)),
        threading.Thread(
            target=stall,
            args=("body", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789", 15.0),
        ),
    ]
    for thread in stalls:
        thread.start()
    time.sleep(1.0)
    # Meanwhile a normal request on another connection is answered at once.
    began = time.monotonic()
    assert shared.good_request_works()
    assert time.monotonic() - began < 2.0
    for thread in stalls:
        thread.join(timeout=30)

    closed, data = outcomes["headers"]
    assert closed is not None, f"a client that stopped mid-headers still held its connection after 10 s: {data!r}"
    closed, data = outcomes["body"]
    assert closed is not None or data.startswith(b"HTTP/1.1 408"), (
        f"a client that stopped mid-body got neither a 408 nor a close within 15 s: {data!r}"
    )
    if data:
        assert data.startswith(b"HTTP/1.1 408"), data
    assert shared.responder.alive() and shared.good_request_works()


BODY_TIMEOUT = 10.0  # ca/http.py: "seconds a client may take to send its request body"


def test_trickled_body_is_cut_off(shared: Shared) -> None:
    """A client sending its 100-byte body one byte a second may not hold the request past BODY_TIMEOUT."""
    limit = BODY_TIMEOUT + 5
    with socket.create_connection(("127.0.0.1", shared.responder.port), timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        started = time.monotonic()
        sent = 0
        answer = b""
        closed = False
        while time.monotonic() - started < limit and not closed:
            sock.settimeout(0.1)
            try:
                chunk = sock.recv(4096)
                closed = not chunk
                answer += chunk
            except TimeoutError:
                pass
            except OSError:
                closed = True
            if answer:
                break
            if not closed and sent < 99 and time.monotonic() - started > sent + 1:
                try:
                    sock.sendall(b"0")
                    sent += 1
                except OSError:
                    closed = True
        elapsed = time.monotonic() - started
    assert closed or answer.startswith(b"HTTP/1.1 408"), (
        f"after {elapsed:.1f} s and {sent} body bytes sent one a second, the request is still open "
        f"(BODY_TIMEOUT is {BODY_TIMEOUT} s); got {answer!r}"
    )
    assert shared.responder.alive() and shared.good_request_works()


# ---------------------------------------------------------------- property-based fuzzing


POSITION = st.integers(min_value=0, max_value=1 << 16)
MUTATION = st.one_of(
    st.tuples(st.just("flip"), POSITION, st.integers(0, 7)),
    st.tuples(st.just("insert"), POSITION, st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), POSITION, st.integers(1, 16)),
    st.tuples(st.just("truncate"), POSITION),
    st.tuples(st.just("splice"), POSITION, st.integers(0, 16), POSITION, st.integers(1, 64)),
    st.tuples(st.just("set"), POSITION, st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0x81, 0x82, 0x84, 0xFF])),
)


def two_cert_ids(*requests: bytes, nonce: bytes | None = None) -> bytes:
    """One DER request holding the CertIDs of several single-CertID requests (cryptography builds one only)."""
    singles = [asn1_ocsp.OCSPRequest.load(r)["tbs_request"]["request_list"][0] for r in requests]
    tbs: dict[str, Any] = {"request_list": singles}
    if nonce is not None:
        tbs["request_extensions"] = [{"extn_id": "nonce", "extn_value": nonce}]
    return asn1_ocsp.OCSPRequest({"tbs_request": tbs}).dump(force=True)


def mutate(data: bytes, mutations: list[tuple[Any, ...]], donors: list[bytes]) -> bytes:
    for mutation in mutations:
        kind, at = mutation[0], mutation[1] % (len(data) + 1)
        if kind == "flip" and data:
            at %= len(data)
            data = data[:at] + bytes([data[at] ^ (1 << mutation[2])]) + data[at + 1 :]
        elif kind == "set" and data:
            at %= len(data)
            data = data[:at] + bytes([mutation[2]]) + data[at + 1 :]
        elif kind == "insert":
            data = data[:at] + mutation[2] + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + mutation[2] :]
        elif kind == "truncate":
            data = data[:at]
        elif kind == "splice":
            donor = donors[mutation[2] % len(donors)]
            start = mutation[3] % (len(donor) + 1)
            piece = donor[start : start + mutation[4]]
            data = data[:at] + piece + data[at + len(piece) :]
    return data


def test_fuzzed_requests_never_5xx(shared: Shared) -> None:
    other = x509.load_pem_x509_certificate((shared.home.public_dir / "ca" / "root.pem").read_bytes())
    seeds = [
        shared.request,
        build_request(shared.certificate, shared.issuer, "sha256", nonce=os.urandom(16)),
        build_request(shared.certificate, shared.issuer, "sha512"),
        build_request(shared.issuer, other, "sha1", nonce=os.urandom(32)),
        two_cert_ids(
            build_request(shared.certificate, shared.issuer),
            build_request(shared.issuer, other),
            nonce=os.urandom(16),
        ),
    ]
    latencies: list[float] = []
    state: dict[str, http.client.HTTPConnection] = {}

    def send(body: bytes) -> tuple[int, bytes]:
        for attempt in range(2):
            connection = state.get("c")
            if connection is None:
                connection = state["c"] = http.client.HTTPConnection("127.0.0.1", shared.responder.port, timeout=10)
            try:
                began = time.perf_counter()
                connection.request("POST", "/", body=body, headers=OCSP_REQUEST)
                reply = connection.getresponse()
                data = reply.read()
                latencies.append(time.perf_counter() - began)
                if reply.will_close:
                    connection.close()
                    del state["c"]
                return reply.status, data
            except (http.client.HTTPException, ConnectionError):
                connection.close()
                del state["c"]
                if attempt or not shared.responder.alive():
                    raise
        raise AssertionError("unreachable")

    unparseable: list[str] = []

    @settings(
        max_examples=10_000,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(seed=st.integers(0, len(seeds) - 1), mutations=st.lists(MUTATION, min_size=1, max_size=4))
    def check(seed: int, mutations: list[tuple[Any, ...]]) -> None:
        body = mutate(seeds[seed], mutations, seeds)
        status, data = send(body)
        assert status < 500, (status, body.hex())
        if status == 200:
            try:
                ocsp.load_der_ocsp_response(data)
            except ValueError as exc:
                # Collected, not raised: all 10,000 examples still run.
                unparseable.append(f"request {body.hex()} -> {exc}")

    began = time.monotonic()
    try:
        check()
    finally:
        if "c" in state:
            state["c"].close()
    elapsed = time.monotonic() - began
    assert shared.responder.alive()
    assert shared.good_request_works()
    assert len(latencies) >= 10_000, len(latencies)
    # Reported, never asserted: speed is bench/ocsp.py's to measure, not a test's.
    median = statistics.median(latencies)
    p99 = statistics.quantiles(latencies, n=100)[98]
    assert not unparseable, (
        f"(median {median * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, {elapsed:.1f} s in all) "
        f"{len(unparseable)} of {len(latencies)} HTTP 200 answers are not parseable OCSP responses; first ones:\n"
        + "\n".join(unparseable[:5])
    )


# ---------------------------------------------------------------- HEAD, conditional GET, CertIDs per request


def ocsp_get_path(request: bytes) -> str:
    return "/" + urllib.parse.quote(base64.b64encode(request).decode("ascii"), safe="")


@pytest.mark.parametrize("kind", ["ocsp", "ca", "crl"])
def test_head_gets_the_get_headers_and_no_body(shared: Shared, kind: str) -> None:
    path = {"ocsp": ocsp_get_path(shared.request), "ca": "/ca/issuing.cer", "crl": "/crl/issuing.crl"}[kind]
    got = http_request(shared.responder.port, "GET", path)
    head = http_request(shared.responder.port, "HEAD", path)
    assert (got.status, head.status) == (200, 200)
    assert head.body == b""
    assert head.headers["content-length"] == str(len(got.body))
    for name in ("content-type", "etag", "last-modified", "cache-control", "expires"):
        assert head.headers.get(name) == got.headers.get(name), name


@pytest.mark.parametrize("kind", ["ocsp", "ca", "crl"])
def test_a_conditional_get_that_still_matches_gets_304(shared: Shared, kind: str) -> None:
    path = {"ocsp": ocsp_get_path(shared.request), "ca": "/ca/issuing.cer", "crl": "/crl/issuing.crl"}[kind]
    port = shared.responder.port
    first = http_request(port, "GET", path)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    by_tag = http_request(port, "GET", path, headers={"If-None-Match": etag})
    assert (by_tag.status, by_tag.body, by_tag.headers.get("etag")) == (304, b"", etag)
    assert http_request(port, "GET", path, headers={"If-None-Match": f'"other", W/{etag}'}).status == 304
    by_date = http_request(port, "GET", path, headers={"If-Modified-Since": modified})
    assert (by_date.status, by_date.body) == (304, b"")
    # Another tag, or a date before the answer's, gets the whole answer again.
    other = http_request(port, "GET", path, headers={"If-None-Match": '"not-this-one"'})
    assert (other.status, other.body) == (200, first.body)
    earlier = http_request(port, "GET", path, headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
    assert (earlier.status, earlier.body) == (200, first.body)


def test_a_nonce_answer_is_never_304(shared: Shared) -> None:
    request = build_request(shared.certificate, shared.issuer, nonce=os.urandom(16))
    reply = http_request(shared.responder.port, "GET", ocsp_get_path(request), headers={"If-None-Match": "*"})
    assert reply.status == 200 and reply.headers["cache-control"] == "no-store"
    assert ocsp.load_der_ocsp_response(reply.body).response_status == ocsp.OCSPResponseStatus.SUCCESSFUL


def test_more_cert_ids_than_the_cap_are_refused_before_any_lookup(shared: Shared) -> None:
    at_cap = post(shared.responder, two_cert_ids(*[shared.request] * 16))
    assert at_cap.parsed().response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert len(list(at_cap.parsed().responses)) == 16
    over = post(shared.responder, two_cert_ids(*[shared.request] * 17))
    assert ocsp.load_der_ocsp_response(over.body).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
