"""nginx in front of the OCSP responder, with the shipped config/nginx/kinko-ocsp.conf: one client's
idle connections stay in nginx (the responder sees only a few kept-alive ones), one client gets 429
past 16 requests in flight while others are answered, and the responder keeps its on-demand budget
per client by the X-Forwarded-For of its trusted front end only.

Clients come from different loopback addresses (127.0.0.2, 127.0.0.3: all of 127/8 is loopback),
so that nginx tells them apart. nginx is Debian's /usr/sbin/nginx, in the foreground.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from kinko.ca.config import set_value
from kinko.ca.errors import ConfigError
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from kinko.ocsp.app import ResponderApp
from tests.conftest import ROOT, RunningResponder, free_port, make_csr, wait_listening
from tests.interop.tools import tool

SHIPPED = ROOT / "config" / "nginx" / "kinko-ocsp.conf"
ATTACKER, CLIENT = "127.0.0.2", "127.0.0.3"
IDLE = 1000
PER_CLIENT = 16  # limit_conn in the shipped config

MAIN_CONF = """\
{user}worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/kinko-ocsp.conf;
}}
"""


@dataclass
class Front:
    port: int
    responder_port: int
    request: bytes  # an OCSP request for a good certificate


@contextlib.contextmanager
def nginx(directory: Path, port: int, responder_port: int) -> Iterator[None]:
    """nginx with the shipped server block, listening on 127.0.0.1:port, passing to the responder."""
    directory.mkdir()
    shipped = SHIPPED.read_text(encoding="utf-8")
    assert "listen 80;" in shipped and "server 127.0.0.1:8081;" in shipped, "the shipped config changed"
    rendered = shipped.replace("listen 80;", f"listen 127.0.0.1:{port};").replace(
        "server 127.0.0.1:8081;", f"server 127.0.0.1:{responder_port};"
    )
    (directory / "kinko-ocsp.conf").write_text(rendered, encoding="utf-8")
    conf = directory / "nginx.conf"
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(MAIN_CONF.format(user=user, dir=directory), encoding="utf-8")
    binary = tool("nginx")
    checked = subprocess.run([binary, "-t", "-p", directory, "-c", conf], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(
        [binary, "-p", directory, "-c", conf, "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_listening(port, process, "nginx")
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture
def front(home: Home, kinko: Kinko, tmp_path: Path) -> Iterator[Front]:
    text = set_value(home.config_file.read_text(encoding="utf-8"), "trusted_proxies", ["127.0.0.1"])
    home.config_file.write_text(text, encoding="utf-8")
    issued = kinko.issue(make_csr(), name="山田 太郎", organization="株式会社テスト")
    certificate = x509.load_pem_x509_certificate(issued.pem.encode("ascii"))
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, home.ca_certificate("issuing"), hashes.SHA1())  # noqa: S303 - RFC 5019
    request = builder.build().public_bytes(serialization.Encoding.DER)
    responder = RunningResponder(home)
    port = free_port()
    try:
        with nginx(tmp_path / "nginx", port, responder.port):
            yield Front(port, responder.port, request)
    finally:
        responder.stop()


def connect_from(source: str, port: int) -> socket.socket:
    conn = socket.socket()
    conn.bind((source, 0))
    conn.connect(("127.0.0.1", port))
    return conn


def ocsp_post(source: str, front: Front) -> tuple[int, bytes]:
    """One OCSP POST from `source` through nginx: (status, body)."""
    with connect_from(source, front.port) as conn:
        conn.settimeout(10)
        conn.sendall(
            b"POST / HTTP/1.1\r\nHost: ocsp\r\nContent-Type: application/ocsp-request\r\n"
            + f"Content-Length: {len(front.request)}\r\nConnection: close\r\n\r\n".encode()
            + front.request
        )
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def established_to(port: int) -> int:
    """TCP connections established to 127.0.0.1:port (what the responder holds)."""
    out = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( dport = :{port} )"], capture_output=True, text=True, check=True
    ).stdout
    return len([line for line in out.splitlines() if line.strip()])


def test_idle_connections_stay_in_nginx_and_a_real_client_is_answered(front: Front) -> None:
    idle = [connect_from(ATTACKER, front.port) for _ in range(IDLE)]
    try:
        status, body = ocsp_post(CLIENT, front)
        assert status == 200
        answer = ocsp.load_der_ocsp_response(body)
        assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
        # The responder holds only nginx's kept-alive upstream connections, not the thousand.
        assert established_to(front.responder_port) <= 16
    finally:
        for conn in idle:
            conn.close()


def test_one_client_gets_429_past_its_requests_in_flight_and_others_are_answered(front: Front) -> None:
    held = []
    try:
        for _ in range(PER_CLIENT + 4):  # requests whose bodies never finish: in flight in nginx
            conn = connect_from(ATTACKER, front.port)
            conn.sendall(b"POST / HTTP/1.1\r\nHost: ocsp\r\nContent-Length: 200\r\n\r\n" + b"0" * 10)
            held.append(conn)
        refused: list[bytes] = []
        waiting = list(held)
        deadline = time.monotonic() + 4  # under client_body_timeout: the 16 in flight stay silent
        while len(refused) < 4 and time.monotonic() < deadline:
            ready, _, _ = select.select(waiting, [], [], 0.2)
            for conn in ready:
                refused.append(conn.recv(4096))
                waiting.remove(conn)
        assert len(refused) == 4 and all(r.startswith(b"HTTP/1.1 429") for r in refused), refused
        status, _ = ocsp_post(CLIENT, front)
        assert status == 200
    finally:
        for conn in held:
            conn.close()


def scope(peer: str, forwarded: str | None = None) -> SimpleNamespace:
    headers = {"x-forwarded-for": forwarded} if forwarded is not None else {}
    return SimpleNamespace(client=f"{peer}:40000", headers=headers)


def test_the_budget_follows_x_forwarded_for_from_the_trusted_front_end_only(tmp_path: Path) -> None:
    app = ResponderApp(source=None, public_dir=tmp_path, trusted_proxies=("127.0.0.1",))  # type: ignore[arg-type]
    assert app.client_of(scope("127.0.0.1", "203.0.113.7")) == "203.0.113.7"
    # nginx replaces the header; were a forged list passed on, only the last entry counts.
    assert app.client_of(scope("127.0.0.1", "10.9.9.9, 203.0.113.7")) == "203.0.113.7"
    assert app.client_of(scope("127.0.0.1")) == "127.0.0.1"
    # Anyone else's header is a claim: its own address is what counts.
    assert app.client_of(scope("198.51.100.4", "203.0.113.7")) == "198.51.100.4"
    # A forwarded value that is not an address is not a client: the front end's own budget.
    assert app.client_of(scope("127.0.0.1", "budget-42")) == "127.0.0.1"
    # IPv6 peers arrive bracketed; the list names them plainly.
    v6 = ResponderApp(source=None, public_dir=tmp_path, trusted_proxies=("::1",))  # type: ignore[arg-type]
    assert (
        v6.client_of(SimpleNamespace(client="[::1]:40000", headers={"x-forwarded-for": "2001:db8::7"})) == "2001:db8::7"
    )


def test_a_bad_trusted_proxy_is_one_line(home: Home) -> None:
    text = set_value(home.config_file.read_text(encoding="utf-8"), "trusted_proxies", ["nginx.local"])
    home.config_file.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^ocsp.trusted_proxies: 'nginx.local' is not an IP address$"):
        _ = Home(home.path).config
