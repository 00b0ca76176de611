"""An OCSP responder on another machine, reading a streaming hot standby (pg_basebackup -R) of
the CA's PostgreSQL primary: it answers what the primary committed within a second (the change
counter, polled), says so in /healthz when the standby falls behind or goes away, and never says
"good" for what it cannot see. Real servers, real `openssl ocsp`."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from kinko.ca import config
from kinko.ca.hierarchy import InitOptions, create_home
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from tests.conftest import ORG, RunningResponder, make_csr, run_kinko

# How long the responder's /healthz allows the standby to be behind, in this test's homes.
LAG_BOUND_S = 1


@pytest.fixture(scope="module")
def standby(postgres: Any) -> Any:
    """One streaming hot standby of the session's primary, for this module's tests, and the
    read-only role its responders log in as (roles belong to the whole server)."""
    with psycopg.connect(postgres.primary.url("postgres"), autocommit=True, passfile=str(postgres.passfile)) as conn:
        conn.execute("CREATE ROLE responder_ro LOGIN PASSWORD 'responder-test-only' IN ROLE pg_read_all_stats")
    return postgres.standby("standby")


@pytest.fixture
def deployment(tmp_path: Path, postgres: Any, standby: Any, clock: Any, passphrase_file: Path) -> dict[str, Any]:
    """A CA home on the primary, and a responder's home on "another machine": a copy without the
    CA keys, whose responder reads the standby as a read-only role."""
    url = postgres.new_database()
    home = create_home(
        tmp_path / "ca",
        InitOptions(
            organization=ORG, passphrase_file=passphrase_file, database=url, database_password_file=postgres.passfile
        ),
        clock,
        "root",
    )
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True, passfile=str(postgres.passfile)) as conn:
        conn.execute(f'GRANT CONNECT ON DATABASE "{name}" TO responder_ro')
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO responder_ro")
    postgres.wait_replayed(standby)
    responder_home = tmp_path / "responder"
    shutil.copytree(home.path, responder_home)
    for key in ("root.key", "issuing.key"):
        (responder_home / "keys" / key).unlink()
    text = (responder_home / "kinko.toml").read_text(encoding="utf-8")
    (responder_home / "kinko.toml").write_text(config.set_value(text, "replica_lag_seconds", LAG_BOUND_S))
    passfile = tmp_path / "responder.pass"
    passfile.write_text(f"127.0.0.1:{standby.port}:{name}:responder_ro:responder-test-only\n")
    passfile.chmod(0o600)
    standby_url = standby.url(name, user="responder_ro")
    served = RunningResponder(
        Home(responder_home),
        extra=["--database", standby_url, "--database-password-file", str(passfile)],
    )
    yield {"home": home, "kinko": Kinko(home, clock=clock), "responder": served, "standby": standby, "url": url}
    served.stop()


def issued(d: dict[str, Any], tmp_path: Path, name: str) -> Path:
    record = d["kinko"].issue(make_csr(), name=name).record
    path = tmp_path / f"{record.serial}.pem"
    path.write_bytes(x509.load_der_x509_certificate(record.der).public_bytes(serialization.Encoding.PEM))
    return path


def status_of(d: dict[str, Any], cert_file: Path) -> str:
    """good, revoked, unknown, or the error status (tryLater) the responder answers with."""
    home: Home = d["home"]
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    issuer = home.ca_certificate("issuing")
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()  # noqa: S303 - RFC 5019
    http = urllib.request.Request(  # noqa: S310 - loopback responder
        d["responder"].url,
        data=request.public_bytes(serialization.Encoding.DER),
        headers={"Content-Type": "application/ocsp-request"},
    )
    with urllib.request.urlopen(http, timeout=10) as reply:  # noqa: S310 - loopback responder
        assert reply.status == 200
        answer = ocsp.load_der_ocsp_response(reply.read())
    if answer.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return answer.response_status.name.lower()
    return answer.certificate_status.name.lower()


def healthz(d: dict[str, Any]) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(d["responder"].url + "healthz", timeout=10) as reply:  # noqa: S310 - loopback
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def until(predicate: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def openssl_says(d: dict[str, Any], cert_file: Path, tmp_path: Path) -> str:
    home: Home = d["home"]
    issuer = tmp_path / "issuing.pem"
    issuer.write_bytes(home.ca_certificate("issuing").public_bytes(serialization.Encoding.PEM))
    chain = tmp_path / "root.pem"
    chain.write_bytes(home.ca_certificate("root").public_bytes(serialization.Encoding.PEM))
    result = subprocess.run(
        [
            "openssl",
            "ocsp",
            "-no_nonce",
            "-url",
            d["responder"].url,
            "-issuer",
            str(issuer),
            "-cert",
            str(cert_file),
            "-CAfile",
            str(chain),
            "-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "Response verify OK" in result.stderr, result.stderr
    return result.stdout


def test_a_revocation_on_the_primary_is_answered_by_the_standby_responder_within_a_second(
    deployment: dict[str, Any], tmp_path: Path
) -> None:
    d = deployment
    cert = issued(d, tmp_path, "山田 太郎")
    assert until(lambda: status_of(d, cert) == "good", 5)
    assert f"{cert}: good" in openssl_says(d, cert, tmp_path)
    assert healthz(d)[0] == 200
    serial = cert.stem
    revoked = run_kinko("--home", d["home"].path, "revoke", serial, "--reason", "key-compromise")
    assert revoked.returncode == 0, revoked.stderr
    returned = time.monotonic()
    assert until(lambda: status_of(d, cert) == "revoked", 1.0), "the standby responder still says good after 1 s"
    seen = time.monotonic() - returned
    assert seen <= 1.0, seen
    assert f"{cert}: revoked" in openssl_says(d, cert, tmp_path)


def test_a_standby_that_falls_behind_says_so_and_keeps_answering_what_it_has(
    deployment: dict[str, Any], tmp_path: Path, postgres: Any
) -> None:
    d = deployment
    cert = issued(d, tmp_path, "佐藤 花子")
    assert until(lambda: status_of(d, cert) == "good", 5)
    admin = psycopg.connect(d["standby"].url("postgres"), autocommit=True, passfile=str(postgres.passfile))
    admin.execute("SELECT pg_wal_replay_pause()")
    try:
        revoked = run_kinko("--home", d["home"].path, "revoke", cert.stem, "--reason", "key-compromise")
        assert revoked.returncode == 0, revoked.stderr
        # The standby receives the change but does not apply it: the responder says it is behind,
        # so that a load balancer takes it out, and goes on answering from what it has.
        assert until(lambda: healthz(d)[0] == 503, 10), healthz(d)
        _code, text = healthz(d)
        assert "behind" in text and f"{LAG_BOUND_S} s" in text, text
        assert status_of(d, cert) == "good"
        # A certificate the standby has not seen yet is unknown to it, never good.
        later = issued(d, tmp_path, "新井 三郎")
        assert status_of(d, later) == "unknown"
    finally:
        admin.execute("SELECT pg_wal_replay_resume()")
        admin.close()
    assert until(lambda: status_of(d, cert) == "revoked", 5)
    assert until(lambda: healthz(d)[0] == 200, 10), healthz(d)


def test_a_stopped_standby_turns_healthz_red_and_nothing_new_is_good(
    deployment: dict[str, Any], tmp_path: Path, postgres: Any
) -> None:
    d = deployment
    known = issued(d, tmp_path, "鈴木 一郎")
    assert until(lambda: status_of(d, known) == "good", 5)
    # Asked often enough that each worker has answered it (and kept its signed answer).
    assert all(status_of(d, known) == "good" for _ in range(20))
    d["standby"].stop()
    try:
        assert until(lambda: healthz(d)[0] == 503, 10), healthz(d)
        assert "database" in healthz(d)[1]
        later = issued(d, tmp_path, "高橋 次郎")
        assert status_of(d, later) != "good"
        # What it had: the signed answers it kept, within their validity.
        assert all(status_of(d, known) == "good" for _ in range(5))
    finally:
        d["standby"].start()
    assert until(lambda: healthz(d)[0] == 200, 30), healthz(d)
    assert until(lambda: status_of(d, later) == "good", 10)
