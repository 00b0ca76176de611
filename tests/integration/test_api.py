"""The login front end's API over real HTTP: `kinko api serve` as a process on 127.0.0.1."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from tests.conftest import ROOT, free_port, make_csr, row_counts, run_kinko, send_paced_body, wait_listening

TOKEN = "s3cret-token-for-the-login-front-end"


@contextlib.contextmanager
def serving(
    home: Home, tmp_path: Path, *extra: str, token_name: str | None = None, cwd: Path = ROOT, port: int | None = None
) -> Iterator[int]:
    """`kinko api serve` for a home on `port` (else a free loopback port), stopped afterwards; the
    token in tmp_path (named by its absolute path), or `token_name` inside the home (named relatively)."""
    token_file = home.path / token_name if token_name else tmp_path / "api.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    named = token_name or str(token_file)
    text = home.config_file.read_text(encoding="utf-8").replace('token_file = ""', f'token_file = "{named}"')
    home.config_file.write_text(text, encoding="utf-8")
    port = port or free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "kinko.cli", "--home", str(home.path), "api", "serve"),
            *("--port", str(port), "--workers", "1", *extra),
        ],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_listening(port, process, "api serve")
        yield port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


@pytest.fixture
def api(home: Home, tmp_path: Path) -> Iterator[int]:
    with serving(home, tmp_path) as port:
        yield port


def call(
    port: int,
    method: str,
    path: str,
    body: object = None,
    token: str | None = TOKEN,
    certificate: bytes | None = None,
    forwarded_for: str | None = None,
) -> tuple[int, dict, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    if certificate is not None:
        # As nginx passes $ssl_client_escaped_cert: the verified client certificate, URL-escaped PEM.
        headers["X-Client-Certificate"] = urllib.parse.quote(certificate.decode())
    payload = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    text = response.read().decode()
    return response.status, json.loads(text) if text else {}, response.getheader("Content-Type") or ""


@pytest.fixture
def admin(kinko: Kinko) -> tuple[str, str]:
    """A customer with an administrator holding a certificate: (subscriber id, serial)."""
    kinko.add_customer("C0001", "株式会社テスト")
    enrolled = kinko.enroll_administrator("C0001", "山田 太郎", "C0001-A1")
    issued = kinko.acquire(enrolled.code, make_csr())
    return "C0001-A1", issued.record.serial


def test_no_token_no_service(home: Home) -> None:
    result = run_kinko("--home", home.path, "api", "serve", "--port", str(free_port()))
    assert result.returncode == 1
    assert "no API token" in result.stderr and "no token, no service" in result.stderr


def test_token_is_required(api: int, admin) -> None:
    for token in (None, "wrong-token-wrong-token-wrong", TOKEN + "x"):
        status, body, content_type = call(api, "GET", f"/v1/certificates/{admin[1]}/status", token=token)
        assert status == 401 and content_type == "application/problem+json"
        assert body["status"] == 401 and "bearer token" in body["detail"]


def test_status(api: int, admin) -> None:
    status, body, content_type = call(api, "GET", f"/v1/certificates/{admin[1]}/status")
    assert status == 200 and content_type == "application/json"
    assert body["state"] == "valid" and body["subscriber"] == "C0001-A1" and body["days_left"] == 365
    status, body, _ = call(api, "GET", "/v1/certificates/DEADBEEF/status")
    assert status == 404 and body["detail"] == "no certificate with serial DEADBEEF in this CA's registry"


def pem_of(home: Home, serial: str) -> bytes:
    """A certificate of the registry as PEM, as the login's TLS layer received it."""
    return x509.load_der_x509_certificate(home.store.certificate(serial).der).public_bytes(Encoding.PEM)


