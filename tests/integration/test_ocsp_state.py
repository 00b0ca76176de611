"""Pre-signed OCSP responses: made with each change, refreshed, re-signed on rotation, and
served by the database source (in-process here; over HTTP in tests/interop/test_ocsp.py)."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from kinko.ca.clock import to_text
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from kinko.ocsp.source import DatabaseSource
from tests.conftest import make_csr, raw_execute


def request_for(home: Home, pem: str, algorithm=None, nonce: bytes | None = None) -> bytes:
    certificate = x509.load_pem_x509_certificate(pem.encode())
    issuer = home.ca_certificate("issuing")
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, algorithm or hashes.SHA1())  # noqa: S303
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def stored(home: Home, serial: str) -> list[tuple[str, str, str]]:
    return raw_execute(
        home,
        "SELECT hash_algorithm, this_update, next_update FROM ocsp_responses WHERE serial = ? ORDER BY 1",
        (serial,),
    )


def test_issuance_presigns_the_sha1_response(home: Home, kinko: Kinko, clock) -> None:
    issued = kinko.issue(make_csr(), name="A")
    rows = stored(home, issued.record.serial)
    now = clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (clock.now() + dt.timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert rows == [("sha1", now, later)]


def test_status_changes_are_served_at_once(home: Home, kinko: Kinko, clock) -> None:
    issued = kinko.issue(make_csr(), name="A")
    source = DatabaseSource(home.path, clock=clock)
    request = request_for(home, issued.pem)

    def status() -> ocsp.OCSPResponse:
        return ocsp.load_der_ocsp_response(source.response(request).body)

    assert status().certificate_status == ocsp.OCSPCertStatus.GOOD
    kinko.hold(issued.record.serial)
    source._next_check = 0  # the worker's next look at the database (every 50 ms in service)
    held = status()
    assert held.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert held.revocation_reason == x509.ReasonFlags.certificate_hold
    kinko.release(issued.record.serial)
    source._next_check = 0
    assert status().certificate_status == ocsp.OCSPCertStatus.GOOD
    kinko.revoke(issued.record.serial, "key-compromise")
    source._next_check = 0
    revoked = status()
    assert revoked.revocation_reason == x509.ReasonFlags.key_compromise
    assert revoked.revocation_time_utc == clock.now()


def test_presigned_answers_carry_their_dates_and_nonces_are_signed_on_demand(home: Home, kinko: Kinko, clock) -> None:
    issued = kinko.issue(make_csr(), name="A")
    source = DatabaseSource(home.path, clock=clock)
    plain = source.response(request_for(home, issued.pem))
    assert plain.cacheable and plain.this_update == clock.now()
    assert plain.next_update == clock.now() + dt.timedelta(days=4)
    with_nonce = source.response(request_for(home, issued.pem, nonce=b"\x07" * 16))
    assert not with_nonce.cacheable
    parsed = ocsp.load_der_ocsp_response(with_nonce.body)
    assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"\x07" * 16
    assert parsed.certificate_status == ocsp.OCSPCertStatus.GOOD


def test_nonces_can_be_ignored_by_config(home: Home, kinko: Kinko, clock) -> None:
    text = home.config_file.read_text(encoding="utf-8").replace("nonces = true", "nonces = false")
    home.config_file.write_text(text, encoding="utf-8")
    issued = kinko.issue(make_csr(), name="A")
    answer = DatabaseSource(home.path, clock=clock).response(request_for(home, issued.pem, nonce=b"\x07" * 16))
    assert answer.cacheable
    assert len(ocsp.load_der_ocsp_response(answer.body).extensions) == 0


def test_stale_presigned_response_falls_back_to_signing(home: Home, kinko: Kinko, clock) -> None:
    issued = kinko.issue(make_csr(), name="A")
    clock.advance(days=5)  # past nextUpdate, and nobody ran `ocsp refresh`
    answer = DatabaseSource(home.path, clock=clock).response(request_for(home, issued.pem))
    assert not answer.cacheable and answer.this_update == clock.now()
    parsed = ocsp.load_der_ocsp_response(answer.body)
    assert parsed.certificate_status == ocsp.OCSPCertStatus.GOOD and parsed.this_update_utc == clock.now()


def test_refresh_resigns_only_past_half_life(home: Home, kinko: Kinko, clock, run_cli) -> None:
    issued = kinko.issue(make_csr(), name="A")
    clock.advance(days=1)
    first = json.loads(run_cli("--json", "--home", home.path, "ocsp", "refresh").output)
    assert first["responses"] == 0
    clock.advance(days=1, seconds=1)  # 2 days + 1 s: past half of 4 days
    second = json.loads(run_cli("--json", "--home", home.path, "ocsp", "refresh").output)
    assert second["certificates"] >= 1 and second["responses"] == second["certificates"]
    assert stored(home, issued.record.serial)[0][1] == clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    assert second["signers_expiring"] == []
    # Issue 10: the daily job renews each signer at two-thirds of its life, so none is left to
    # expire (before, the signers aged until refresh warned "kinko ocsp signer rotate").
    before = {role: home.ca_certificate(f"ocsp:{role}").serial_number for role in ("issuing", "root")}
    clock.advance(days=85)
    third = json.loads(run_cli("--json", "--home", home.path, "ocsp", "refresh").output)
    assert third["signers_expiring"] == []
    renewed = Home(home.path)
    for role, serial in before.items():
        assert renewed.ca_certificate(f"ocsp:{role}").serial_number != serial
        assert renewed.ca_certificate(f"ocsp:{role}").not_valid_after_utc > clock.now()


def test_responses_never_outlive_the_signer(home: Home, kinko: Kinko, clock) -> None:
    issued = kinko.issue(make_csr(), name="A")
    signer_end = home.ca_certificate("ocsp:issuing").not_valid_after_utc
    clock.set(signer_end - dt.timedelta(days=1))
    # Issue 10: the daily jobs renew a signer at two-thirds of its life, so `ocsp refresh` would
    # replace this one first; the pre-signer is asked directly to show the cap still holds.
    with home.store.transaction("tester", to_text(clock.now()) or "") as tx:
        assert kinko.session.presigner.sign(tx, [tx.certificate(issued.record.serial)], clock.now()) == 1
    assert stored(home, issued.record.serial)[0][2] == signer_end.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_signer_rotation_resigns_everything(home: Home, kinko: Kinko, clock, run_cli) -> None:
    issued = kinko.issue(make_csr(), name="A")
    source = DatabaseSource(home.path, clock=clock)
    old_signer = home.ca_certificate("ocsp:issuing")
    clock.advance(seconds=5)
    result = run_cli("--json", "--home", home.path, "ocsp", "signer", "rotate")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert sorted(row["issuer"] for row in rows) == ["issuing", "root"]
    new_serial = next(row["serial"] for row in rows if row["issuer"] == "issuing")
    source._next_check = 0
    response = ocsp.load_der_ocsp_response(source.response(request_for(home, issued.pem)).body)
    assert [f"{c.serial_number:X}".zfill(len(new_serial)) for c in response.certificates] == [new_serial]
    assert response.certificates[0].serial_number != old_signer.serial_number
    assert response.this_update_utc == clock.now()
    actions = [e.action for e in Home(home.path).store.ledger_events()]
    assert actions.count("ocsp.signer-issued") == 4
    shown = run_cli("--home", home.path, "ca", "show").output
    assert new_serial in shown


def test_quickstart_builds_a_working_demo(tmp_path: Path, run_cli) -> None:
    result = run_cli("--json", "quickstart", "--dir", tmp_path / "demo", "--no-serve", "--port", "18123")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    home = Home(Path(data["home"]))
    assert home.config.ca.base_url == "http://127.0.0.1:18123"
    assert home.store.certificate(data["serial"]).status == "valid"
    assert (tmp_path / "demo" / "client.key").stat().st_mode & 0o777 == 0o600
    human = run_cli("quickstart", "--dir", tmp_path / "other", "--no-serve").output
    assert "openssl ocsp -issuer" in human and "ocsp serve" in human
    again = run_cli("quickstart", "--dir", tmp_path / "demo", "--no-serve")
    assert again.exit_code == 1 and "already exists" in again.output


def test_quickstart_next_steps_run_as_printed_without_the_venv_on_path(tmp_path: Path) -> None:
    """A newcomer pastes the next steps into a shell where the venv is not activated: the printed
    command must work there; and the demo keeps off 8080, where the officer's day serves its CA."""
    import subprocess

    from tests.conftest import run_kinko

    result = run_kinko("quickstart", "--dir", tmp_path / "demo", "--no-serve")
    assert result.returncode == 0, result.stderr
    steps = [line.strip() for line in result.stdout.splitlines() if line.strip().endswith(" cert list")]
    assert len(steps) == 1 and not steps[0].startswith("kinko "), result.stdout
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    listed = subprocess.run(["sh", "-c", steps[0]], env=bare, capture_output=True, text=True, timeout=60, check=False)
    assert listed.returncode == 0, listed.stderr
    assert "SERIAL" in listed.stdout
    assert "http://127.0.0.1:8088/" in result.stdout and ":8080" not in result.stdout
    assert Home(tmp_path / "demo" / "home").config.ca.base_url == "http://127.0.0.1:8088"


