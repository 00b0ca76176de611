"""OCSP benchmark: Kinko's responder beside `openssl ocsp` and nginx serving the same bytes, in one run.

On 127.0.0.1, with wrk (`wrk -t2 -c16 -d<secs>s --latency`), in a temp dir:

1. A fresh CA home (EC P-256) with N client certificates issued through `Kinko.issue` (each
   pre-signs its OCSP responses) and a few revoked. The DER requests for one good certificate
   come from `openssl ocsp -reqout` (SHA-1 CertID, with and without a nonce).
2. Kinko: `python -m kinko.cli --home H ocsp serve --workers 2` (Granian). Measured: GET and POST
   keep-alive (pre-signed answers), GET and POST with `Connection: close`, and POST keep-alive
   with a fresh 16-byte nonce in every request (wrk's Lua builds each one: the no-nonce
   TBSRequest plus a requestExtensions [2] nonce), which Kinko signs on demand.
3. `openssl ocsp -index index.txt -multi 2` with Kinko's delegated OCSP signer certificate and
   key (same key type; ResponderID by key, like Kinko) over the same certificates: POST with
   `Connection: close` (it closes every connection anyway). openssl 3.0's `-port` binds [::]
   and takes no address, so it runs in a private network namespace (`unshare --net`, its own
   loopback) and wrk joins it with `nsenter`; nothing else can reach it. Without that (not
   root, no unshare), the openssl scenario is skipped. Each wrk run gets a fresh responder: an
   openssl 3.0 child whose client closes before sending a request (as wrk does when it stops)
   spins on read() == 0 at 100% CPU and answers nothing more.
4. nginx (`worker_processes 2; access_log off; keepalive_requests 1000000;`) serving the
   response bytes Kinko returns for the GET as a static file at the same request path,
   keep-alive: the ceiling.

Before each measured run a 1 s warm-up runs with a Lua `response()` check that every answer is
a successful OCSP response and, for Kinko, pre-signed (max-age) or signed on demand (no-store)
as the scenario expects. The responses are checked with `openssl ocsp -respin`: signature and
chain, status (good; revoked for a revoked certificate from Kinko and openssl alike), and the
nonce echoed. CPU per request is each server's session (/proc) and wrk's own rusage; irq,
other and steal are shares of all CPUs over the run (/proc/stat): interrupts and softirqs
(loopback TCP, part of the work), other processes and hypervisor steal (noise).

    python bench/ocsp.py [--duration 5] [--certs 200] [--json] [--profile get,post,...]

--profile runs the named Kinko scenarios (get, post, get-close, post-close, nonce) once more
and prints the CPU of each worker thread per request (/proc) and the heaviest Python frames from
`py-spy record --nonblocking -f raw` on every worker (after the table; on stderr with --json).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import NameOID

from kinko.ca.clock import SystemClock
from kinko.ca.hierarchy import InitOptions, create_home
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from kinko.ca.officers import current_login

ROOT = Path(__file__).resolve().parent.parent
ORG = "興産信用金庫"
CONNECTIONS, THREADS = 16, 2
TARGETS = {"get_over_nginx": 0.4, "post_over_nginx": 0.4, "p99_ms": 5.0, "close_over_openssl": 1.5, "nonce": 0.1}
MARK = {True: "PASS", False: "FAIL"}
OCSP_REQUEST = "application/ocsp-request"
NONCE_OID = bytes.fromhex("06092b0601050507300102")  # 1.3.6.1.5.5.7.48.1.2
NONCE_BYTES = 16
# Revocation reasons used, and how openssl's index.txt names them (None: no reason, as Kinko
# omits the reasonCode for unspecified).
REASONS = {
    "key-compromise": "keyCompromise",
    "superseded": "superseded",
    "cessation-of-operation": "cessationOfOperation",
    "affiliation-changed": "affiliationChanged",
    "unspecified": None,
}

# wrk Lua -----------------------------------------------------------------------------------------

POST_LUA = """\
wrk.method = "POST"
wrk.body = "{body}"
wrk.headers["Content-Type"] = "{ctype}"
"""

# A fresh nonce per request: the request DER ends with the 16 nonce octets, so every body is
# the fixed prefix plus 16 random bytes. setup() numbers the threads so that each seeds its own.
NONCE_LUA = """\
local prefix = "{prefix}"
local seed = {seed}
local threads_made = 0
local headers = {{}}
local char, random = string.char, math.random
local unpack = table.unpack or unpack

function setup(thread)
   threads_made = threads_made + 1
   thread:set("id", threads_made)
end

function init(args)
   math.randomseed(seed + 7919 * (id or 0))
   for k, v in pairs(wrk.headers) do headers[k] = v end
   headers["Content-Type"] = "{ctype}"
end

function request()
   local b = {{}}
   for i = 1, {nonce_bytes} do b[i] = random(0, 255) end
   return wrk.format("POST", "/", headers, prefix .. char(unpack(b)))
end
"""

# Appended for the warm-up runs: counts answers that are not what the scenario should get.
CHECK_LUA = """
local all_threads = {{}}
local base_setup = setup
function setup(thread)
   if base_setup then base_setup(thread) end
   table.insert(all_threads, thread)
end
ok, bad = 0, 0
local want_cache = "{want_cache}"
function response(status, headers, body)
   local cache = ""
   for k, v in pairs(headers) do
      if string.lower(k) == "cache-control" then cache = v end
   end
   -- A successful OCSPResponse: SEQUENCE (long length) then ENUMERATED 0 within its first bytes.
   local at = string.find(body, "\\10\\1\\0", 1, true)
   if status == 200 and at ~= nil and at <= 6 and #body > 100
      and (want_cache == "" or string.find(cache, want_cache, 1, true)) then
      ok = ok + 1
   else
      bad = bad + 1
   end
end
function done(summary, latency, requests)
   local o, b = 0, 0
   for _, t in ipairs(all_threads) do o = o + t:get("ok"); b = b + t:get("bad") end
   io.write(string.format("bench-check ok=%d bad=%d\\n", o, b))
