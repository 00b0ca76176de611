"""nginx as the bank's login front end: mutual TLS, with every login checked by OCSP against
`kinko ocsp serve`.

Each test starts the real responder (the `responder` fixture) and a real nginx (Debian's
/usr/sbin/nginx) as a non-daemon child on a free 127.0.0.1 port, then logs in with curl and a
client certificate Kinko issued. The TLS server certificate is the test's own throwaway CA:
the server side is not Kinko's business. nginx and curl must be on PATH
(`apt-get install nginx curl`).

What nginx does (src/event/ngx_event_openssl_stapling.c and ngx_http_request.c, 1.22.1):

* `ssl_ocsp on` asks the responder about every certificate of the verified chain except the
  root: the client certificate (CertID under the issuing CA), then the issuing CA (CertID under
  the root). `ssl_ocsp leaf` asks about the client certificate only.
* A refused status does not fail the handshake: nginx answers the first request with 400 "The
  SSL certificate error" and logs "client SSL certificate verify error: certificate revoked".
* `ssl_ocsp_cache shared:...` keeps each answer until the response's nextUpdate
  (ngx_ssl_ocsp_verify sets `ctx->valid` from nextUpdate; ngx_ssl_ocsp_cache_store stores it;
  ngx_ssl_ocsp_cache_lookup serves it while `node->valid > ngx_time()`). Kinko's responses
  are good for days, so a revocation would not reach a cached nginx for days. The login tests
  therefore run with `ssl_ocsp_cache off` (nginx's default: one OCSP request per full
  handshake), and one test documents the cached behaviour.

Debian builds nginx --with-debug, so the error log is kept at `debug` level: its
"ssl ocsp response, <status>" lines show which certificates nginx actually asked about.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kinko.ca.clock import FixedClock
from kinko.ca.hierarchy import InitOptions, create_home
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from kinko.ca.officers import current_login
from kinko.ca.serials import format_serial
from tests.conftest import ORG, free_port, make_csr, make_key, write_key
from tests.interop.tools import tool

HOLDER = "山田 太郎"
CUSTOMER = "株式会社テスト"
TIMEOUT = 30  # seconds any one tool run may take
START_TIMEOUT = 10  # seconds nginx may take to accept connections
STOP_TIMEOUT = 10
WELCOME = "welcome\n"
CERT_ERROR_PAGE = "The SSL certificate error"
REFUSED_LOG = "client SSL certificate verify error: "
OCSP_MODES = ("on", "leaf")
OCSP_DEBUG = re.compile(r"ssl ocsp (validate|response|cache|status |connect )")
LOG_LINE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[")  # debug entries may span several lines
# README: "each worker notices a commit within 50 ms". Until then a worker may still serve the
# answer it cached before the change, so a login right after a change waits twice that.
PROPAGATION = 0.1


# ---------------------------------------------------------------- helpers


def nginx_has_debug_log() -> bool:
    """Whether this nginx can log at debug level (Debian's is built --with-debug)."""
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if nginx is None:
        return False
    result = subprocess.run([nginx, "-V"], capture_output=True, text=True, timeout=TIMEOUT, check=False)
    return "--with-debug" in result.stdout + result.stderr


DEBUG_LOG = nginx_has_debug_log()


def pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def throwaway_ca(common_name: str) -> tuple[x509.Certificate, Any]:
    """A self-signed CA certificate and its key, valid for a day around now."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def leaf(
    ca_cert: x509.Certificate, ca_key: Any, key: Any, common_name: str, usage: x509.ObjectIdentifier, *, san: bool
) -> x509.Certificate:
    """An end-entity certificate from a throwaway CA: a TLS server (with SANs) or a TLS client."""
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256())


@dataclass(frozen=True)
class ServerTLS:
    ca_file: Path
    cert_file: Path
    key_file: Path


def make_server_tls(directory: Path) -> ServerTLS:
    """The front end's own TLS certificate for 127.0.0.1 and localhost, from a throwaway CA."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = throwaway_ca("Kinko test TLS server CA")
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = leaf(ca_cert, ca_key, key, "localhost", ExtendedKeyUsageOID.SERVER_AUTH, san=True)
    (directory / "server-ca.pem").write_bytes(pem(ca_cert))
    (directory / "server.pem").write_bytes(pem(certificate))
    write_key(directory / "server.key", key)
    return ServerTLS(directory / "server-ca.pem", directory / "server.pem", directory / "server.key")


@dataclass(frozen=True)
class Client:
    """A client certificate and its key on disk, as a customer's browser would hold them."""

    cert_file: Path
    key_file: Path
    serial: str


def issue_client(kinko: Kinko, directory: Path, stem: str) -> Client:
    key = make_key()
    issued = kinko.issue(make_csr(key), name=HOLDER, organization=CUSTOMER)
    directory.mkdir(parents=True, exist_ok=True)
    cert_file = directory / f"{stem}.pem"
    cert_file.write_text(issued.pem, encoding="ascii")
    return Client(cert_file, write_key(directory / f"{stem}.key", key), issued.record.serial)


def client_ca_chain(home: Home, out: Path) -> Path:
    """What nginx trusts for client certificates: the issuing CA and the root, PEM."""
    ca_dir = home.public_dir / "ca"
    out.write_bytes((ca_dir / "issuing.pem").read_bytes() + (ca_dir / "root.pem").read_bytes())
    return out


NGINX_CONF = """\
{user}worker_processes 1;
pid {dir}/nginx.pid;
lock_file {dir}/nginx.lock;
error_log {dir}/error.log {log_level};

events {{
    worker_connections 64;
}}

http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    default_type text/plain;

    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;

        ssl_certificate {server_cert};
        ssl_certificate_key {server_key};
        # Every login is a full handshake, so every login is checked by OCSP.
        ssl_session_cache off;
        ssl_session_tickets off;

        ssl_verify_client on;
        ssl_client_certificate {client_ca};
        ssl_verify_depth 2;
        ssl_ocsp {ocsp_mode};
        ssl_ocsp_responder {responder_url};
        ssl_ocsp_cache {ocsp_cache};

        location / {{
            return 200 "welcome\\n";
        }}
    }}
}}
"""


class Nginx:
    """nginx (master + one worker) in the foreground, in its own process group."""

    def __init__(
        self,
        directory: Path,
        server: ServerTLS,
        client_ca: Path,
        responder_url: str,
        *,
        ocsp_mode: str = "on",
        ocsp_cache: str = "off",
    ) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}/"
        self.server = server
        self.error_log = directory / "error.log"
        self.conf = directory / "nginx.conf"
        self.conf.write_text(
            NGINX_CONF.format(
                # Workers run as `nobody` by default and could not read the test's 0700 tmp dirs.
                user="user root;\n" if os.geteuid() == 0 else "",
                dir=directory,
                log_level="debug" if DEBUG_LOG else "info",
                port=self.port,
                server_cert=server.cert_file,
                server_key=server.key_file,
                client_ca=client_ca,
                ocsp_mode=ocsp_mode,
                responder_url=responder_url,
                ocsp_cache=ocsp_cache,
            ),
            encoding="utf-8",
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        nginx = tool("nginx")
        test = subprocess.run(
            [nginx, "-t", "-p", str(self.directory), "-e", str(self.error_log), "-c", str(self.conf)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert test.returncode == 0, f"nginx -t refused the configuration:\n{test.stderr}\n{self.conf.read_text()}"
        self.process = subprocess.Popen(
            [
                nginx,
                "-p",
                str(self.directory),
                "-e",
                str(self.error_log),
                "-c",
                str(self.conf),
                "-g",
                "daemon off; master_process on;",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                pytest.fail(f"nginx exited with {self.process.returncode}: {stderr}\n{self.log_excerpt()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"nginx did not accept connections on 127.0.0.1:{self.port} within {START_TIMEOUT} s")

    def stop(self) -> None:
        """SIGQUIT to the process group (a graceful stop of master and worker), SIGKILL after 10 s."""
        process = self.process
        if process is None:
            return
        self.process = None
        try:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGQUIT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=STOP_TIMEOUT)
            os.killpg(process.pid, signal.SIGKILL)  # a worker the master left behind, if any
        except ProcessLookupError:
            pass  # the whole group is gone
        process.wait(timeout=STOP_TIMEOUT)
        if process.stderr:
            process.stderr.close()

    def log_size(self) -> int:
        return self.error_log.stat().st_size if self.error_log.exists() else 0

    def log_since(self, offset: int) -> str:
        if not self.error_log.exists():
            return ""
        with open(self.error_log, "rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", "replace")

    def log_excerpt(self, offset: int = 0, lines: int = 40) -> str:
        """The error log's notable lines: everything but debug, plus nginx's OCSP steps and results."""
        kept = [
            line
            for line in self.log_since(offset).splitlines()
            if LOG_LINE.match(line) and ("[debug]" not in line or OCSP_DEBUG.search(line))
        ]
        return "nginx error.log (excerpt):\n" + "\n".join(kept[-lines:])


@dataclass(frozen=True)
class Login:
    status: int  # 0 when curl got no HTTP answer (the handshake failed)
    body: str
    curl_exit: int
    curl_stderr: str
    log: str  # what nginx logged for this login

    @property
    def refused(self) -> bool:
        return self.status != 200

    def ocsp_trail(self) -> list[str]:
        """The statuses nginx got from the responder, in order (debug log only)."""
        return re.findall(r"ssl ocsp response, (\w+), \d+", self.log)

    def describe(self) -> str:
        return f"HTTP {self.status}, curl exit {self.curl_exit} {self.curl_stderr.strip()!r}, body {self.body[:200]!r}"


def login(nginx: Nginx, client: Client) -> Login:
    """One login with curl: a fresh TLS handshake with the client certificate."""
    offset = nginx.log_size()
    body_file = nginx.directory / "curl-body"
    body_file.unlink(missing_ok=True)
    result = subprocess.run(
        [
            tool("curl"),
            "-sS",
            "--noproxy",
            "*",
            "--max-time",
            "15",
            "--cacert",
            str(nginx.server.ca_file),
            "--cert",
            str(client.cert_file),
            "--key",
            str(client.key_file),
            "-o",
            str(body_file),
            "-w",
            "%{http_code}",
            nginx.url,
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    body = body_file.read_text(encoding="utf-8", errors="replace") if body_file.exists() else ""
    status = int(result.stdout.strip() or 0)
    # nginx writes a request's log lines before it sends the response; give a slow disk a moment.
    time.sleep(0.05)
    return Login(status, body, result.returncode, result.stderr, nginx.log_since(offset))


def openssl_ocsp(responder_url: str, issuer: Path, cert: Path, trusted: Path) -> str:
    """The responder's answer as `openssl ocsp` sees it (no nonce, like nginx)."""
    result = subprocess.run(
        [
            tool("openssl"),
            "ocsp",
            "-no_nonce",
            "-url",
            responder_url,
            "-issuer",
            str(issuer),
            "-cert",
            str(cert),
            "-CAfile",
            str(trusted),
            "-resp_text",
            "-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    command = f"$ openssl ocsp -issuer {issuer.name} -cert {cert.name} (exit {result.returncode})"
    return f"{command}\n{result.stdout}{result.stderr}"


def ocsp_status(responder_url: str, cert_file: Path, issuer_file: Path) -> ocsp.OCSPResponse:
    """Asks the responder directly, with nginx's CertID (SHA-1) and, like nginx, no nonce."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    issuer = x509.load_pem_x509_certificate(issuer_file.read_bytes())
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()  # noqa: S303 - RFC 5019
    http = urllib.request.Request(  # noqa: S310 - loopback responder
        responder_url,
        data=request.public_bytes(serialization.Encoding.DER),
        headers={"Content-Type": "application/ocsp-request"},
    )
    with urllib.request.urlopen(http, timeout=10) as reply:  # noqa: S310 - loopback responder
        return ocsp.load_der_ocsp_response(reply.read())


# ---------------------------------------------------------------- fixtures


@dataclass
class FrontEnd:
    """Everything one test needs: the CA, its responder, and a way to start nginx in front of it."""

    home: Home
    kinko: Kinko
    responder_url: str
    directory: Path
    server: ServerTLS
    client_ca: Path
    start: Callable[..., Nginx]

    def diagnose(self, nginx: Nginx, client: Client, offset: int = 0) -> str:
        """nginx's log and the responder's own answers for the client and for the issuing CA."""
        ca_dir = self.home.public_dir / "ca"
        return "\n".join(
            [
                nginx.log_excerpt(offset),
                openssl_ocsp(self.responder_url, ca_dir / "issuing.pem", client.cert_file, self.client_ca),
                openssl_ocsp(self.responder_url, ca_dir / "root.pem", ca_dir / "issuing.pem", self.client_ca),
            ]
        )


@pytest.fixture
def front_end(home: Home, kinko: Kinko, responder: Any, tmp_path: Path) -> Iterator[FrontEnd]:
    started: list[Nginx] = []
    server = make_server_tls(tmp_path / "tls")
    client_ca = client_ca_chain(home, tmp_path / "client-ca.pem")

    def start(name: str = "nginx", **options: str) -> Nginx:
        nginx = Nginx(tmp_path / name, server, client_ca, responder.url, **options)
        started.append(nginx)
        nginx.start()
        return nginx

    yield FrontEnd(home, kinko, responder.url, tmp_path, server, client_ca, start)
    for nginx in started:
        nginx.stop()


def settle() -> None:
    """Waits out the responder's documented propagation delay after a status change."""
    time.sleep(PROPAGATION)


def expect_welcome(front: FrontEnd, nginx: Nginx, client: Client, attempt: Login, ocsp_mode: str) -> None:
    assert attempt.status == 200 and attempt.body == WELCOME, (
        f"a good certificate was not let in: {attempt.describe()}\n{front.diagnose(nginx, client)}"
    )
    if DEBUG_LOG:
        # `on`: the client certificate, then the issuing CA under the root; `leaf`: the client only.
        expected = ["good", "good"] if ocsp_mode == "on" else ["good"]
        assert attempt.ocsp_trail() == expected, f"OCSP answers nginx used: {attempt.ocsp_trail()}\n{attempt.log}"


def expect_refused_as_revoked(front: FrontEnd, nginx: Nginx, client: Client, attempt: Login) -> None:
    assert attempt.refused, (
        f"a revoked or held certificate got in: {attempt.describe()}\n{front.diagnose(nginx, client)}"
    )
    if attempt.status != 0:  # an HTTP answer: nginx's certificate error page, and why in its log
        assert attempt.status == 400 and CERT_ERROR_PAGE in attempt.body, attempt.describe()
        assert REFUSED_LOG + "certificate revoked" in attempt.log, (
            f"nginx refused, but not for revocation: {attempt.describe()}\n{nginx.log_excerpt()}"
        )


# ---------------------------------------------------------------- login, hold, release, revoke


@pytest.mark.parametrize("ocsp_mode", OCSP_MODES)
def test_held_certificate_is_refused_until_released(front_end: FrontEnd, ocsp_mode: str) -> None:
    nginx = front_end.start(ocsp_mode=ocsp_mode)
    client = issue_client(front_end.kinko, front_end.directory / "clients", "customer")

    expect_welcome(front_end, nginx, client, login(nginx, client), ocsp_mode)

    front_end.kinko.hold(client.serial)
    settle()
    held = login(nginx, client)
    expect_refused_as_revoked(front_end, nginx, client, held)
    if DEBUG_LOG:
        assert held.ocsp_trail() == ["revoked"], held.log  # nginx stops at the client certificate

    front_end.kinko.release(client.serial)
    settle()
    expect_welcome(front_end, nginx, client, login(nginx, client), ocsp_mode)


@pytest.mark.parametrize("ocsp_mode", OCSP_MODES)
def test_revoked_certificate_is_refused(front_end: FrontEnd, ocsp_mode: str) -> None:
    nginx = front_end.start(ocsp_mode=ocsp_mode)
    client = issue_client(front_end.kinko, front_end.directory / "clients", "customer")
    other = issue_client(front_end.kinko, front_end.directory / "clients", "other-customer")

    expect_welcome(front_end, nginx, client, login(nginx, client), ocsp_mode)

    front_end.kinko.revoke(client.serial, "key-compromise")
    settle()
    for _ in range(2):  # refused every time, not only on the first try
        expect_refused_as_revoked(front_end, nginx, client, login(nginx, client))
    # Another customer under the same issuing CA is not affected.
    expect_welcome(front_end, nginx, other, login(nginx, other), ocsp_mode)


@pytest.mark.parametrize("ocsp_mode", OCSP_MODES)
def test_revoked_issuing_ca_is_refused_only_when_nginx_checks_the_chain(front_end: FrontEnd, ocsp_mode: str) -> None:
    nginx = front_end.start(ocsp_mode=ocsp_mode)
    client = issue_client(front_end.kinko, front_end.directory / "clients", "customer")
    expect_welcome(front_end, nginx, client, login(nginx, client), ocsp_mode)

    issuing = x509.load_pem_x509_certificate((front_end.home.public_dir / "ca" / "issuing.pem").read_bytes())
    front_end.kinko.revoke(format_serial(issuing.serial_number), "ca-compromise")
    settle()
    attempt = login(nginx, client)
    if ocsp_mode == "on":
        expect_refused_as_revoked(front_end, nginx, client, attempt)
        if DEBUG_LOG:
            assert attempt.ocsp_trail() == ["good", "revoked"], attempt.log
    else:
        # `leaf` never asks about the issuing CA, and the client certificate itself is still good.
        expect_welcome(front_end, nginx, client, attempt, ocsp_mode)


# ---------------------------------------------------------------- certificates of other CAs


@pytest.mark.parametrize("other_ca", ["another Kinko home", "throwaway CA"])
def test_certificate_of_another_ca_is_refused(
    front_end: FrontEnd, other_ca: str, clock: FixedClock, passphrase_file: Path, tmp_path: Path
) -> None:
    nginx = front_end.start()
    if other_ca == "another Kinko home":
        # Same organization, so the same issuer names: only the keys differ.
        other_home = create_home(
            tmp_path / "other-home",
            InitOptions(organization=ORG, passphrase_file=passphrase_file),
            clock,
            current_login(),
        )
        stranger = issue_client(Kinko(other_home, clock=clock), tmp_path / "strangers", "stranger")
    else:
        ca_cert, ca_key = throwaway_ca(f"{ORG} Issuing CA")
        key = make_key()
        certificate = leaf(ca_cert, ca_key, key, HOLDER, ExtendedKeyUsageOID.CLIENT_AUTH, san=False)
        directory = tmp_path / "strangers"
        directory.mkdir()
        (directory / "stranger.pem").write_bytes(pem(certificate))
        stranger = Client(directory / "stranger.pem", write_key(directory / "stranger.key", key), "")

    attempt = login(nginx, stranger)
    assert attempt.refused, f"a certificate of {other_ca} got in: {attempt.describe()}\n{nginx.log_excerpt()}"
    if attempt.status != 0:
        assert attempt.status == 400 and CERT_ERROR_PAGE in attempt.body, attempt.describe()
        assert REFUSED_LOG in attempt.log, nginx.log_excerpt()
        assert "certificate revoked" not in attempt.log  # refused by the chain, before any OCSP
    if DEBUG_LOG:
        assert attempt.ocsp_trail() == [], attempt.log

    # The front end still lets Kinko's own customers in.
    client = issue_client(front_end.kinko, tmp_path / "clients", "customer")
    expect_welcome(front_end, nginx, client, login(nginx, client), "on")


# ---------------------------------------------------------------- nginx's shared OCSP cache


def test_shared_ocsp_cache_keeps_a_revoked_certificate_good_until_next_update(front_end: FrontEnd) -> None:
    """Documents nginx, not Kinko: with `ssl_ocsp_cache shared:...` nginx keeps each OCSP answer
    until its nextUpdate, so a revocation reaches it only when the cached answer expires. The
    bank must run its front ends with `ssl_ocsp_cache off` (the default), or accept that delay."""
    nginx = front_end.start(ocsp_cache="shared:kinko_ocsp:1m")
    client = issue_client(front_end.kinko, front_end.directory / "clients", "customer")
    issuing_file = front_end.home.public_dir / "ca" / "issuing.pem"

    first = login(nginx, client)
    expect_welcome(front_end, nginx, client, first, "on")
    answer = ocsp_status(front_end.responder_url, client.cert_file, issuing_file)
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
    next_update = answer.next_update_utc
    assert next_update is not None
    if DEBUG_LOG:
        stored = [int(s) for s in re.findall(r"ssl ocsp cache store, valid:(\d+)", first.log)]
        assert len(stored) == 2, first.log  # the client certificate and the issuing CA
        # Cached for as long as the response is valid (nextUpdate - now), not for minutes.
        remaining = (next_update - dt.datetime.now(dt.UTC)).total_seconds()
        assert abs(stored[0] - remaining) < 60, (stored, remaining)
        assert stored[0] > 24 * 3600

    front_end.kinko.revoke(client.serial, "key-compromise")
    settle()
    answer = ocsp_status(front_end.responder_url, client.cert_file, issuing_file)
    assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED, "the responder itself knows"

    cached = login(nginx, client)
    assert cached.status == 200 and cached.body == WELCOME, (
        "nginx's shared OCSP cache no longer serves the stale answer: re-check nginx's cache "
        f"lifetime and this module's docstring. {cached.describe()}\n{nginx.log_excerpt()}"
    )
    if DEBUG_LOG:
        assert cached.ocsp_trail() == [], cached.log  # nginx did not ask the responder at all
        assert cached.log.count("ssl ocsp cache hit, good") == 2, cached.log

    # The same revoked certificate at a front end without the cache is refused at once.
    uncached = front_end.start("nginx-uncached")
    expect_refused_as_revoked(front_end, uncached, client, login(uncached, client))