def test_healthz_fails_while_a_signer_is_expired_and_recovers_after_rotation(
    tmp_path: Path, passphrase_file: Path
) -> None:
    """nginx refuses every login when the responder's answers are refused: past its signer's end
    the responder says so on /healthz (503), and answers 200 again once a new signer is issued."""
    import datetime as dt
    import urllib.error
    import urllib.request

    import pytest

    from kinko.ca.clock import FixedClock
    from kinko.ca.hierarchy import InitOptions, create_home
    from kinko.ca.officers import current_login
    from tests.conftest import RunningResponder, run_kinko

    past = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=31))
    home = create_home(
        tmp_path / "home", InitOptions(organization="X", passphrase_file=passphrase_file), past, current_login()
    )
    home.store.close()
    responder = RunningResponder(home, unhealthy=True)
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(responder.url + "healthz", timeout=10)  # noqa: S310 - loopback
        assert refused.value.code == 503
        text = refused.value.read().decode()
        assert text.startswith("the OCSP signer of issuing is not valid now (it ends ")
        assert text.rstrip().endswith("run `kinko ocsp signer rotate`")
        rotated = run_kinko(
            "--home", home.path, "ocsp", "signer", "rotate", env={"KINKO_PASSPHRASE_FILE": str(passphrase_file)}
        )
        assert rotated.returncode == 0, rotated.stderr
        status = 0
        for _ in range(50):  # the responder looks for changes every 50 ms
            try:
                with urllib.request.urlopen(responder.url + "healthz", timeout=10) as reply:  # noqa: S310
                    status = reply.status
                    break
            except urllib.error.HTTPError:
                time.sleep(0.1)
        assert status == 200
    finally:
        responder.stop()


def test_lapsed_enrollments_are_recorded_once(home: Home, kinko: Kinko, clock) -> None:
    kinko.add_customer("C0001", "株式会社テスト")
    kinko.enroll_administrator("C0001", "山田 太郎", "C0001-A1")
    assert kinko.note_lapsed_enrollments() == 0
    clock.advance(days=80, seconds=1)
    kinko.publish_crl()  # the daily job notices
    events = [e for e in home.store.ledger_events() if e.action == "enrollment.expired-unused"]
    assert [(e.subscriber, e.customer) for e in events] == [("C0001-A1", "C0001")]
    kinko.refresh_ocsp()
    assert len([e for e in home.store.ledger_events() if e.action == "enrollment.expired-unused"]) == 1


def test_sha256_cert_ids_are_answered_on_demand(home: Home, kinko: Kinko, clock) -> None:
    issued = kinko.issue(make_csr(), name="A")
    answer = DatabaseSource(home.path, clock=clock).response(request_for(home, issued.pem, hashes.SHA256()))
    assert not answer.cacheable
    response = ocsp.load_der_ocsp_response(answer.body)
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD and response.hash_algorithm.name == "sha256"
