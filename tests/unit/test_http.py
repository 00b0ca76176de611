"""kinko.ca.http on its own: problem documents, the listen check, and who may import it."""

from __future__ import annotations

import ast
import asyncio
import json
import socket
import subprocess
import sys

import pytest

from kinko.ca import http as kinko_http
from kinko.ca.errors import ConfigError
from kinko.ca.http import Incoming, check_port, problem
from tests.conftest import ROOT, free_port


@pytest.mark.parametrize(
    ("status", "title"),
    [(400, "Bad Request"), (403, "Forbidden"), (408, "Request Timeout"), (413, "Content Too Large")],
)
def test_problem_document_has_the_rfc_9457_members(status: int, title: str) -> None:
    document = json.loads(problem(status, "no customer 株式会社テスト"))
    assert document == {"type": "about:blank", "title": title, "status": status, "detail": "no customer 株式会社テスト"}


def test_problem_document_is_utf8_not_escaped() -> None:
    # Operators read these in logs and curl output: Japanese names stay readable.
    assert "株式会社テスト".encode() in problem(404, "no customer 株式会社テスト")


@pytest.mark.parametrize("status", [200, 302, 399, 600])
def test_problem_needs_an_error_status(status: int) -> None:
    with pytest.raises(ValueError, match="error status"):
        problem(status, "fine")


def test_check_port_refuses_a_port_in_use(taken_port: int) -> None:
    with pytest.raises(ConfigError) as caught:
        check_port("127.0.0.1", taken_port)
    assert str(caught.value) == f"127.0.0.1:{taken_port} is already in use; choose another --port"


def test_check_port_accepts_a_free_port_and_leaves_it_free() -> None:
    port = free_port()
    check_port("127.0.0.1", port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # the probe held nothing


def test_check_port_accepts_a_port_with_connections_in_time_wait() -> None:
    # A restarted server must not be refused because its last connections linger in TIME_WAIT.
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first, so its end goes to TIME_WAIT
        client.recv(1)
        client.close()
    check_port("127.0.0.1", port)


def test_check_port_reports_an_address_it_cannot_use() -> None:
    # 192.0.2.1 (TEST-NET-1) is no address of this machine.
    with pytest.raises(ConfigError, match=r"^cannot listen on 192\.0\.2\.1:\d+: "):
        check_port("192.0.2.1", free_port())


FORBIDDEN_IN_OCSP = ("kinko.ca.lifecycle", "kinko.ca.api", "kinko.cli")


def test_ocsp_never_imports_the_lifecycle_the_api_or_the_cli_directly() -> None:
    for path in sorted((ROOT / "ocsp").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            bad = [n for n in names if n.startswith(FORBIDDEN_IN_OCSP)]
            assert not bad, f"{path.name}:{node.lineno} imports {bad}"


def test_ocsp_and_the_http_layer_load_without_the_lifecycle_the_api_or_the_cli() -> None:
    code = (
        "import sys, kinko.ca.http, kinko.ocsp.app, kinko.ocsp.presign, kinko.ocsp.server, kinko.ocsp.source\n"
        f"print([m for m in sys.modules if m.startswith({FORBIDDEN_IN_OCSP!r})])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"


def _trickle(pause: float) -> tuple[list[int], object]:
    """An ASGI receive whose client sends one byte after another, `pause` seconds apart."""
    calls: list[int] = []

    async def receive() -> dict[str, object]:
        calls.append(1)
        await asyncio.sleep(pause)
        return {"type": "http.request", "body": b"x", "more_body": True}

    return calls, receive


def test_the_drain_stops_at_its_byte_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kinko_http, "DRAIN_LIMIT", 1000)
    calls, receive = _trickle(0)
    scope = {"headers": [(b"transfer-encoding", b"chunked")]}
    asyncio.run(Incoming(scope, receive).drain())  # type: ignore[arg-type]
    assert len(calls) == 1001


def test_a_trickling_client_cannot_hold_the_drain_open(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each byte comes before the idle pause ends, so only the drain's overall deadline stops it.
    monkeypatch.setattr(kinko_http, "BODY_TIMEOUT", 0.3)
    calls, receive = _trickle(0.05)
    scope = {"headers": [(b"content-length", b"100000")]}
    asyncio.run(Incoming(scope, receive).drain())  # type: ignore[arg-type]
    assert 2 <= len(calls) <= 8


def test_nothing_is_drained_without_a_body_or_past_the_limit() -> None:
    for headers in ([], [(b"content-length", b"%d" % (kinko_http.DRAIN_LIMIT + 1))]):
        calls, receive = _trickle(0)
        asyncio.run(Incoming({"headers": headers}, receive).drain())  # type: ignore[arg-type]
        assert calls == []
