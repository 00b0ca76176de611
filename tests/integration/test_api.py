"""The login front end's API over real HTTP: `kinko api serve` as a process on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509

from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from tests.conftest import ROOT, free_port, make_csr, row_counts, run_kinko

TOKEN = "s3cret-token-for-the-login-front-end"


@pytest.fixture
def api(home: Home, tmp_path: Path):
    token_file = tmp_path / "api.token"
    token_file.write_text(TOKEN + "\n")
    text = home.config_file.read_text(encoding="utf-8").replace('token_file = ""', f'token_file = "{token_file}"')
    home.config_file.write_text(text, encoding="utf-8")
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "kinko.cli", "--home", str(home.path), "api", "serve"),
            *("--port", str(port), "--workers", "1"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/")
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(process.stderr.read().decode()) from None
            time.sleep(0.1)
    yield port
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=10)


def call(port: int, method: str, path: str, body: object = None, token: str | None = TOKEN) -> tuple[int, dict, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
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


def test_enrollment_and_acquisition(api: int, home: Home, admin) -> None:
    status, enrolled, _ = call(
        api, "POST", "/v1/enrollments", {"customer": "C0001", "name": "佐藤 花子", "by": "C0001-A1"}
    )
    assert status == 201 and enrolled["role"] == "user" and enrolled["code"]
    csr = make_csr().decode()
    status, issued, _ = call(api, "POST", "/v1/acquire", {"code": enrolled["code"], "csr": csr})
    assert status == 201, issued
    certificate = x509.load_pem_x509_certificate(issued["pem"].encode())
    assert certificate.subject.get_attributes_for_oid(x509.NameOID.SERIAL_NUMBER)[0].value == enrolled["subscriber_id"]
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
        ("POST", "/v1/renew", {"serial": admin[1], "csr": make_csr().decode()}, 403, "renewal of"),
        ("POST", "/v1/reacquire", {"subscriber": admin[0], "csr": make_csr().decode()}, 403, "renew it instead"),
        ("POST", "/v1/enrollments", {"customer": "C0001", "name": "x", "by": "nobody"}, 403, "not an administrator"),
        ("POST", "/v1/acquire", {"code": "ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ", "csr": "x"}, 403, "not valid"),
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