def test_enrollment_and_acquisition(api: int, home: Home, admin) -> None:
    status, enrolled, _ = call(
        api, "POST", "/v1/enrollments", {"customer": "C0001", "name": "佐藤 花子"}, certificate=pem_of(home, admin[1])
    )
    assert status == 201 and enrolled["role"] == "user" and enrolled["code"]
    csr = make_csr().decode()
    status, issued, _ = call(api, "POST", "/v1/acquire", {"code": enrolled["code"], "csr": csr})
    assert status == 201, issued
    certificate = x509.load_pem_x509_certificate(issued["pem"].encode())
    assert certificate.subject.get_attributes_for_oid(x509.NameOID.SERIAL_NUMBER)[0].value == enrolled["subscriber_id"]
    # The chain comes with it, issuing CA first: the holder's PKCS#12 needs nothing else, and it verifies.
    issuing, root = (x509.load_pem_x509_certificate(pem.encode()) for pem in issued["chain"])
    assert issuing.subject == certificate.issuer and root.subject == issuing.issuer == root.issuer
    certificate.verify_directly_issued_by(issuing)
    issuing.verify_directly_issued_by(root)
    events = [e for e in home.store.ledger_events() if e.subscriber == enrolled["subscriber_id"]]
    assert {e.actor for e in events} == {"api:login-frontend"}
    # The same code again: refused with the CLI's message, as problem+json.
    status, problem, content_type = call(
        api, "POST", "/v1/acquire", {"code": enrolled["code"], "csr": make_csr().decode()}
    )
    assert status == 403 and content_type == "application/problem+json"
    cli = run_kinko("--home", home.path, "acquire", "--code", enrolled["code"], "--csr", _write(home, make_csr()))
    assert problem["detail"] == cli.stderr.strip().removeprefix("kinko: error: ")


def test_refusals_are_problems_and_change_nothing(api: int, home: Home, admin) -> None:
    before = row_counts(home)
    cases = [
        ("POST", "/v1/renew", {"serial": admin[1], "csr": make_csr().decode()}, 403, "client certificate"),
        ("POST", "/v1/reacquire", {"subscriber": admin[0], "csr": make_csr().decode()}, 400, "'signature'"),
        (
            "POST",
            "/v1/reacquire",
            {"subscriber": admin[0], "csr": make_csr().decode(), "signature": "AAAA"},
            403,
            "re-acquisition is only for an expired one: renew it",
        ),
        ("POST", "/v1/enrollments", {"customer": "C0001", "name": "x", "by": admin[0]}, 403, "client certificate"),
        ("POST", "/v1/acquire", {"code": 5}, 400, "field 'code' is required"),
        ("POST", "/v1/acquire", b"{not json", 400, "not JSON"),
        ("POST", "/v1/acquire", [1, 2], 400, "JSON object"),
        ("POST", "/v1/acquire", b"[" * 60000, 400, "nests too deeply"),
        ("POST", "/v1/acquire", b'{"code": ' + b"[" * 30000 + b"]" * 30000 + b"}", 400, "nests too deeply"),
        ("POST", "/v1/acquire", b"x" * (65 * 1024), 413, "64 KiB"),
        ("GET", "/v1/acquire", None, 405, "not allowed"),
        ("POST", f"/v1/certificates/{admin[1]}/status", {}, 405, "not allowed"),
        ("GET", "/v1/nothing", None, 404, "no such resource"),
    ]
    for method, path, body, expected, message in cases:
        status, problem, content_type = call(api, method, path, body)
        assert (status, content_type) == (expected, "application/problem+json"), (path, problem)
        assert message in problem["detail"], problem
    assert row_counts(home) == before
    # A code of no enrollment is counted for the rate limit like any wrong code: one ledger event.
    code = {"code": "ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ", "csr": "x"}
    status, problem, _ = call(api, "POST", "/v1/acquire", code)
    assert status == 403 and "not valid" in problem["detail"], problem
    assert row_counts(home) == {**before, "ledger": before["ledger"] + 1}
    assert list(home.store.ledger_events())[-1].action == "enrollment.code-refused"


def _write(home: Home, data: bytes) -> Path:
    path = home.path.parent / "api-test.csr"
    path.write_bytes(data)
    return path