end
"""


def lua_string(data: bytes) -> str:
    """A Lua string literal body: every byte as a three-digit decimal escape."""
    return "".join(f"\\{b:03d}" for b in data)


# DER ----------------------------------------------------------------------------------------------


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


def read_tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, end) of the DER element at pos."""
    tag, first = data[pos], data[pos + 1]
    if first < 0x80:
        return tag, pos + 2, pos + 2 + first
    count = first & 0x7F
    return tag, pos + 2 + count, pos + 2 + count + int.from_bytes(data[pos + 2 : pos + 2 + count], "big")


def with_nonce(request_der: bytes, nonce: bytes) -> bytes:
    """The no-nonce OCSPRequest with requestExtensions [2] holding an RFC 8954 nonce appended."""
    _, start, end = read_tlv(request_der, 0)
    tag, tbs_start, tbs_end = read_tlv(request_der, start)
    if tag != 0x30 or tbs_end != end:
        raise ValueError("expected an unsigned OCSPRequest")
    extension = tlv(0x30, NONCE_OID + tlv(0x04, tlv(0x04, nonce)))
    tbs = request_der[tbs_start:tbs_end] + tlv(0xA2, tlv(0x30, extension))
    return tlv(0x30, tlv(0x30, tbs))


# setup --------------------------------------------------------------------------------------------


@dataclass
class Setup:
    home: Home
    work: Path
    issuing_pem: Path
    chain_pem: Path
    good_pem: Path
    good_serial: str
    revoked_pem: Path
    request: bytes  # no nonce, SHA-1 CertID, for good_pem
    revoked_request: bytes
    openssl_nonce_request: bytes
    index_txt: Path
    signer_pem: Path
    signer_key: Path
    certificates: int
    revoked: int
    issue_s: float


def make_csr() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def utc_time(iso: str) -> str:  # 2026-11-25T10:24:44Z -> 261125102444Z, index.txt's form
    return iso[2:4] + iso[5:7] + iso[8:10] + iso[11:13] + iso[14:16] + iso[17:19] + "Z"


