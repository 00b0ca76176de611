"""kinko.ca.http under both services, as real processes on 127.0.0.1.

Issue 21: Granian binds with SO_REUSEPORT, so without a check a second server next to a
first one would start and silently share its port; next to a plain listener it crashed with
a Rust backtrace. Now `ocsp serve` and `api serve` on a port in use fail with one line, exit 1.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kinko.ca.home import Home
from tests.conftest import ROOT, RunningResponder, send_paced_body

START_LIMIT = 30  # seconds; a server that wrongly starts is killed, and the test fails


def with_api_token(home: Home, tmp_path: Path) -> None:
    token_file = tmp_path / "api.token"
    token_file.write_text("s3cret-token-for-the-login-front-end\n")
    token_file.chmod(0o600)
    text = home.config_file.read_text(encoding="utf-8").replace('token_file = ""', f'token_file = "{token_file}"')
    home.config_file.write_text(text, encoding="utf-8")


def run_server(home: Home, *args: str) -> tuple[int, str, str]:
    """Runs `kinko --home H ARGS` in its own session; kills the whole group if it outlives START_LIMIT."""
    process = subprocess.Popen(
        [sys.executable, "-m", "kinko.cli", "--home", str(home.path), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=START_LIMIT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the workers too, or they would keep the port
        stdout, stderr = process.communicate(timeout=10)
        pytest.fail(f"`kinko {' '.join(args)}` started on a port in use and served for {START_LIMIT} s: {stderr}")
    return process.returncode, stdout, stderr


@pytest.mark.parametrize("command", ["ocsp", "api"])
def test_serving_on_a_port_in_use_fails_with_one_line(
    home: Home, tmp_path: Path, taken_port: int, command: str
) -> None:
    if command == "api":
        with_api_token(home, tmp_path)
    code, stdout, stderr = run_server(home, command, "serve", "--port", str(taken_port), "--workers", "1")
    expected = f"kinko: error: 127.0.0.1:{taken_port} is already in use; choose another --port"
    assert code == 1, stderr
    assert stdout == ""
    # The port is checked before the serving banner: the refusal is the only line.
    assert stderr.splitlines() == [expected], stderr


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("DELETE", "/", {}, 405),
        ("GET", "/ca/no-such-ca.cer", {}, 404),
        ("POST", "/", {"Content-Length": str(1 << 20)}, 413),
    ],
)
def test_responder_refusals_are_problem_documents(
    responder: RunningResponder, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", responder.port, timeout=10)
    connection.putrequest(method, path)
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()  # the 413 comes from Content-Length alone, before any body
    reply = connection.getresponse()
    document = json.loads(reply.read())
    assert (reply.status, reply.getheader("Content-Type")) == (status, "application/problem+json")
    assert document["status"] == status and document["type"] == "about:blank" and document["detail"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversized_body_is_drained_so_the_413_arrives(responder: RunningResponder, chunked: bool) -> None:
    # A client still sending when the server closes gets a TCP reset and loses the 413, unless
    # the server reads the rest first (nginx's lingering close).
    assert send_paced_body(responder.port, 300 * 1024, chunked) == b"413"
    assert send_paced_body(responder.port, 70 * 1024, chunked) == b"413"