def test_a_stalled_body_gets_a_408_problem(api: int, home: Home) -> None:
    """A client that stops mid-body is answered 408 after BODY_TIMEOUT (10 s), never a 5xx."""
    before = row_counts(home)
    head = f"POST /v1/acquire HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n"
    with socket.create_connection(("127.0.0.1", api), timeout=20) as sock:
        sock.sendall(head.encode() + b'{"code": ')
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    head_part, _, body = answer.partition(b"\r\n\r\n")
    assert head_part.startswith(b"HTTP/1.1 408"), answer
    assert b"content-type: application/problem+json" in head_part.lower(), answer
    assert json.loads(body)["detail"] == "request body too slow"
    assert row_counts(home) == before


def past_holder(tmp_path: Path, passphrase_file: Path, days_ago: int) -> tuple[Home, Kinko, str, str, object]:
    """A home whose administrator acquired `days_ago` days ago: (home, kinko, id, serial, key)."""
    from kinko.ca.clock import FixedClock
    from kinko.ca.hierarchy import InitOptions, create_home
    from kinko.ca.officers import current_login
    from tests.conftest import make_key

    clock = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=days_ago))
    options = InitOptions(organization="X", passphrase_file=passphrase_file)
    home = create_home(tmp_path / "home", options, clock, current_login())
    kinko = Kinko(home, clock=clock, actor=current_login())
    kinko.add_customer("C0001", "株式会社テスト")
    enrolled = kinko.enroll_administrator("C0001", "山田 太郎", "C0001-A1")
    key = make_key()
    serial = kinko.acquire(enrolled.code, make_csr(key)).record.serial
    return home, kinko, "C0001-A1", serial, key


def forged_like(home: Home, serial: str) -> bytes:
    """A self-made certificate with the same serial and subject as a real one."""
    from tests.conftest import make_key

    real = x509.load_der_x509_certificate(home.store.certificate(serial).der)
    key = make_key()
    forged = (
        x509.CertificateBuilder()
        .subject_name(real.subject)
        .issuer_name(real.issuer)
        .serial_number(real.serial_number)
        .public_key(key.public_key())
        .not_valid_before(real.not_valid_before_utc)
        .not_valid_after(real.not_valid_after_utc)
        .sign(key, hashes.SHA256())
    )
    return forged.public_bytes(Encoding.PEM)


def test_renewal_is_proved_by_the_holders_current_certificate(tmp_path: Path, passphrase_file: Path) -> None:
    # Acquired 340 days ago: the renewal window (30 days before expiry) is open now.
    home, _, subscriber, serial, _ = past_holder(tmp_path, passphrase_file, 340)
    with serving(home, tmp_path) as port:
        body = {"serial": serial, "csr": make_csr().decode()}
        before = row_counts(home)
        for certificate, message in [
            (None, "proved by the holder's client certificate"),
            (forged_like(home, serial), "not issued by this CA"),
            (b"-----BEGIN CERTIFICATE-----\nnonsense\n-----END CERTIFICATE-----\n", "not a PEM or DER"),
        ]:
            status, problem, content_type = call(port, "POST", "/v1/renew", body, certificate=certificate)
            assert status in (400, 403) and content_type == "application/problem+json", problem
            assert message in problem["detail"], problem
        assert row_counts(home) == before
        assert home.store.certificate(serial).status == "valid"

        status, issued, _ = call(port, "POST", "/v1/renew", body, certificate=pem_of(home, serial))
        assert status == 201, issued
        assert issued["subscriber"] == subscriber
        assert home.store.certificate(serial).status == "revoked"
        # The superseded certificate proves nothing any more.
        status, problem, _ = call(port, "POST", "/v1/renew", body, certificate=pem_of(home, serial))
        assert status == 403 and "not valid now" in problem["detail"], problem


def test_renewal_outside_the_window_is_refused_with_a_valid_certificate(api: int, home: Home, admin) -> None:
    before = row_counts(home)
    status, problem, _ = call(
        api, "POST", "/v1/renew", {"csr": make_csr().decode()}, certificate=pem_of(home, admin[1])
    )
    assert status == 403 and "renewal of" in problem["detail"], problem
    assert row_counts(home) == before