def openssl(*args: str, data: bytes | None = None) -> str:
    result = subprocess.run(["openssl", *args], input=data, capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {result.stderr.decode(errors='replace')}")
    return (result.stdout + result.stderr).decode(errors="replace")


def setup(work: Path, port: int, n: int, revoke: int) -> Setup:
    passfile = work / "passphrase.txt"
    passfile.write_text(secrets.token_urlsafe(24) + "\n")
    passfile.chmod(0o600)
    options = InitOptions(organization=ORG, passphrase_file=passfile, base_url=f"http://127.0.0.1:{port}")
    # The account running the benchmark becomes the home's admin: `kinko ocsp serve` checks it.
    home = create_home(work / "home", options, SystemClock(), current_login())
    # The nonce scenario measures signing on demand: no per-client budget (one wrk host is one client).
    config = home.config_file.read_text(encoding="utf-8")
    home.config_file.write_text(config.replace("on_demand_per_client = 20", "on_demand_per_client = 0"), "utf-8")
    kinko = Kinko(home, clock=SystemClock(), actor=current_login())
    csrs = [make_csr() for _ in range(n)]
    start = time.perf_counter()
    issued = [kinko.issue(csr, name=f"利用者 {i:04d}", organization=ORG) for i, csr in enumerate(csrs)]
    issue_s = time.perf_counter() - start
    step = max(1, n // max(1, revoke))
    reasons = list(REASONS)
    revoked = [issued[i].record.serial for i in range(1, n, step)][:revoke]
    for k, serial in enumerate(revoked):
        kinko.revoke(serial, reasons[k % len(reasons)])

    certs_dir = work / "certs"
    certs_dir.mkdir()
    lines = []
    for one in issued:
        record = home.store.certificate(one.record.serial)
        assert record is not None
        cert = x509.load_pem_x509_certificate(one.pem.encode())
        (certs_dir / f"{record.serial}.pem").write_text(one.pem)
        expiry = utc_time(record.not_after)
        subject = "/" + "/".join(reversed(cert.subject.rfc4514_string().split(",")))
        if record.status == "revoked":
            assert record.revoked_at is not None and record.revocation_reason is not None
            field = utc_time(record.revoked_at)
            if REASONS[record.revocation_reason]:
                field += "," + str(REASONS[record.revocation_reason])
            lines.append(f"R\t{expiry}\t{field}\t{record.serial}\tunknown\t{subject}\n")
        else:
            lines.append(f"V\t{expiry}\t\t{record.serial}\tunknown\t{subject}\n")
    index_txt = work / "index.txt"
    index_txt.write_text("".join(lines), encoding="utf-8")

    issuing_pem = home.public_dir / "ca" / "issuing.pem"
    chain_pem = work / "chain.pem"
    chain_pem.write_bytes((home.public_dir / "ca" / "root.pem").read_bytes() + issuing_pem.read_bytes())
    good = next(i for i in issued[n // 2 :] if i.record.serial not in revoked)
    good_pem, revoked_pem = certs_dir / f"{good.record.serial}.pem", certs_dir / f"{revoked[0]}.pem"
    req, req_revoked, req_nonce = work / "req.der", work / "req-revoked.der", work / "req-nonce.der"
    base = ["ocsp", "-issuer", str(issuing_pem)]
    openssl(*base, "-cert", str(good_pem), "-reqout", str(req), "-no_nonce")
    openssl(*base, "-cert", str(revoked_pem), "-reqout", str(req_revoked), "-no_nonce")
    openssl(*base, "-cert", str(good_pem), "-reqout", str(req_nonce))

    signer_pem = work / "ocsp-signer.pem"
    signer_pem.write_bytes(home.ca_certificate("ocsp:issuing").public_bytes(serialization.Encoding.PEM))
    authority = home.store.authority("ocsp:issuing")
    assert authority is not None
    home.store.close()
    return Setup(
        home=home,
        work=work,
        issuing_pem=issuing_pem,
        chain_pem=chain_pem,
        good_pem=good_pem,
        good_serial=good.record.serial,
        revoked_pem=revoked_pem,
        request=req.read_bytes(),
        revoked_request=req_revoked.read_bytes(),
        openssl_nonce_request=req_nonce.read_bytes(),
        index_txt=index_txt,
        signer_pem=signer_pem,
        signer_key=home.keys_dir / authority[1],
        certificates=n,
        revoked=len(revoked),
        issue_s=issue_s,
    )


# servers ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A server started in a session of its own; stop() ends every process of that session.

    By session, not process group: `openssl ocsp -multi` moves itself into a group of its own.
    """

    def __init__(self, name: str, argv: list[str], log: Path, cwd: Path | None = None, grace: float = 10) -> None:
        self.name = name
        self.log = log
        self.grace = grace
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.pid = self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def _stats(self) -> Iterator[tuple[int, list[str]]]:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    if int(fields[3]) == self.pid and fields[0] != "Z":  # same session, not a zombie
                        yield int(entry.name), fields

    def pids(self) -> list[int]:
        """Every live process of the session (the server's workers included)."""
        return sorted(pid for pid, _ in self._stats())

    def cpu_seconds(self) -> float:
        """utime + stime of the session's live processes (children that exited are not counted)."""
        return sum(int(f[11]) + int(f[12]) for _, f in self._stats()) / os.sysconf("SC_CLK_TCK")

    def fail(self, why: str) -> RuntimeError:
        return RuntimeError(f"{self.name}: {why}\n{self.log.read_text(errors='replace')[-2000:]}")

    def _signal_all(self, sig: int) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def stop(self) -> None:
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while self.pids() and time.monotonic() < deadline:
            self.process.poll()  # reap the leader
            time.sleep(0.05)
        for _ in range(100):
            if not self.pids():
                break
            self._signal_all(signal.SIGKILL)
            self.process.poll()
            time.sleep(0.05)
        self.process.wait(timeout=10)


def http(url: str, body: bytes | None = None, timeout: float = 5) -> tuple[int, bytes, dict[str, str]]:
    headers = {"Content-Type": OCSP_REQUEST} if body else {}
    request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310 - http://127.0.0.1 only
    with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310 - 127.0.0.1 only
        return reply.status, reply.read(), {k.lower(): v for k, v in reply.headers.items()}


def wait_http(server: Server, url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not server.alive():
            raise server.fail("exited while starting")
        with contextlib.suppress(OSError):
            if http(url, timeout=1)[0] == 200:
                return
        time.sleep(0.1)
    raise server.fail(f"no 200 from {url} within {seconds:.0f} s")


def check_sole_listener(server: Server, port: int) -> None:
    """Granian binds with SO_REUSEPORT: a second server on the same port starts without error and
    the kernel splits connections between the two. Refuse to measure if anyone else listens."""
    if shutil.which("ss") is None:
        return
    listing = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    pids = {int(pid) for pid in re.findall(r"pid=(\d+)", listing)}
    foreign = pids - set(server.pids())
    if foreign:
        raise server.fail(f"other processes also listen on port {port}: {sorted(foreign)}")


def start_kinko(home: Path, port: int, log: Path) -> Server:
    argv = [sys.executable, "-m", "kinko.cli", "--home", str(home), "ocsp", "serve"]
    argv += ["--port", str(port), "--workers", "2"]
    server = Server("kinko ocsp serve", argv, log, cwd=ROOT)
    try:
        wait_http(server, f"http://127.0.0.1:{port}/healthz")
        check_sole_listener(server, port)
    except BaseException:
        server.stop()
        raise
    return server


def netns_available() -> bool:
    with contextlib.suppress(OSError):
        probe = subprocess.run(["unshare", "--net", "ip", "link", "set", "lo", "up"], capture_output=True)
        return probe.returncode == 0 and shutil.which("nsenter") is not None
    return False


def start_openssl(s: Setup, port: int, log: Path) -> Server:
    responder = [
        "openssl", "ocsp", "-index", str(s.index_txt), "-CA", str(s.issuing_pem),
        "-rsigner", str(s.signer_pem), "-rkey", str(s.signer_key), "-resp_key_id",
        "-port", str(port), "-multi", "2", "-nmin", "5",
    ]  # fmt: skip
    # Its own network namespace: `-port` binds [::] and the namespace's loopback is all it sees.
    # Not exec'd: `-multi` calls setpgid(), which a session leader may not (it would exit).
    # SIGTERM does not stop its parent process (waitpid restarts), hence the short grace.
    argv = ["unshare", "--net", "sh", "-c", 'ip link set lo up && "$@"', "sh", *responder]
    server = Server("openssl ocsp", argv, log, grace=1)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not server.alive():
                raise server.fail("exited while starting")
            # Probed with a valid request: after a malformed one (a bare GET /) a -multi child
            # of openssl 3.0 exits and the responder stops answering for a while.
            if openssl_post(s, server, port, s.request, max_time=1) is not None:
                return server
            time.sleep(0.1)
        raise server.fail("not answering within 30 s")
    except BaseException:
        server.stop()
        raise


def openssl_post(s: Setup, server: Server, port: int, request: bytes, max_time: float = 5) -> bytes | None:
    """POSTs a request to the namespaced openssl responder with curl; the body, or None."""
    req_file = s.work / "openssl-req.der"
    req_file.write_bytes(request)
    curl = ["curl", "-sf", "--max-time", f"{max_time:g}", "--data-binary", f"@{req_file}"]
    result = in_netns(server, [*curl, "-H", f"Content-Type: {OCSP_REQUEST}", f"http://127.0.0.1:{port}/"])
    return result.stdout if result.returncode == 0 and result.stdout else None


def in_netns(server: Server | None, argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Runs a command, inside the server's network namespace when one is given."""
    prefix = ["nsenter", f"--net=/proc/{server.pid}/ns/net", "--"] if server else []
    return subprocess.run([*prefix, *argv], capture_output=True)


NGINX_CONF = """\
worker_processes 2;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    server {{
        listen 127.0.0.1:{port};
        root {dir}/docroot;
        location / {{
            default_type application/ocsp-response;
            try_files /response.der =404;
        }}
    }}
}}
"""


def start_nginx(directory: Path, body: bytes, port: int, path: str) -> Server:
    directory.chmod(0o755)
    (directory / "docroot").mkdir(mode=0o755)
    (directory / "tmp").mkdir()
    (directory / "docroot" / "response.der").write_bytes(body)
    (directory / "docroot" / "response.der").chmod(0o644)
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=directory, port=port))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    argv = [nginx, "-p", str(directory), "-c", str(conf), "-e", str(directory / "error.log")]
    server = Server("nginx", argv, directory / "stdout.log")
    try:
        wait_http(server, f"http://127.0.0.1:{port}{path}")
        check_sole_listener(server, port)
    except BaseException:
        server.stop()
        raise
    return server


# wrk ----------------------------------------------------------------------------------------------


@dataclass
class Figures:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    server_cpu_us_per_req: float
    wrk_cpu_us_per_req: float
    # Shares of all CPUs over the run (/proc/stat): interrupt and softirq time (loopback TCP is
    # largely softirq, so part of the work), other processes' time (noise), and time stolen by
    # the hypervisor (noise).
    irq_pct: float
    other_cpu_pct: float
    steal_pct: float
    checked_ok: int = 0
    checked_bad: int = 0


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def machine_cpu() -> tuple[float, float, float]:
    """Seconds all CPUs spent since boot in processes, in irq + softirq, and stolen (/proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(x) / os.sysconf("SC_CLK_TCK") for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return user + nice + system, irq + softirq, steal


def latency_ms(text: str, label: str) -> float:
    match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
    if match is None:
        raise RuntimeError(f"no {label}% latency in wrk output:\n{text}")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse_wrk(text: str) -> tuple[float, float, float, int, int, int]:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    if rate is None or total is None:
        raise RuntimeError(f"unexpected wrk output:\n{text}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    socket_errors = sum(int(g) for g in errors.groups()) if errors else 0
    p50, p99 = latency_ms(text, "50"), latency_ms(text, "99")
    return float(rate.group(1)), p50, p99, int(total.group(1)), int(non_2xx.group(1)) if non_2xx else 0, socket_errors


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    url_path: str
    lua: str  # "" for a plain GET
    close: bool
    want_cache: str  # what the warm-up check wants in Cache-Control ("" for anything)


def wrk(
    server: Server,
    scenario: Scenario,
    port: int,
    seconds: float,
    scripts: Path,
    check: bool = False,
    netns: bool = False,
) -> Figures:
    url = f"http://127.0.0.1:{port}{scenario.url_path}"
    argv = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency", "--timeout", "5s"]
    if scenario.close:
        argv += ["-H", "Connection: close"]
    lua = scenario.lua + (CHECK_LUA.format(want_cache=scenario.want_cache) if check else "")
    if lua:
        script = scripts / f"{scenario.key}{'-check' if check else ''}.lua"
        script.write_text(lua)
        argv += ["-s", str(script)]
    argv.append(url)
    before_wrk = resource.getrusage(resource.RUSAGE_CHILDREN)
    before_server, before_machine, started = server.cpu_seconds(), machine_cpu(), time.perf_counter()
    result = in_netns(server if netns else None, argv)
    server_cpu = server.cpu_seconds() - before_server
    after_machine, wall = machine_cpu(), time.perf_counter() - started
    processes, irq, steal = (a - b for a, b in zip(after_machine, before_machine, strict=True))
    capacity = wall * (os.cpu_count() or 1) / 100
    after_wrk = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = result.stdout.decode(errors="replace")
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr.decode(errors='replace')}\n{text}")
    if not server.alive():
        raise server.fail("died under load")
    rate, p50, p99, requests, non_2xx, socket_errors = parse_wrk(text)
    if requests == 0:
        raise server.fail(f"no request answered:\n{text}")
    wrk_cpu = (after_wrk.ru_utime + after_wrk.ru_stime) - (before_wrk.ru_utime + before_wrk.ru_stime)
    figures = Figures(
        requests_per_s=rate,
        p50_ms=p50,
        p99_ms=p99,
        requests=requests,
        non_2xx=non_2xx,
        socket_errors=socket_errors,
        server_cpu_us_per_req=server_cpu / max(1, requests) * 1e6,
        wrk_cpu_us_per_req=wrk_cpu / max(1, requests) * 1e6,
        irq_pct=irq / capacity,
        other_cpu_pct=max(0.0, processes - server_cpu - wrk_cpu) / capacity,
        steal_pct=steal / capacity,
    )
    found = re.search(r"bench-check ok=(\d+) bad=(\d+)", text)
    if check:
        if found is None:
            raise RuntimeError(f"the Lua check printed nothing:\n{text}")
        figures.checked_ok, figures.checked_bad = int(found.group(1)), int(found.group(2))
    return figures


def measure(
    server: Server, scenario: Scenario, port: int, args: argparse.Namespace, scripts: Path, netns: bool = False
) -> Figures:
    """A checked warm-up, then the measured run."""
    warm = wrk(server, scenario, port, args.warmup, scripts, check=True, netns=netns)
    settle(args.settle)
    figures = wrk(server, scenario, port, args.duration, scripts, netns=netns)
    figures.checked_ok, figures.checked_bad = warm.checked_ok, warm.checked_bad
    report(scenario, figures)
    return figures


def settle(seconds: float, idle_below: float = 10.0) -> None:
    """Waits (at most `seconds`) until the machine is quiet: under `idle_below` % of all CPUs busy
    over half a second. Between runs our servers idle, so what is busy is someone else."""
    deadline = time.monotonic() + seconds
    busy = 0.0
    while True:
        before, started = machine_cpu(), time.perf_counter()
        time.sleep(0.5)
        spent = sum(b - a for a, b in zip(before, machine_cpu(), strict=True))
        busy = spent / ((time.perf_counter() - started) * (os.cpu_count() or 1)) * 100
        if busy < idle_below or time.monotonic() >= deadline:
            break
    if busy >= idle_below and seconds > 0:
        print(f"  (machine still {busy:.0f}% busy after waiting {seconds:g} s; measuring anyway)", file=sys.stderr)


def report(scenario: Scenario, figures: Figures) -> None:
    print(f"  {scenario.label}: {figures.requests_per_s:,.0f} req/s, p99 {figures.p99_ms:.2f} ms", file=sys.stderr)


# checking answers ---------------------------------------------------------------------------------


def verify(s: Setup, response: bytes, cert: Path, request: bytes | None = None) -> str:
    """openssl's verdict on a response: 'good' / 'revoked' / ...; raises unless it verifies.

    With a request, a second `openssl ocsp -reqin -respin` checks that the response echoes its
    nonce (given -cert as well, openssl would build a request of its own with a new nonce).
    """
    resp_file = s.work / "check-resp.der"
    resp_file.write_bytes(response)
    common = ["ocsp", "-respin", str(resp_file), "-CAfile", str(s.chain_pem)]
    text = openssl(*common, "-issuer", str(s.issuing_pem), "-cert", str(cert), "-no_nonce")
    if "Response verify OK" not in text:
        raise RuntimeError(f"openssl does not accept the response:\n{text}")
    if request is not None:
        req_file = s.work / "check-req.der"
        req_file.write_bytes(request)
        nonce_text = openssl(*common, "-reqin", str(req_file))  # fails on "Nonce Verify error"
        if "Response verify OK" not in nonce_text or "WARNING: no nonce in response" in nonce_text:
            raise RuntimeError(f"the response does not echo the request's nonce:\n{nonce_text}")
    match = re.search(rf"{re.escape(str(cert))}: (\w+)", text)
    return match.group(1) if match else "?"


def echoed_nonce(response: bytes) -> bytes:
    parsed = x509_ocsp.load_der_ocsp_response(response)
    return parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce


def check_kinko(s: Setup, port: int, get_path: str, nonce_prefix: bytes) -> tuple[bytes, dict[str, object]]:
    base = f"http://127.0.0.1:{port}"
    status, get_body, headers = http(base + get_path)
    post_status, post_body, _ = http(base + "/", s.request)
    if status != 200 or post_status != 200:
        raise RuntimeError(f"Kinko answered {status} / {post_status}")
    nonce = secrets.token_bytes(NONCE_BYTES)
    nonce_request = nonce_prefix + nonce
    _, nonce_body, nonce_headers = http(base + "/", nonce_request)
    _, revoked_body, _ = http(base + "/", s.revoked_request)
    facts: dict[str, object] = {
        "get_status": verify(s, get_body, s.good_pem),
        "get_equals_post": get_body == post_body,
        "get_cache_control": headers.get("cache-control", ""),
        "nonce_status": verify(s, nonce_body, s.good_pem, nonce_request),
        "nonce_echoed": echoed_nonce(nonce_body) == nonce,
        "nonce_cache_control": nonce_headers.get("cache-control", ""),
        "revoked_status": verify(s, revoked_body, s.revoked_pem),
        "response_bytes": len(get_body),
        "nonce_response_bytes": len(nonce_body),
    }
    return get_body, facts


def check_openssl(s: Setup, server: Server, port: int) -> dict[str, object]:
    good, revoked = openssl_post(s, server, port, s.request), openssl_post(s, server, port, s.revoked_request)
    if good is None or revoked is None:
        raise server.fail("no answer to a POST")
    return {
        "openssl_status": verify(s, good, s.good_pem),
        "openssl_revoked_status": verify(s, revoked, s.revoked_pem),
        "openssl_response_bytes": len(good),
    }


# py-spy -------------------------------------------------------------------------------------------


SPY_RATE = 200  # py-spy samples per second


def thread_cpu(server: Server) -> dict[tuple[int, int, str], float]:
    """(pid, tid, thread name) -> CPU seconds, for every thread of the server's session."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in server.pids():
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                    name = (task / "comm").read_text().strip()
                    found[(pid, int(task.name), name)] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def profile(server: Server, scenario: Scenario, port: int, args: argparse.Namespace, scripts: Path) -> str:
    """One more run of a Kinko scenario: CPU by process and thread (/proc), and py-spy on every
    worker (`--nonblocking`, Python frames of every busy thread): where the Python time goes."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        return "py-spy not found (pip install py-spy)\n"
    workers = [pid for pid in server.pids() if pid != server.pid]
    settle(args.settle)
    outputs, spies = [], []
    for pid in workers:
        out = scripts / f"py-spy-{scenario.key}-{pid}.txt"
        argv = [py_spy, "record", "-p", str(pid), "-d", f"{args.duration:g}", "-f", "raw", "-o", str(out)]
        argv += ["--nonblocking", "-r", str(SPY_RATE)]
        spies.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        outputs.append(out)
    try:
        time.sleep(0.5)  # py-spy attaches
        before = thread_cpu(server)
        figures = wrk(server, scenario, port, args.duration, scripts)
        after = thread_cpu(server)
        for spy in spies:
            spy.wait(timeout=args.duration + 30)
    finally:
        for spy in spies:
            if spy.poll() is None:
                spy.kill()
                spy.wait()

    requests = max(1, figures.requests)
    lines = [
        f"profile of {scenario.label}: {figures.requests_per_s:,.0f} req/s, p99 {figures.p99_ms:.2f} ms while sampled "
        f"({figures.requests:,} requests in {args.duration:g} s)",
        "  CPU by process and thread (/proc), us per request:",
    ]
    by_role: Counter[str] = Counter()
    for key, seconds in after.items():
        pid, tid, name = key
        used = seconds - before.get(key, 0.0)
        role = "main process" if pid == server.pid else f"worker {workers.index(pid) + 1}" if pid in workers else "?"
        thread = "main thread (asyncio loop)" if tid == pid else f"{name} thread"
        by_role[f"{role}, {thread}"] += used
    by_role["wrk (client, all threads)"] = figures.wrk_cpu_us_per_req * requests / 1e6
    for what, seconds in sorted(by_role.items()):
        if seconds > 0:
            lines.append(f"    {seconds / requests * 1e6:8.1f}  {what}")
    total_server = sum(s for w, s in by_role.items() if not w.startswith("wrk"))
    lines.append(f"    {total_server / requests * 1e6:8.1f}  all of kinko ocsp serve")

    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for out in outputs:
        if not out.exists():
            continue
        for line in out.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [
                short_frame(f) for f in stack.split(";") if " (" in f and not f.startswith(("process ", "thread "))
            ]
            if not frames:
                continue
            total += count
            self_time[frames[-1]] += count
            for frame in {f for f in frames if f.split(" (", 1)[1].startswith(("ocsp/", "ca/"))}:
                inclusive[frame] += count
    main_us = sum(s for w, s in by_role.items() if "main thread" in w and w.startswith("worker")) / requests * 1e6
    lines.append(
        f"  py-spy over {len(workers)} worker(s): {total} samples with a Python stack (py-spy competes for the "
        f"same CPUs, so fewer than {SPY_RATE}/s); shares of those samples, and that share of the workers' "
        f"main-thread CPU ({main_us:.1f} us/req):"
    )
    for title, counter in (("self (leaf frame), all code", self_time), ("inclusive, Kinko code", inclusive)):
        lines.append(f"  top {title}:")
        for frame, count in counter.most_common(args.profile_top):
            share = count / max(1, total)
            lines.append(f"    {share:6.1%} {share * main_us:6.1f} us  {frame}")
    return "\n".join(lines) + "\n\n"


def inprocess_costs(s: Setup, nonce_prefix: bytes) -> str:
    """What Kinko's answer costs without HTTP: its Source called in this process, one thread, no
    other load; set against the server's CPU per request above, the rest is the HTTP server."""
    from kinko.ocsp.protocol import parse_request
    from kinko.ocsp.source import DatabaseSource

    source = DatabaseSource(s.home.path)
    key = Home(s.home.path).key("ocsp:issuing")
    nonce_requests = [nonce_prefix + secrets.token_bytes(NONCE_BYTES) for _ in range(2000)]
    tbs = b"\x30\x82\x01\x00" + bytes(256)

    def per_call(label: str, calls: list[object]) -> str:
        start = time.perf_counter()
        for call in calls:
            call()  # type: ignore[operator]
        return f"    {(time.perf_counter() - start) / len(calls) * 1e6:8.1f}  {label}"

    source.response(s.request)  # fills the caches, as the warm-up does for the server
    lines = [
        "Kinko's answer without HTTP (DatabaseSource in this process, us per call):",
        per_call("response(), pre-signed request (cached)", [lambda: source.response(s.request)] * 20000),
        per_call(
            f"response(), request with a fresh nonce (signed on demand), x{len(nonce_requests)}",
            [lambda r=r: source.response(r) for r in nonce_requests],
        ),
        per_call("  of which: parse_request() of a nonce request", [lambda: parse_request(nonce_requests[0])] * 5000),
        per_call(
            "  of which: SQLite revocation_status()", [lambda: source.store.revocation_status(s.good_serial)] * 5000
        ),
        per_call("  of which: ECDSA P-256 sign_data() of ~260 bytes", [lambda: key.sign_data(tbs)] * 2000),
    ]
    return "\n".join(lines) + "\n"


def short_frame(frame: str) -> str:
    """'name (path/to/file.py:123)' -> 'name (file.py:123)', relative to the repo or site-packages."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    where = re.sub(r"^.*?(site-packages/|python3\.\d+/)", "", where.replace(str(ROOT) + "/", ""))
    return f"{name} ({where})"


# the run ------------------------------------------------------------------------------------------


def scenarios(request: bytes, nonce_prefix: bytes, seed: int) -> dict[str, Scenario]:
    get_path = "/" + urllib.parse.quote(base64.b64encode(request).decode("ascii"), safe="")
    post = POST_LUA.format(body=lua_string(request), ctype=OCSP_REQUEST)
    nonce = NONCE_LUA.format(prefix=lua_string(nonce_prefix), seed=seed, ctype=OCSP_REQUEST, nonce_bytes=NONCE_BYTES)
    return {
        "get": Scenario("get", "kinko GET keep-alive (pre-signed)", get_path, "", False, "max-age"),
        "post": Scenario("post", "kinko POST keep-alive (pre-signed)", "/", post, False, "max-age"),
        "get-close": Scenario("get-close", "kinko GET Connection: close", get_path, "", True, "max-age"),
        "post-close": Scenario("post-close", "kinko POST Connection: close", "/", post, True, "max-age"),
        "nonce": Scenario("nonce", "kinko POST keep-alive, fresh nonce (signed)", "/", nonce, False, "no-store"),
        "openssl": Scenario("openssl", "openssl ocsp -multi 2, POST Connection: close", "/", post, True, ""),
        "nginx": Scenario("nginx", "nginx static file, GET keep-alive", get_path, "", False, ""),
    }


def run(args: argparse.Namespace, tmp: Path) -> tuple[dict[str, Figures], dict[str, object], str]:
    kinko_port, openssl_port, nginx_port = free_port(), free_port(), free_port()
    work = tmp / "work"
    work.mkdir()
    scripts = tmp / "scripts"
    scripts.mkdir()
    s = setup(work, kinko_port, args.certs, args.revoke)
    print(f"  setup: {s.certificates} certificates issued in {s.issue_s:.1f} s, {s.revoked} revoked", file=sys.stderr)

    # The nonce request: openssl's no-nonce request plus requestExtensions; its last 16 octets
    # are the nonce. Built with openssl's own nonce it must equal openssl's nonce request.
    openssl_nonce = echoed_request_nonce(s.openssl_nonce_request)
    facts: dict[str, object] = {
        "nonce_request_matches_openssl": with_nonce(s.request, openssl_nonce) == s.openssl_nonce_request,
        "certificates": s.certificates,
        "revoked": s.revoked,
        "issue_s": round(s.issue_s, 1),
    }
    sample = with_nonce(s.request, b"\x00" * NONCE_BYTES)
    nonce_prefix = sample[:-NONCE_BYTES]
    table = scenarios(s.request, nonce_prefix, secrets.randbelow(2**31))
    results: dict[str, Figures] = {}
    profile_text = ""

    server = start_kinko(s.home.path, kinko_port, tmp / "kinko.log")
    try:
        body, kinko_facts = check_kinko(s, kinko_port, table["get"].url_path, nonce_prefix)
        facts.update(kinko_facts)
        facts["kinko_processes"] = len(server.pids())
        for key in ("get", "post", "get-close", "post-close", "nonce"):
            results[key] = measure(server, table[key], kinko_port, args, scripts)
        for key in args.profile:
            profile_text += profile(server, table[key], kinko_port, args, scripts)
    finally:
        server.stop()

    if netns_available():
        # A fresh responder for every wrk run: when wrk stops, it closes connections that sent
        # no request yet, and an openssl 3.0 child then spins on read() == 0 at 100% CPU for good.
        server = start_openssl(s, openssl_port, tmp / "openssl.log")
        try:
            facts.update(check_openssl(s, server, openssl_port))
        finally:
            server.stop()
        runs = []
        for check in (True, False):
            server = start_openssl(s, openssl_port, tmp / "openssl.log")
            try:
                seconds = args.warmup if check else args.duration
                if not check:
                    settle(args.settle)
                runs.append(wrk(server, table["openssl"], openssl_port, seconds, scripts, check=check, netns=True))
            finally:
                server.stop()
        runs[1].checked_ok, runs[1].checked_bad = runs[0].checked_ok, runs[0].checked_bad
        results["openssl"] = runs[1]
        report(table["openssl"], runs[1])
    else:
        print("  openssl ocsp skipped: no network namespace (needs root and unshare)", file=sys.stderr)

    # A directory of its own outside the (0700) temp dir: nginx workers started by root run as
    # nobody. It holds the public response only.
    with tempfile.TemporaryDirectory(prefix="kinko-bench-nginx-") as nginx_dir:
        server = start_nginx(Path(nginx_dir), body, nginx_port, table["nginx"].url_path)
        try:
            _, nginx_body, _ = http(f"http://127.0.0.1:{nginx_port}{table['nginx'].url_path}")
            facts["nginx_same_bytes"] = nginx_body == body
            results["nginx"] = measure(server, table["nginx"], nginx_port, args, scripts)
        finally:
            server.stop()
    if args.profile:
        profile_text += inprocess_costs(s, nonce_prefix)
    return results, facts, profile_text


def echoed_request_nonce(request_der: bytes) -> bytes:
    """The nonce octets of a request (its extnValue's inner OCTET STRING)."""
    parsed = x509_ocsp.load_der_ocsp_request(request_der)
    return parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce


def evaluate(results: dict[str, Figures], facts: dict[str, object]) -> tuple[dict[str, float | None], dict[str, bool]]:
    def ratio(a: str, b: str) -> float | None:
        if a in results and b in results and results[b].requests_per_s > 0:
            return results[a].requests_per_s / results[b].requests_per_s
        return None

    ratios = {
        "get_over_nginx": ratio("get", "nginx"),
        "post_over_nginx": ratio("post", "nginx"),
        "close_over_openssl": ratio("post-close", "openssl"),
        "get_close_over_openssl": ratio("get-close", "openssl"),
        "nonce_over_nginx": ratio("nonce", "nginx"),
    }

    def at_least(value: float | None, target: float) -> bool:
        return value is not None and value >= target

    checks = {
        "get_over_nginx": at_least(ratios["get_over_nginx"], TARGETS["get_over_nginx"]),
        "get_p99": results["get"].p99_ms <= TARGETS["p99_ms"],
        "post_over_nginx": at_least(ratios["post_over_nginx"], TARGETS["post_over_nginx"]),
        "post_p99": results["post"].p99_ms <= TARGETS["p99_ms"],
        "close_over_openssl": at_least(ratios["close_over_openssl"], TARGETS["close_over_openssl"]),
        "nonce_over_nginx": at_least(ratios["nonce_over_nginx"], TARGETS["nonce"]),
        "answers": (
            facts.get("get_status") == "good"
            and facts.get("revoked_status") == "revoked"
            and facts.get("nonce_status") == "good"
            and bool(facts.get("nonce_echoed"))
            and bool(facts.get("get_equals_post"))
            and bool(facts.get("nonce_request_matches_openssl"))
            and bool(facts.get("nginx_same_bytes"))
            and facts.get("openssl_status", "good") == "good"
            and facts.get("openssl_revoked_status", "revoked") == "revoked"
        ),
    }
    for key, figures in results.items():
        checks[f"clean_{key}"] = figures_clean(figures)
    return ratios, checks


def figures_clean(f: Figures) -> bool:
    return f.non_2xx == 0 and f.socket_errors == 0 and f.checked_bad == 0 and f.checked_ok > 0


NOISY_PCT = 10.0  # other processes busier than this (% of all CPUs) during a run: not comparable


def noisy(f: Figures) -> bool:
    return f.other_cpu_pct + f.steal_pct > NOISY_PCT


def render(
    results: dict[str, Figures], facts: dict[str, object], ratios: dict[str, float | None], checks: dict[str, bool]
) -> str:
    labels = {
        "get": "kinko GET keep-alive (pre-signed)",
        "post": "kinko POST keep-alive (pre-signed)",
        "get-close": "kinko GET Connection: close",
        "post-close": "kinko POST Connection: close",
        "nonce": "kinko POST keep-alive, fresh nonce (signed)",
        "openssl": "openssl ocsp -multi 2, POST Connection: close",
        "nginx": "nginx static file, GET keep-alive (ceiling)",
    }
    width = max(len(v) for v in labels.values())
    head = (
        f"{'scenario':<{width}}  {'req/s':>9}  {'p50 ms':>7}  {'p99 ms':>7}  {'errors':>6}"
        f"  {'srv CPU us/req':>14}  {'wrk CPU us/req':>14}  {'irq':>4}  {'other':>5}  {'steal':>5}  check"
    )
    lines = [head, "-" * len(head)]
    for key, label in labels.items():
        if key not in results:
            lines.append(f"{label:<{width}}  {'skipped':>9}")
            continue
        f = results[key]
        errors = f.non_2xx + f.socket_errors + f.checked_bad
        lines.append(
            f"{label:<{width}}  {f.requests_per_s:>9,.0f}  {f.p50_ms:>7.2f}  {f.p99_ms:>7.2f}  {errors:>6}"
            f"  {f.server_cpu_us_per_req:>14,.0f}  {f.wrk_cpu_us_per_req:>14,.0f}  {f.irq_pct:>3.0f}%"
            f"  {f.other_cpu_pct:>4.0f}%  {f.steal_pct:>4.0f}%"
            f"  {MARK[figures_clean(f)]}{' (noisy)' if noisy(f) else ''}"
        )
    lines.append("")

    def show(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}x"

    get, post = results["get"], results["post"]
    target_rows = [
        ("kinko GET keep-alive / nginx (target >= 0.4x)", show(ratios["get_over_nginx"]), "get_over_nginx"),
        ("kinko GET keep-alive p99 (target <= 5 ms)", f"{get.p99_ms:.2f} ms", "get_p99"),
        ("kinko POST keep-alive / nginx (target >= 0.4x)", show(ratios["post_over_nginx"]), "post_over_nginx"),
        ("kinko POST keep-alive p99 (target <= 5 ms)", f"{post.p99_ms:.2f} ms", "post_p99"),
        ("kinko POST close / openssl POST (target >= 1.5x)", show(ratios["close_over_openssl"]), "close_over_openssl"),
        ("kinko nonce / nginx (target >= 0.1x)", show(ratios["nonce_over_nginx"]), "nonce_over_nginx"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in target_rows)
    involved = {
        "get_over_nginx": ("get", "nginx"),
        "get_p99": ("get",),
        "post_over_nginx": ("post", "nginx"),
        "post_p99": ("post",),
        "close_over_openssl": ("post-close", "openssl"),
        "nonce_over_nginx": ("nonce", "nginx"),
    }
    for label, value, key in target_rows:
        shaky = any(k in results and noisy(results[k]) for k in involved[key])
        lines.append(f"{label:<{width}}  {value:>10}  {MARK[checks[key]]}{'  (noisy input)' if shaky else ''}")
    label = "kinko GET close / openssl POST close (no target)"
    lines.append(f"{label:<{width}}  {show(ratios['get_close_over_openssl']):>10}")
    lines.append("")
    f = facts.get
    lines += [
        f"answers: kinko GET {f('get_status')}, {f('response_bytes')} B, same bytes as POST: "
        f"{yes(f('get_equals_post'))}, Cache-Control: {f('get_cache_control')}",
        f"         kinko revoked cert: {f('revoked_status')}; kinko nonce: {f('nonce_status')}, "
        f"{f('nonce_response_bytes')} B, nonce echoed: {yes(f('nonce_echoed'))}, "
        f"Cache-Control: {f('nonce_cache_control')}",
        f"         openssl: {f('openssl_status', 'n/a')}, {f('openssl_response_bytes', 'n/a')} B; revoked cert: "
        f"{f('openssl_revoked_status', 'n/a')}; nginx serves Kinko's bytes: {yes(f('nginx_same_bytes'))}",
        f"         (all verified by openssl ocsp -respin); Lua-built nonce request = openssl's: "
        f"{yes(f('nonce_request_matches_openssl'))}  {MARK[checks['answers']]}",
    ]
    lines.append(
        f"\nirq / other / steal: shares of all CPUs during the run (softirqs carry loopback TCP; other processes "
        f"and hypervisor steal are noise: 'noisy' above {NOISY_PCT:g}%)."
    )
    return "\n".join(lines)


def yes(value: object) -> str:
    return "yes" if value else "no"


def unshadow_ocsp_package() -> None:
    """Run as `python bench/ocsp.py`, sys.path[0] is bench/ and `import ocsp` would find this file."""
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]


def main() -> None:
    unshadow_ocsp_package()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds of each measured wrk run")
    parser.add_argument("--warmup", type=float, default=1, help="seconds of each checked warm-up run")
    parser.add_argument(
        "--settle", type=float, default=15, help="before each measured run, wait up to this long for an idle machine"
    )
    parser.add_argument("--certs", type=int, default=200, help="certificates issued")
    parser.add_argument("--revoke", type=int, default=10, help="of which revoked")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--profile", default="", help="Kinko scenarios to py-spy: get,post,get-close,post-close,nonce")
    parser.add_argument("--profile-top", type=int, default=15, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.profile = [p for p in args.profile.split(",") if p]
    unknown = set(args.profile) - {"get", "post", "get-close", "post-close", "nonce"}
    if unknown:
        parser.error(f"unknown --profile scenario(s): {', '.join(sorted(unknown))}")
    for tool in ("wrk", "openssl", "curl"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kinko-bench-ocsp-") as tmp:
        results, facts, profile_text = run(args, Path(tmp))
    elapsed = time.perf_counter() - started
    ratios, checks = evaluate(results, facts)
    if args.json:
        report = {
            "duration_s": args.duration,
            "connections": CONNECTIONS,
            "threads": THREADS,
            "scenarios": {
                k: {n: round(v, 3) if isinstance(v, float) else v for n, v in asdict(f).items()}
                for k, f in results.items()
            },
            "ratios": {k: None if v is None else round(v, 3) for k, v in ratios.items()},
            "facts": facts,
            "targets": TARGETS,
            "pass": checks,
            "noisy": sorted(k for k, f in results.items() if noisy(f)),
            "elapsed_s": round(elapsed, 1),
        }
        print(json.dumps(report, indent=2, ensure_ascii=False))
        print(profile_text, file=sys.stderr, end="")
        return
    print(render(results, facts, ratios, checks))
    version = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    print(
        f"\n(wrk -t{THREADS} -c{CONNECTIONS} -d{args.duration:g}s --latency each, after a {args.warmup:g} s checked "
        f"warm-up; total run {elapsed:.1f} s; Python {sys.version.split()[0]}, {version}, {os.cpu_count()} CPUs; "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}Z)"
    )
    if profile_text:
        print("\n" + profile_text, end="")


if __name__ == "__main__":
    main()
