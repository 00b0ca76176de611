"""The CA service with real OS accounts: the service account alone can read the home; officers,
an auditor and an outsider reach it (or not) through its socket, identified by the kernel.

Each account runs as a child of this process that drops to that account (setgroups, setgid,
setuid) and then runs Kinko's own code: nothing is exec'd as another account. Kinko imports
lazily, so the children need the interpreter's library, which lives under /root (0700): the
module makes /root traversable (o+x, no read) while it runs, as the wave-1 role tests do.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kinko import cli
from kinko.ca.clock import SystemClock, to_text
from kinko.ca.hierarchy import InitOptions, create_home
from kinko.ca.i18n import preload
from kinko.ca.officers import add_officer
from kinko.ca.service.protocol import HEADER
from kinko.ca.service.setup import Accounts, set_up
from tests.conftest import ORG, make_csr, make_key, wait_listening
from tests.integration.test_roles import traversable_by_others

SERVICE, OFFICER, OFFICER2, AUDITOR, OUTSIDER, RESPONDER, API_ACCOUNT = (
    "kinko-svc-t",
    "kinko-off1-t",
    "kinko-off2-t",
    "kinko-aud-t",
    "kinko-out-t",
    "kinko-ocsp-t",
    "kinko-api-t",
)
GROUP = "kinko-officers-t"
ACCOUNTS = (SERVICE, OFFICER, OFFICER2, AUDITOR, OUTSIDER, RESPONDER, API_ACCOUNT)


def _run(*argv: str) -> None:
    subprocess.run(argv, capture_output=True, check=False)


@pytest.fixture(scope="module")
def accounts() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.fail("the service tests must run as root: they create OS accounts with useradd")
    with traversable_by_others([Path(sys.executable), Path(os.__file__)]):
        yield from _accounts()


def _accounts() -> Iterator[None]:
    for name in ACCOUNTS:
        _run("userdel", name)  # left by an interrupted run
    _run("groupdel", GROUP)
    subprocess.run(["groupadd", GROUP], check=True, capture_output=True)
    try:
        for name in ACCOUNTS:
            extra = ["-G", GROUP] if name in (OFFICER, OFFICER2, AUDITOR) else []
            subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", *extra, name], check=True)
        yield
    finally:
        for name in ACCOUNTS:
            _run("userdel", name)
        _run("groupdel", GROUP)


def drop_to(login: str) -> None:
    """Becomes `login` for good, with exactly its groups."""
    entry = pwd.getpwnam(login)
    os.setgroups(os.getgrouplist(login, entry.pw_gid))
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)


def as_account(login: str, *args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Runs `kinko ARGS` as `login` in a child process (with `env` added to its environment);
    returns (exit code, stdout, stderr)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            os.dup2(in_r, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            # pytest's capture stands in for sys.stdout: the child's streams are the pipes.
            sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
            sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
            preload()  # the catalogues, while this interpreter's own modules can still be read
            drop_to(login)
            os.environ.update(env or {})
            try:
                cli.main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)
    for fd in (out_w, err_w, in_r):
        os.close(fd)
    os.write(in_w, stdin)
    os.close(in_w)
    with os.fdopen(out_r, "rb") as out, os.fdopen(err_r, "rb") as err:
        stdout, stderr = out.read(), err.read()
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), stdout.decode(), stderr.decode()


def in_child(login: str, action: Callable[[], object]) -> str:
    """Runs `action` as `login` in a child process; returns the name of the exception it raised, or 'ok'."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            drop_to(login)
            action()
            answer = "ok"
        except Exception as exc:
            answer = type(exc).__name__
        os.write(write, answer.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as handle:
        answer = handle.read().decode()
    os.waitpid(pid, 0)
    return answer


@pytest.fixture(scope="module")
def deployment(accounts: None) -> Iterator[dict[str, Any]]:
    """A home owned by the service account (0700), its socket in a directory only the officers'
    group may enter, and the service running as that account."""
    base = Path(tempfile.mkdtemp(prefix="kinko-service-", dir="/tmp"))
    base.chmod(0o755)
    service = pwd.getpwnam(SERVICE)
    secret = base / "secret"
    secret.mkdir(mode=0o700)
    passphrase = secret / "pass.txt"
    passphrase.write_text("service test passphrase\n")
    passphrase.chmod(0o600)
    home = create_home(base / "home", InitOptions(organization=ORG, passphrase_file=passphrase), SystemClock(), "root")
    now = to_text(SystemClock().now()) or ""
    for login, role in ((OFFICER, "officer"), (OFFICER2, "officer"), (AUDITOR, "auditor")):
        add_officer(home, login, role, "root", now)
    os.chown(secret, service.pw_uid, service.pw_gid)
    run = base / "run"
    # The set-up a bank runs: the home to the service account, the responder's read-only view, the socket's directory.
    token = base / "api" / "api-token"
    set_up(home, Accounts(SERVICE, GROUP, RESPONDER, API_ACCOUNT), run, token, "root", now)
    home.store.close()
    for login in (OFFICER, OFFICER2, AUDITOR, OUTSIDER):
        work = base / login
        work.mkdir()
        os.chown(work, pwd.getpwnam(login).pw_uid, -1)
    sock = run / "kinko.sock"
    pid = start_service(home.path, sock)
    state = {"base": base, "home": home.path, "socket": sock, "pid": pid, "api_token": token}
    try:
        yield state
    finally:
        with contextlib.suppress(ChildProcessError, ProcessLookupError):
            os.kill(state["pid"], signal.SIGTERM)
            os.waitpid(state["pid"], 0)
        shutil.rmtree(base, ignore_errors=True)


def start_service(home: Path, sock: Path) -> int:
    """`kinko service run` as the service account, in a child; returns its pid once it listens."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the service
        try:
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            drop_to(SERVICE)
            cli.main(["--home", str(home), "service", "run", "--listen", str(sock)])
        finally:
            os._exit(0)
    deadline = time.monotonic() + 30
    while not sock.exists():
        if time.monotonic() > deadline or os.waitpid(pid, os.WNOHANG) != (0, 0):
            pytest.fail("the service did not start")
        time.sleep(0.02)
    return pid


def kinko_as(d: dict[str, Any], login: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    return as_account(login, "--socket", str(d["socket"]), *args, env=env)


def csr_for(d: dict[str, Any], login: str, name: str = "request.csr") -> Path:
    path = d["base"] / login / name
    path.write_bytes(make_csr())
    path.chmod(0o644)
    return path


def rows(d: dict[str, Any], sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{d['home'] / 'kinko.db'}?mode=ro", uri=True)
    try:
        return list(conn.execute(sql, params))
    finally:
        conn.close()


def test_an_officer_cannot_open_the_database_or_a_key(deployment: dict[str, Any]) -> None:
    home = deployment["home"]
    for path in (home / "kinko.db", home / "kinko.db-wal", home / "keys" / "issuing.key", home / "kinko.toml"):
        assert in_child(OFFICER, lambda p=path: open(p, "rb").close()) == "PermissionError", path


def test_an_officer_issues_revokes_holds_and_releases_through_the_socket(deployment: dict[str, Any]) -> None:
    d = deployment
    out = d["base"] / OFFICER / "issued.pem"
    code, stdout, stderr = kinko_as(
        d, OFFICER, "--json", "issue", "--csr", str(csr_for(d, OFFICER)), "--name", "山田 太郎", "--out", str(out)
    )
    assert code == 0, stderr
    issued = json.loads(stdout)
    serial = issued["serial"]
    # The file is written by the officer's own account, where the officer asked.
    assert out.stat().st_uid == pwd.getpwnam(OFFICER).pw_uid
    assert "BEGIN CERTIFICATE" in out.read_text()
    # The ledger's actor is the officer's login, as the kernel said.
    assert rows(d, "SELECT actor FROM ledger WHERE serial = ? AND action = 'certificate.issued'", (serial,)) == [
        (OFFICER,)
    ]

    code, stdout, stderr = kinko_as(d, OFFICER, "--json", "hold", serial)
    assert code == 0, stderr
    assert json.loads(stdout)["status"] == "held"
    code, stdout, stderr = kinko_as(d, OFFICER, "--json", "release", serial)
    assert code == 0, stderr
    assert json.loads(stdout)["status"] == "valid"
    code, stdout, stderr = kinko_as(d, OFFICER, "--json", "revoke", serial, "--reason", "key-compromise")
    assert code == 0, stderr
    revoked = json.loads(stdout)
    assert revoked["status"] == "revoked"
    # The CRL and the pre-signed OCSP answer show it before the command returned.
    assert revoked["crls_published"], revoked
    from cryptography.x509 import load_der_x509_crl, ocsp

    crl = load_der_x509_crl(Path(revoked["crls_published"][0]["der"]).read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None
    (der,) = rows(d, "SELECT der FROM ocsp_responses WHERE serial = ?", (serial,))[0]
    assert next(iter(ocsp.load_der_ocsp_response(der).responses)).certificate_status == ocsp.OCSPCertStatus.REVOKED


def test_a_refusal_through_the_service_is_in_the_officer_s_language(deployment: dict[str, Any]) -> None:
    """The service runs in its own locale; the officer's language travels with the request."""
    d = deployment
    weak = d["base"] / OFFICER / "weak.csr"
    weak.write_bytes(make_csr(make_key("rsa-1024")))
    weak.chmod(0o644)
    args = ("issue", "--csr", str(weak), "--name", "山田 太郎")
    before = rows(d, "SELECT max(seq) FROM ledger")
    code_en, _, english = kinko_as(d, OFFICER, *args, env={"KINKO_LANG": "en"})
    code_ja, _, japanese = kinko_as(d, OFFICER, *args, env={"KINKO_LANG": "ja"})
    assert code_en == code_ja == 1
    assert english == "kinko: error: RSA 1024-bit keys are not accepted; use 2048 or more\n"
    assert japanese.count("\n") == 1 and "1024" in japanese and "2048" in japanese
    assert any("\u3040" <= ch <= "\u9fff" for ch in japanese), japanese
    assert rows(d, "SELECT max(seq) FROM ledger") == before


def test_direct_mode_on_the_service_home_says_to_use_the_service(deployment: dict[str, Any]) -> None:
    code, stdout, stderr = as_account(OFFICER, "--home", str(deployment["home"]), "cert", "list")
    assert (code, stdout) == (1, "")
    assert stderr == (
        f"kinko: error: {deployment['home']} belongs to another account (permission denied): "
        "reach it through the CA service, e.g. kinko --socket /run/kinko/kinko.sock ...\n"
    )


def test_profiles_change_only_through_the_service_by_an_admin(deployment: dict[str, Any]) -> None:
    """An officer can neither write profiles.toml nor send a new one; the admin's is checked,
    recorded under the admin's login, and in force for the very next issuance."""
    d = deployment
    profiles = d["home"] / "profiles.toml"
    assert in_child(OFFICER, lambda: open(profiles, "ab").close()) == "PermissionError"
    code, stdout, stderr = kinko_as(d, AUDITOR, "config", "show", "profiles.toml")
    assert code == 0 and "[ocsp-signer]" in stdout, stderr
    added = (
        stdout
        + '\n[client-7d]\nvalidity = "7d"\nkey_usage = ["digital_signature"]\nextended_key_usage = ["client_auth"]\n'
    )
    for login in (OFFICER, "root"):
        path = d["base"] / login / "profiles.toml" if login != "root" else d["base"] / "root-profiles.toml"
        path.write_text(added)
        path.chmod(0o644)
    code, _stdout, stderr = kinko_as(
        d, OFFICER, "config", "apply", "--profiles", str(d["base"] / OFFICER / "profiles.toml")
    )
    assert code == 1 and "needs the admin role" in stderr, stderr
    assert rows(d, "SELECT actor FROM ledger WHERE action = 'command.refused' ORDER BY seq DESC LIMIT 1") == [
        (OFFICER,)
    ]

    code, stdout, stderr = kinko_as(
        d, "root", "--json", "config", "apply", "--profiles", str(d["base"] / "root-profiles.toml")
    )
    assert code == 0, stderr
    seq = json.loads(stdout)["seq"]
    assert rows(d, "SELECT action, actor FROM ledger WHERE seq = ?", (seq,)) == [("config.changed", "root")]
    out = d["base"] / OFFICER / "week.pem"
    code, _stdout, stderr = kinko_as(
        d,
        OFFICER,
        "issue",
        "--csr",
        str(csr_for(d, OFFICER)),
        "--name",
        "T",
        "--profile",
        "client-7d",
        "--out",
        str(out),
    )
    assert code == 0, stderr
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(out.read_bytes())
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 6  # seven days, the last second inclusive

    responder = d["base"] / "responder-profiles.toml"
    responder.write_text(
        added
        + '\n[fake-ocsp]\nvalidity = "1y"\nkey_usage = ["digital_signature"]\nextended_key_usage = ["ocsp_signing"]\n'
    )
    responder.chmod(0o644)
    before = rows(d, "SELECT max(seq) FROM ledger")
    code, _stdout, stderr = kinko_as(d, "root", "config", "apply", "--profiles", str(responder))
    assert code == 1 and "carries the ocsp_signing EKU" in stderr, stderr
    assert rows(d, "SELECT max(seq) FROM ledger") == before


def test_two_officers_issuing_at_once_get_distinct_serials(deployment: dict[str, Any]) -> None:
    d = deployment
    csrs = {login: [csr_for(d, login, f"c{i}.csr") for i in range(4)] for login in (OFFICER, OFFICER2)}
    children = []
    for login, files in csrs.items():
        pid = os.fork()
        if pid == 0:  # pragma: no cover - one officer issuing four certificates
            ok = all(kinko_as(d, login, "issue", "--csr", str(f), "--name", "同時 発行")[0] == 0 for f in files)
            os._exit(0 if ok else 1)
        children.append(pid)
    for pid in children:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    issued = rows(
        d,
        "SELECT serial, actor FROM ledger WHERE action = 'certificate.issued' AND actor IN (?, ?)",
        (OFFICER, OFFICER2),
    )
    serials = [s for s, _ in issued]
    assert len(serials) == len(set(serials))
    assert sum(1 for _, actor in issued if actor == OFFICER2) == 4


def test_the_auditor_verifies_and_reads_but_may_not_revoke(deployment: dict[str, Any]) -> None:
    d = deployment
    code, stdout, stderr = kinko_as(d, AUDITOR, "ledger", "verify")
    assert code == 0, stderr
    assert stdout.startswith("ledger OK:")
    code, stdout, stderr = kinko_as(d, AUDITOR, "--json", "cert", "list", "--limit", "1")
    assert code == 0, stderr
    assert len(json.loads(stdout)) == 1
    (serial,) = rows(d, "SELECT serial FROM certificates WHERE status = 'valid' AND profile = 'client' LIMIT 1")[0]
    code, stdout, stderr = kinko_as(d, AUDITOR, "revoke", serial, "--reason", "superseded")
    assert (code, stdout) == (1, "")
    assert stderr == f"kinko: error: `kinko revoke` needs the officer role; {AUDITOR} is auditor\n"
    actor, action, details = rows(d, "SELECT actor, action, details FROM ledger ORDER BY seq DESC LIMIT 1")[0]
    assert (actor, action) == (AUDITOR, "command.refused")
    assert json.loads(details)["command"] == "revoke"
    assert rows(d, "SELECT status FROM certificates WHERE serial = ?", (serial,)) == [("valid",)]


def test_the_auditor_exports_the_ledger_into_files_of_its_own(deployment: dict[str, Any]) -> None:
    """The auditor's process opens the export and its companions; the service writes through the
    descriptors: the files belong to the auditor, and the service opens no path the auditor names."""
    d = deployment
    work = d["base"] / AUDITOR
    out = work / "ledger.csv"
    code, stdout, stderr = kinko_as(d, AUDITOR, "--json", "ledger", "export", "--format", "csv", "--out", str(out))
    assert code == 0, stderr
    shown = json.loads(stdout)
    assert shown["file"] == str(out) and shown["signature"] == f"{out}.sig"
    auditor = pwd.getpwnam(AUDITOR).pw_uid
    for path, mode in ((out, 0o600), (Path(f"{out}.sig"), 0o644), (Path(f"{out}.head.json"), 0o644)):
        assert (path.stat().st_uid, path.stat().st_mode & 0o777) == (auditor, mode), path
    assert out.read_text(encoding="utf-8").startswith("seq,")
    assert not [p.name for p in work.iterdir() if p.name.endswith(".part")]
    # Offline verification runs in the auditor's own process, against its own trust anchor.
    root = work / "root.pem"
    root.write_bytes((d["home"] / "public" / "ca" / "root.pem").read_bytes())
    code, stdout, stderr = kinko_as(d, AUDITOR, "ledger", "verify", "--export", str(out), "--ca-file", str(root))
    assert code == 0 and "OK" in stdout, stderr
    # An anchor is read by the auditor's process too, then checked by the service against the database.
    code, stdout, stderr = kinko_as(d, AUDITOR, "ledger", "verify", "--anchor", str(out))
    assert code == 0 and "extends anchor" in stdout, (stdout, stderr)


def test_an_export_cannot_be_aimed_at_the_service_s_own_files(deployment: dict[str, Any]) -> None:
    d = deployment
    target = d["home"] / "profiles.toml"
    before = (target.stat().st_mtime_ns, target.stat().st_size)
    code, stdout, stderr = kinko_as(d, AUDITOR, "ledger", "export", "--format", "csv", "--out", str(target))
    assert (code, stdout) == (1, "")
    assert stderr == f"kinko: error: cannot write {target}: Permission denied\n"
    assert (target.stat().st_mtime_ns, target.stat().st_size) == before
    # A request that names the path without bringing the files is refused by the service itself.
    body = json.dumps({"op": "ledger export", "params": {"fmt": "csv", "out": str(target)}}).encode()
    answer = reply_of(raw(d, HEADER.pack(len(body)) + body))
    assert answer["exit"] == 2 and "4 output files were named, 0 descriptors came" in answer["stderr"], answer
    assert (target.stat().st_mtime_ns, target.stat().st_size) == before
    body = json.dumps({"op": "ledger verify", "params": {"export_file": str(target)}}).encode()
    answer = reply_of(raw(d, HEADER.pack(len(body)) + body))
    assert answer["exit"] == 2 and "runs in the caller's own process" in answer["stderr"], answer


def reply_of(data: bytes) -> dict[str, Any]:
    (length,) = struct.unpack(">I", data[:4])
    return dict(json.loads(data[4 : 4 + length]))


def test_an_outsider_cannot_reach_the_socket(deployment: dict[str, Any]) -> None:
    code, stdout, stderr = kinko_as(deployment, OUTSIDER, "cert", "list")
    assert (code, stdout) == (3, "")
    assert stderr == (
        f"kinko: error: permission denied on {deployment['socket']}: "
        "this account is not in the group that may use the service\n"
    )


def raw(d: dict[str, Any], payload: bytes, shut: bool = False) -> bytes:
    """Sends bytes to the service as root (past the directory's permissions) and reads the reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(20)
        conn.connect(str(d["socket"]))
        conn.sendall(payload)
        if shut:
            conn.shutdown(socket.SHUT_WR)
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (HEADER.pack(9) + b"not json!", b"not UTF-8 JSON"),
        (HEADER.pack(50_000_000), b"over the 1048576-byte limit"),
        (HEADER.pack(4) + b"[42]", b"not a JSON object"),
        (HEADER.pack(20) + b'{"op": "ocsp serve"}', b"runs in the caller's own process"),
        (HEADER.pack(100) + b"short", b"closed in the middle of a frame"),
    ],
    ids=["garbage", "huge frame", "not an object", "a local operation", "half-closed"],
)
def test_a_malformed_request_gets_an_error_and_the_service_goes_on(
    deployment: dict[str, Any], payload: bytes, words: bytes
) -> None:
    reply = raw(deployment, payload, shut=True)
    (length,) = struct.unpack(">I", reply[:4])
    answer = json.loads(reply[4 : 4 + length])
    assert answer["exit"] == 2 and words.decode() in answer["stderr"], answer
    code, _stdout, stderr = kinko_as(deployment, OFFICER, "cert", "list")
    assert code == 0, stderr


def calls_as(d: dict[str, Any], login: str, requests: list[tuple[str, dict[str, Any]]]) -> list[int]:
    """Sends many requests as `login` from one child (no process per request); returns their exit codes."""
    from kinko.ca.service.client import call

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        drop_to(login)
        codes = [call(d["socket"], op, params, True)["exit"] for op, params in requests]
        os.write(write, json.dumps(codes).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as handle:
        data = handle.read()
    os.waitpid(pid, 0)
    return list(json.loads(data))


def customer_with_holders(d: dict[str, Any], customer: str, name: str, prefix: str, count: int) -> None:
    """A customer with `count` administrators holding certificates, made by an officer through the socket."""
    requests: list[tuple[str, dict[str, Any]]] = [("customer add", {"customer_id": customer, "name": name})]
    for i in range(count):
        holder = {"customer_id": customer, "name": f"管理者 {i}", "subscriber_id": f"{prefix}{i}"}
        requests.append(("enroll administrator", holder))
        requests.append(("issue", {"csr": make_csr(), "name": f"管理者 {i}", "subscriber": f"{prefix}{i}"}))
    assert set(calls_as(d, OFFICER, requests)) == {0}


def test_a_service_stopped_during_a_termination_finishes_it_and_answers(deployment: dict[str, Any]) -> None:
    """systemd's stop (SIGTERM) mid-request: the operation completes and its reply reaches the
    officer, who is never told "no answer" about a change that committed."""
    d = deployment
    customer_with_holders(d, "C800", "株式会社停止", "T", 300)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the officer terminating the customer
        drop_to(OFFICER)
        answer = "none"
        with contextlib.suppress(Exception):
            from kinko.ca.service.client import call

            answer = str(call(d["socket"], "customer terminate", {"customer_id": "C800", "yes": True}, True)["exit"])
        os.write(write, answer.encode())
        os._exit(0)
    os.close(write)
    time.sleep(0.2)  # the request is in (a child connects in milliseconds; 300 revocations take longer)
    os.kill(d["pid"], signal.SIGTERM)
    assert os.waitstatus_to_exitcode(os.waitpid(d["pid"], 0)[1]) == 0
    with os.fdopen(read, "rb") as handle:
        answer = handle.read().decode()
    os.waitpid(child, 0)
    d["pid"] = start_service(d["home"], d["socket"])
    (status,) = rows(d, "SELECT status FROM customers WHERE id = 'C800'")[0]
    assert (answer, status) == ("0", "terminated"), (answer, status)


def test_a_service_killed_during_a_termination_leaves_all_or_nothing(deployment: dict[str, Any]) -> None:
    d = deployment
    customer_with_holders(d, "C900", "株式会社終了", "K", 400)

    done = os.fork()
    if done == 0:  # pragma: no cover - the officer terminating the customer
        drop_to(OFFICER)
        with contextlib.suppress(Exception):
            from kinko.ca.service.client import call

            call(d["socket"], "customer terminate", {"customer_id": "C900", "yes": True}, True)
        os._exit(0)
    time.sleep(0.03)  # the termination is under way: then the service dies without warning
    os.kill(d["pid"], signal.SIGKILL)
    os.waitpid(d["pid"], 0)
    os.waitpid(done, 0)
    d["socket"].unlink(missing_ok=True)
    d["pid"] = start_service(d["home"], d["socket"])

    statuses = {
        s
        for (s,) in rows(
            d,
            "SELECT c.status FROM certificates c JOIN subscribers s ON s.id = c.subscriber_id "
            "WHERE s.customer_id = 'C900'",
        )
    }
    (customer,) = rows(d, "SELECT status FROM customers WHERE id = 'C900'")[0]
    assert (statuses, customer) in (({"valid"}, "active"), ({"revoked"}, "terminated")), (statuses, customer)
    code, _stdout, stderr = kinko_as(d, AUDITOR, "ledger", "verify")
    assert code == 0, stderr


def start_responder(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`kinko ocsp serve` as the responder's account (dropped to before exec); returns it and its URL."""
    from tests.conftest import free_port

    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kinko.cli",
            "--home",
            str(home),
            "ocsp",
            "serve",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        user=RESPONDER,
        group=pwd.getpwnam(RESPONDER).pw_gid,
        extra_groups=[],
        cwd="/",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    wait_listening(port, process, "the responder")
    return process, f"http://127.0.0.1:{port}/"


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def signer_serial_of_answer(d: dict[str, Any], url: str, cert: Path) -> int:
    """The serial of the signer certificate in the responder's own (nonce) answer."""
    from cryptography.x509 import ocsp

    issuer, answer = d["home"] / "public" / "ca" / "issuing.pem", d["base"] / "answer.der"
    result = subprocess.run(
        [
            *("openssl", "ocsp", "-issuer", str(issuer), "-cert", str(cert), "-url", url, "-noverify"),
            "-respout",
            str(answer),
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (signer,) = ocsp.load_der_ocsp_response(answer.read_bytes()).certificates
    return int(signer.serial_number)


def ocsp_status(d: dict[str, Any], url: str, cert: Path, nonce: bool = False) -> str:
    """What the responder at `url` says of `cert`, through openssl (good, revoked or unknown); with a
    nonce the responder signs the answer itself, with the signer key it read."""
    issuer = d["home"] / "public" / "ca" / "issuing.pem"
    result = subprocess.run(
        ["openssl", "ocsp", "-issuer", str(issuer), "-cert", str(cert), "-url", url, "-noverify"]
        + ([] if nonce else ["-no_nonce"]),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split(f"{cert}: ", 1)[1].split()[0]


def until_status(d: dict[str, Any], url: str, cert: Path, expected: str) -> str:
    """Asks up to 50 times, 0.1 s apart (the responder looks for changes every 50 ms): the last answer."""
    for _ in range(50):
        said = ocsp_status(d, url, cert)
        if said == expected:
            return said
        time.sleep(0.1)
    return said


def issued_by_officer(d: dict[str, Any], name: str) -> tuple[str, Path]:
    out = d["base"] / OFFICER / f"{name}.pem"
    code, stdout, stderr = kinko_as(
        d,
        OFFICER,
        "--json",
        "issue",
        "--csr",
        str(csr_for(d, OFFICER, f"{name}.csr")),
        "--name",
        name,
        "--out",
        str(out),
    )
    assert code == 0, stderr
    return json.loads(stdout)["serial"], out


def test_the_responder_reads_what_it_serves_and_writes_nothing(deployment: dict[str, Any]) -> None:
    d = deployment
    home = d["home"]
    conn = sqlite3.connect(home / "kinko.db")
    signer_keys = [
        home / "keys" / name for (name,) in conn.execute("SELECT key_file FROM authorities WHERE role LIKE 'ocsp:%'")
    ]
    other_keys = [
        home / "keys" / name
        for (name,) in conn.execute("SELECT key_file FROM authorities WHERE role NOT LIKE 'ocsp:%'")
    ]
    conn.close()
    assert signer_keys and {p.name for p in other_keys} >= {"issuing.key", "root.key"}

    def write_to_the_database() -> None:
        db = sqlite3.connect(home / "kinko.db", timeout=1)
        db.execute("UPDATE certificates SET status = 'valid'")
        db.commit()

    assert in_child(RESPONDER, lambda: open(home / "kinko.db", "r+b").close()) == "PermissionError"
    assert in_child(RESPONDER, write_to_the_database) == "OperationalError"
    for key in other_keys:  # the CA keys and the audit key
        assert in_child(RESPONDER, lambda k=key: open(k, "rb").close()) == "PermissionError", key
    for key in signer_keys:
        assert in_child(RESPONDER, lambda k=key: open(k, "rb").close()) == "ok", key
    assert in_child(RESPONDER, lambda: os.listdir(home)) == "PermissionError"
    assert in_child(RESPONDER, lambda: (home / "new-file").touch()) == "PermissionError"
    # The responder's account is no officer, and needs to be none.
    assert rows(d, "SELECT count(*) FROM officers WHERE login = ?", (RESPONDER,)) == [(0,)]

    responder, url = start_responder(home)
    try:
        serial, cert = issued_by_officer(d, "応答 確認")
        assert until_status(d, url, cert, "good") == "good"
        code, _stdout, stderr = kinko_as(d, OFFICER, "revoke", serial, "--reason", "key-compromise")
        assert code == 0, stderr
        assert until_status(d, url, cert, "revoked") == "revoked"
        # A new signer made by the service is readable by the responder, which signs with it.
        code, _stdout, stderr = kinko_as(d, "root", "--json", "ocsp", "signer", "rotate")
        assert code == 0, stderr
        conn = sqlite3.connect(f"file:{home / 'kinko.db'}?mode=ro", uri=True)
        new_serial, new_key = conn.execute(
            "SELECT serial, key_file FROM authorities WHERE role = 'ocsp:issuing'"
        ).fetchone()
        conn.close()
        assert (home / "keys" / new_key).stat().st_mode & 0o777 == 0o640
        assert ocsp_status(d, url, cert, nonce=True) == "revoked"
        assert signer_serial_of_answer(d, url, cert) == int(new_serial, 16)
    finally:
        stop(responder)
    assert responder.stderr is not None and b"Traceback" not in responder.stderr.read()


def test_the_responder_serves_while_the_service_is_down_and_follows_it_back(deployment: dict[str, Any]) -> None:
    """Started while the CA service is stopped (no WAL files it could use, none it may create), the
    responder answers from the database as it is, and reads live once the service runs again."""
    d = deployment
    serial, cert = issued_by_officer(d, "停止中 確認")
    other_serial, other_cert = issued_by_officer(d, "直接 失効")
    os.kill(d["pid"], signal.SIGTERM)
    assert os.waitstatus_to_exitcode(os.waitpid(d["pid"], 0)[1]) == 0  # systemd's stop: a clean exit
    # The last connection to close removes the WAL files (the service's, or one closed after it).
    last = sqlite3.connect(d["home"] / "kinko.db")
    last.execute("SELECT count(*) FROM meta").fetchone()
    last.close()
    assert not (d["home"] / "kinko.db-wal").exists()
    responder, url = start_responder(d["home"])
    try:
        assert ocsp_status(d, url, cert) == "good"
        assert ocsp_status(d, url, other_cert) == "good"
        # A writer that comes and goes between two looks (root in direct mode): no WAL is left to
        # see, but the file changed, and the responder reads it afresh.
        from tests.conftest import run_kinko

        revoked = run_kinko("--home", d["home"], "revoke", other_serial, "--reason", "key-compromise")
        assert revoked.returncode == 0, revoked.stderr
        last = sqlite3.connect(d["home"] / "kinko.db")  # its WAL goes with the last connection
        last.execute("SELECT count(*) FROM meta").fetchone()
        last.close()
        assert not (d["home"] / "kinko.db-wal").exists()
        assert until_status(d, url, other_cert, "revoked") == "revoked"
        d["pid"] = start_service(d["home"], d["socket"])
        code, _stdout, stderr = kinko_as(d, OFFICER, "revoke", serial, "--reason", "superseded")
        assert code == 0, stderr
        assert until_status(d, url, cert, "revoked") == "revoked"
    finally:
        stop(responder)


def post(port: int, path: str, token: str, body: object | None = None) -> tuple[int, dict[str, Any]]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    method = "GET" if body is None else "POST"
    connection.request(method, path, body=None if body is None else json.dumps(body).encode(), headers=headers)
    response = connection.getresponse()
    text = response.read().decode()
    return response.status, json.loads(text) if text else {}


def test_the_api_runs_as_its_own_identity_with_the_front_end_s_operations_only(deployment: dict[str, Any]) -> None:
    """`kinko api serve` as the API's account, through the socket: no access to the home, the
    front end's operations recorded under its login, every other operation refused."""
    from tests.conftest import free_port

    d = deployment
    home, token_file = d["home"], d["api_token"]
    info = token_file.stat()
    assert (info.st_uid, info.st_mode & 0o777) == (pwd.getpwnam(API_ACCOUNT).pw_uid, 0o600)
    token = token_file.read_text().strip()
    assert rows(d, "SELECT role FROM officers WHERE login = ?", (API_ACCOUNT,)) == [("api",)]
    assert in_child(API_ACCOUNT, lambda: open(home / "kinko.db", "rb").close()) == "PermissionError"
    assert in_child(API_ACCOUNT, lambda: open(home / "kinko.toml", "rb").close()) == "PermissionError"
    # Through the socket, only the front end's operations: an officer's or an auditor's are refused.
    for args in (("cert", "list"), ("revoke", "01", "--reason", "key-compromise"), ("ledger", "verify")):
        code, _stdout, stderr = kinko_as(d, API_ACCOUNT, *args)
        assert code == 1 and f"{API_ACCOUNT} is api" in stderr, stderr
    # It speaks for the front end's clients only: it cannot spend an officer's code attempts.
    refusals = rows(d, "SELECT count(*) FROM ledger WHERE action = 'enrollment.code-refused'")
    as_officer = {"code": "AAAA-BBBB-CCCC", "csr": make_csr(), "client": f"cli:{OFFICER}"}
    assert calls_as(d, API_ACCOUNT, [("api acquire", as_officer)]) == [1]
    assert rows(d, "SELECT count(*) FROM ledger WHERE action = 'enrollment.code-refused'") == refusals

    code, stdout, stderr = kinko_as(d, OFFICER, "customer", "add", "C700", "--name", "株式会社フロント")
    assert code == 0, stderr
    code, stdout, stderr = kinko_as(
        d,
        OFFICER,
        "--json",
        "enroll",
        "administrator",
        "--customer",
        "C700",
        "--name",
        "管理者 花子",
        "--id",
        "C700-A1",
    )
    assert code == 0, stderr
    enrollment_code = json.loads(stdout)["code"]

    port = free_port()
    entry = pwd.getpwnam(API_ACCOUNT)
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "kinko.cli", "--socket", str(d["socket"]), "api", "serve"),
            *("--port", str(port), "--workers", "1", "--token-file", str(token_file)),
        ],
        user=API_ACCOUNT,
        group=entry.pw_gid,
        extra_groups=os.getgrouplist(API_ACCOUNT, entry.pw_gid),
        cwd="/",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_listening(port, process, "api serve")
        status, body = post(port, "/v1/acquire", token, {"code": enrollment_code, "csr": make_csr().decode()})
        assert status == 201, body
        serial = body["serial"]
        assert "BEGIN CERTIFICATE" in body["pem"] and body["subscriber"] == "C700-A1"
        assert rows(d, "SELECT actor FROM ledger WHERE serial = ? AND action = 'certificate.issued'", (serial,)) == [
            (API_ACCOUNT,)
        ]
        status, body = post(port, f"/v1/certificates/{serial}/status", token)
        assert status == 200 and body["subscriber"] == "C700-A1", body
        # Refusals come back as the same problems as in direct mode, never a 5xx.
        status, body = post(port, "/v1/acquire", token, {"code": enrollment_code, "csr": make_csr().decode()})
        assert status in (403, 404, 409) and body["detail"], body
        status, body = post(port, "/v1/acquire", token, {"code": "AAAA-BBBB-CCCC", "csr": "not a CSR"})
        assert 400 <= status < 500, body
        status, body = post(port, "/v1/certificates/FFFFFF/status", token)
        assert status == 404, body
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    assert process.stderr is not None and b"Traceback" not in process.stderr.read()


def test_api_serve_through_the_socket_refuses_an_account_without_the_api_role(deployment: dict[str, Any]) -> None:
    d = deployment
    token = d["base"] / OFFICER / "token"
    token.write_text("x" * 32)
    os.chown(token, pwd.getpwnam(OFFICER).pw_uid, -1)
    token.chmod(0o600)
    code, stdout, stderr = kinko_as(d, OFFICER, "api", "serve", "--port", "1", "--token-file", str(token))
    assert (code, stdout) == (1, "")
    assert stderr == f"kinko: error: `kinko api status` needs the api role; {OFFICER} is officer\n"
    code, _stdout, stderr = kinko_as(d, OFFICER, "api", "serve", "--port", "1")
    assert code == 1 and "give the bearer token with --token-file" in stderr, stderr


SETUP_ACCOUNT, SETUP_GROUP, SETUP_RESPONDER, SETUP_API = (
    "kinko-setup-t",
    "kinko-setupgrp-t",
    "kinko-setupocsp-t",
    "kinko-setupapi-t",
)


def test_service_setup_gives_the_home_to_its_account(
    accounts: None, tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    base = Path(tempfile.mkdtemp(prefix="kinko-setup-", dir="/tmp"))
    try:
        passphrase = base / "pass.txt"
        passphrase.write_text("setup test passphrase\n")
        passphrase.chmod(0o600)  # root's: setup hands it to the service account
        home = create_home(
            base / "home", InitOptions(organization=ORG, passphrase_file=passphrase), SystemClock(), "root"
        )
        home.store.close()
        socket_dir = base / "run" / "kinko"
        args = ["--home", home.path, "--json", "service", "setup", "--account", SETUP_ACCOUNT]
        args += ["--officers-group", SETUP_GROUP, "--socket-dir", socket_dir, "--responder-account", SETUP_RESPONDER]
        args += ["--api-account", SETUP_API, "--api-token-file", base / "etc" / "api-token"]
        result = run_cli(*args)
        assert result.exit_code == 0, result.output
        done = json.loads(result.stdout)
        account, group = pwd.getpwnam(SETUP_ACCOUNT), grp.getgrnam(SETUP_GROUP)
        assert account.pw_shell == "/usr/sbin/nologin"
        reader = pwd.getpwnam(SETUP_RESPONDER)
        conn = sqlite3.connect(f"file:{home.db_file}?mode=ro", uri=True)
        found = list(conn.execute("SELECT role, key_file FROM authorities WHERE role LIKE 'ocsp:%'"))
        conn.close()
        signers = {f[1] for f in found if f is not None}
        assert len(signers) == 2
        for path in [home.path, *home.path.rglob("*")]:
            info = path.lstat()
            assert (info.st_uid, info.st_gid) == (account.pw_uid, reader.pw_gid), path
            assert info.st_mode & 0o007 == 0, f"{path} is open to others: {oct(info.st_mode)}"
            shared = path.name.startswith("kinko.db") or path.name in ("kinko.toml", "profiles.toml", *signers)
            shared = shared or "public" in path.parts
            modes = {(True, True): 0o2750, (True, False): 0o2710, (False, True): 0o640, (False, False): 0o600}
            expected = modes[(path.is_dir(), ("public" in path.parts) if path.is_dir() else shared)]
            assert info.st_mode & 0o7777 == expected, f"{path}: {oct(info.st_mode)}"
        assert (home.path / "keys" / "issuing.key").stat().st_mode & 0o777 == 0o600
        assert passphrase.stat().st_uid == account.pw_uid and passphrase.stat().st_mode & 0o777 == 0o600
        info = socket_dir.stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (account.pw_uid, group.gr_gid, 0o2750)
        assert f"User={SETUP_ACCOUNT}" in done["unit"] and f"Group={SETUP_GROUP}" in done["unit"]
        assert f"--home {home.path} service run --listen {socket_dir}/kinko.sock" in done["unit"]
        assert "@" not in done["unit"]
        assert f"User={SETUP_RESPONDER}" in done["responder_unit"] and "ocsp serve" in done["responder_unit"]
        assert "@" not in done["responder_unit"]
        assert f"User={SETUP_API}" in done["api_unit"] and f"--token-file {base}/etc/api-token" in done["api_unit"]
        assert "@" not in done["api_unit"]
        token = (base / "etc" / "api-token").stat()
        assert (token.st_uid, token.st_mode & 0o777) == (pwd.getpwnam(SETUP_API).pw_uid, 0o600)
        assert SETUP_API in grp.getgrnam(SETUP_GROUP).gr_mem
        conn = sqlite3.connect(f"file:{home.db_file}?mode=ro", uri=True)
        assert list(conn.execute("SELECT role FROM officers WHERE login = ?", (SETUP_API,))) == [("api",)]
        conn.close()
        # Again: nothing to create, nothing changes, exit 0.
        assert run_cli(*args).exit_code == 0
        # An officer's account may not run it.
        mine = [*args[:-1], base / OFFICER / "api-token"]
        code, _out, stderr = as_account(OFFICER, *map(str, mine))
        assert code == 1 and "run it as root" in stderr, stderr
    finally:
        for login in (SETUP_ACCOUNT, SETUP_RESPONDER, SETUP_API):
            _run("userdel", login)
            _run("groupdel", login)
        _run("groupdel", SETUP_GROUP)
        shutil.rmtree(base, ignore_errors=True)


def test_service_setup_refuses_a_responder_whose_group_others_share(
    accounts: None, run_cli: Callable[..., Any]
) -> None:
    """The home's group is the responder's: anyone else in it would read the database."""
    shared, other = "kinko-shr-t", "kinko-shr2-t"
    base = Path(tempfile.mkdtemp(prefix="kinko-setup-", dir="/tmp"))
    try:
        _run("groupadd", "kinko-shrgrp-t")
        for login in (shared, other):
            subprocess.run(["useradd", "--no-create-home", "-g", "kinko-shrgrp-t", login], check=True)
        passphrase = base / "pass.txt"
        passphrase.write_text("setup test passphrase\n")
        passphrase.chmod(0o600)
        home = create_home(
            base / "home", InitOptions(organization=ORG, passphrase_file=passphrase), SystemClock(), "root"
        )
        home.store.close()

        def state() -> dict[Path, tuple[int, int]]:  # (the database's own -wal/-shm come and go)
            paths = [home.path, *(p for p in home.path.rglob("*") if not p.name.startswith("kinko.db-"))]
            return {p: (p.lstat().st_uid, p.lstat().st_mode) for p in paths}

        before = state()
        args = ["--home", home.path, "service", "setup", "--account", SETUP_ACCOUNT, "--responder-account", shared]
        args += ["--socket-dir", base / "run", "--api-account", SETUP_API, "--api-token-file", base / "token"]
        result = run_cli(*args)
        assert result.exit_code == 1, result.output
        assert f"also holds {other}, who would read the database" in result.stderr
        assert state() == before
        assert not (base / "token").exists() and not (base / "run").exists()
        for login in (SETUP_ACCOUNT, SETUP_API):
            with pytest.raises(KeyError):
                pwd.getpwnam(login)  # nothing was created
    finally:
        for login in (shared, other):
            _run("userdel", login)
        _run("groupdel", "kinko-shrgrp-t")
        shutil.rmtree(base, ignore_errors=True)