def test_reacquisition_is_proved_by_the_expired_certificates_key(tmp_path: Path, passphrase_file: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.conftest import make_key

    # Acquired 370 days ago: expired 5 days ago, within the 90-day grace.
    home, _, subscriber, serial, old_key = past_holder(tmp_path, passphrase_file, 370)
    csr = make_csr()
    der = x509.load_pem_x509_csr(csr).public_bytes(Encoding.DER)
    wrong = base64.b64encode(make_key().sign(der, ec.ECDSA(hashes.SHA256()))).decode()
    right = base64.b64encode(old_key.sign(der, ec.ECDSA(hashes.SHA256()))).decode()
    other_csr = make_csr()
    with serving(home, tmp_path) as port:
        before = row_counts(home)
        cases = [
            ({"subscriber": subscriber, "csr": csr.decode()}, 400, "field 'signature' is required"),
            ({"subscriber": subscriber, "csr": csr.decode(), "signature": wrong}, 403, "does not verify"),
            ({"subscriber": subscriber, "csr": other_csr.decode(), "signature": right}, 403, "does not verify"),
            ({"subscriber": subscriber, "csr": csr.decode(), "signature": "not base64!"}, 400, "base64"),
        ]
        for body, expected, message in cases:
            status, problem, _ = call(port, "POST", "/v1/reacquire", body)
            assert status == expected and message in problem["detail"], problem
        assert row_counts(home) == before
        status, issued, _ = call(
            port, "POST", "/v1/reacquire", {"subscriber": subscriber, "csr": csr.decode(), "signature": right}
        )
        assert status == 201, issued
        assert issued["subscriber"] == subscriber and issued["serial"] != serial


def test_a_users_enrollment_is_proved_by_the_administrators_certificate(
    api: int, home: Home, kinko: Kinko, admin
) -> None:
    # A user of the same customer holds a certificate too: it is no administrator's proof.
    user = kinko.enroll_user("C0001", "利用者 一郎", admin[0])
    user_serial = kinko.acquire(user.code, make_csr()).record.serial
    before = row_counts(home)
    body = {"customer": "C0001", "name": "佐藤 花子", "by": admin[0]}
    for certificate, message in [
        (None, "client certificate"),
        (pem_of(home, user_serial), "not an administrator"),
        (forged_like(home, admin[1]), "not issued by this CA"),
    ]:
        status, problem, _ = call(api, "POST", "/v1/enrollments", body, certificate=certificate)
        assert status == 403 and message in problem["detail"], problem
    assert row_counts(home) == before
    status, enrolled, _ = call(api, "POST", "/v1/enrollments", body, certificate=pem_of(home, admin[1]))
    assert status == 201, enrolled
    added = [e for e in home.store.ledger_events() if e.action == "subscriber.added"][-1]
    assert json.loads(added.details)["on_behalf_of"] == admin[0]


def test_an_enrollment_may_record_the_user_s_e_mail_for_the_subject_alt_name(api: int, home: Home, admin) -> None:
    presented = pem_of(home, admin[1])
    before = row_counts(home)
    for email, message in [(42, "field 'email' must be a string"), ("佐藤@example.jp", "is not ASCII")]:
        body = {"customer": "C0001", "name": "佐藤 花子", "email": email}
        status, problem, _ = call(api, "POST", "/v1/enrollments", body, certificate=presented)
        assert status == 400 and message in problem["detail"], problem
    assert row_counts(home) == before
    body = {"customer": "C0001", "name": "佐藤 花子", "email": "sato@example.co.jp"}
    status, enrolled, _ = call(api, "POST", "/v1/enrollments", body, certificate=presented)
    assert status == 201, enrolled
    status, issued, _ = call(api, "POST", "/v1/acquire", {"code": enrolled["code"], "csr": make_csr().decode()})
    assert status == 201, issued
    names = x509.load_pem_x509_certificate(issued["pem"].encode()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert list(names.value) == [x509.RFC822Name("sato@example.co.jp")]


def _tls_material(directory: Path) -> dict[str, Path]:
    """A test CA, a server certificate for 127.0.0.1 and a front end's client certificate, as files."""
    import ipaddress

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    now = dt.datetime.now(dt.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, text)])

    def certificate(subject: str, key, issuer_key, issuer: str, *, ca: bool, extra=()) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .serial_number(x509.random_serial_number())
            .public_key(key.public_key())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        for extension in extra:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = certificate("Test CA", ca_key, ca_key, "Test CA", ca=True)
    server = certificate(
        "127.0.0.1",
        server_key,
        ca_key,
        "Test CA",
        ca=False,
        extra=[x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])],
    )
    client = certificate("login front end", client_key, ca_key, "Test CA", ca=False)
    files: dict[str, Path] = {}
    for label, item in (("ca", ca), ("server", server), ("client", client)):
        files[label] = directory / f"{label}.pem"
        files[label].write_bytes(item.public_bytes(Encoding.PEM))
    for label, key in (("server-key", server_key), ("client-key", client_key)):
        files[label] = directory / f"{label}.pem"
        files[label].write_bytes(
            key.private_bytes(Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        files[label].chmod(0o600)
    return files


def _tls_get(port: int, context, path: str) -> int:
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    connection.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
    return connection.getresponse().status


def test_api_serves_tls_and_can_require_the_front_ends_certificate(home: Home, tmp_path: Path, admin) -> None:
    import ssl

    material = _tls_material(tmp_path)
    trusting = ssl.create_default_context(cafile=str(material["ca"]))
    with_client = ssl.create_default_context(cafile=str(material["ca"]))
    with_client.load_cert_chain(material["client"], material["client-key"])
    status_path = f"/v1/certificates/{admin[1]}/status"
    with serving(
        home, tmp_path, "--tls-cert", str(material["server"]), "--tls-key", str(material["server-key"])
    ) as port:
        assert _tls_get(port, trusting, status_path) == 200
        with pytest.raises((http.client.HTTPException, ConnectionError)):  # plain HTTP gets no answer
            call(port, "GET", status_path)
    with serving(
        home,
        tmp_path,
        *("--tls-cert", str(material["server"]), "--tls-key", str(material["server-key"])),
        *("--tls-client-ca", str(material["ca"])),
    ) as port:
        assert _tls_get(port, with_client, status_path) == 200
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _tls_get(port, trusting, status_path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tls-cert", "{server}"], "--tls-cert and --tls-key go together"),
        (["--tls-client-ca", "{ca}"], "--tls-client-ca needs --tls-cert and --tls-key"),
        (["--tls-cert", "{server}", "--tls-key", "{client-key}"], "cannot use the TLS files"),
        (["--tls-cert", "{server}", "--tls-key", "{open-key}"], "group and others may read it"),
    ],
)
def test_api_serve_refuses_bad_tls_options(home: Home, tmp_path: Path, args: list[str], message: str) -> None:
    material = _tls_material(tmp_path)
    material["open-key"] = tmp_path / "open-key.pem"
    material["open-key"].write_bytes(material["server-key"].read_bytes())
    material["open-key"].chmod(0o644)
    token = tmp_path / "api.token"
    token.write_text(TOKEN)
    token.chmod(0o600)
    token.chmod(0o600)
    text = home.config_file.read_text(encoding="utf-8").replace('token_file = ""', f'token_file = "{token}"')
    home.config_file.write_text(text, encoding="utf-8")
    filled = [a.format(**{k: str(v) for k, v in material.items()}) for a in args]
    result = run_kinko("--home", home.path, "api", "serve", "--port", str(free_port()), *filled)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("kinko: error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1


def test_wrong_codes_lock_out_the_guessing_client_not_the_holder(api: int, home: Home, kinko: Kinko) -> None:
    kinko.add_customer("C0001", "株式会社テスト")
    enrolled = kinko.enroll_administrator("C0001", "山田 太郎")
    other = kinko.enroll_administrator("C0001", "佐藤 花子")
    wrong = enrolled.code[:-1] + ("X" if enrolled.code[-1] != "X" else "Y")
    attacker, holder = "203.0.113.7", "198.51.100.20"
    for _ in range(5):
        status, problem, _ = call(
            api, "POST", "/v1/acquire", {"code": wrong, "csr": "x"}, forwarded_for=f"{holder}, {attacker}"
        )
        assert status == 403 and "not valid" in problem["detail"], problem
    # Locked: one reply whatever the code (right, wrong, of another holder, of no enrollment).
    replies = set()
    for code in (enrolled.code, wrong, other.code, "ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ", "garbage"):
        status, problem, _ = call(
            api, "POST", "/v1/acquire", {"code": code, "csr": make_csr().decode()}, forwarded_for=attacker
        )
        replies.add((status, problem["detail"]))
    assert len(replies) == 1 and next(iter(replies))[1].startswith("too many wrong codes; try again after ")
    # The holder, from its own address, is not locked out by the attacker's guesses.
    status, issued, _ = call(
        api, "POST", "/v1/acquire", {"code": enrolled.code, "csr": make_csr().decode()}, forwarded_for=holder
    )
    assert status == 201, issued


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversized_body_is_drained_so_the_413_arrives(api: int, chunked: bool) -> None:
    # As for the responder: the rest of the body is read first, so no reset loses the 413, nor
    # a refusal made before the body was read at all.
    token = b"Authorization: Bearer %s\r\n" % TOKEN.encode()
    assert send_paced_body(api, 300 * 1024, chunked, "/v1/acquire", token) == b"413"
    assert send_paced_body(api, 300 * 1024, chunked, "/v1/acquire") == b"401"


def test_a_relative_token_file_is_the_home_s(home: Home, tmp_path: Path, admin) -> None:
    """`token_file = "api-token"` once named a file in whatever directory `api serve` started in."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with serving(home, tmp_path, token_name="api-token", cwd=elsewhere) as port:
        status, body, _ = call(port, "GET", f"/v1/certificates/{admin[1]}/status")
        assert status == 200, body


def test_the_enrollment_page_is_served_without_the_token_and_nothing_else_is(api: int) -> None:
    import http.client

    def request(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", api, timeout=10)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    status, headers, body = request("GET", "/enroll/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert "電子証明書の取得" in body.decode("utf-8")
    assert "script-src 'self'" in headers["content-security-policy"] and headers["x-content-type-options"] == "nosniff"
    status, headers, body = request("GET", "/enroll/enroll.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript") and b"pkcs8" in body
    status, headers, body = request("HEAD", "/enroll/enroll.css")
    assert status == 200 and body == b"" and int(headers["content-length"]) == 0
    status, headers, _ = request("GET", "/enroll")
    assert status == 308 and headers["location"] == "/enroll/"
    for path in ("/enroll/../kinko.toml", "/enroll/keys", "/enroll/src/enroll.js", "/enroll/package.json"):
        assert request("GET", path)[0] == 404, path
    assert request("POST", "/enroll/")[0] == 405
    # The page is public; the API behind it is not.
    assert request("GET", "/v1/certificates/AB/status")[0] == 401


def test_a_body_that_is_not_declared_json_is_refused(api: int, home: Home) -> None:
    """A text/plain or form POST needs no CORS preflight: refusing it keeps other sites from
    sending the front end's calls from a holder's browser."""
    import http.client

    before = row_counts(home)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        connection = http.client.HTTPConnection("127.0.0.1", api, timeout=10)
        try:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            if content_type:
                headers["Content-Type"] = content_type
            connection.request("POST", "/v1/acquire", body=b'{"code": "AAAA", "csr": "x"}', headers=headers)
            response = connection.getresponse()
            assert response.status == 415, content_type
            assert json.loads(response.read())["detail"] == "the request body must be application/json"
        finally:
            connection.close()
    assert row_counts(home) == before
