"""Revoke, hold, release and CRL publication through the CLI and library, against real SQLite."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography import x509

from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from tests.conftest import ROOT, make_csr, raw_execute, run_kinko


def counts(home: Home) -> dict[str, int]:
    return {
        "ledger": raw_execute(home, "SELECT COUNT(*) FROM ledger")[0][0],
        "crls": raw_execute(home, "SELECT COUNT(*) FROM crls")[0][0],
        "revoked": raw_execute(home, "SELECT COUNT(*) FROM certificates WHERE status != 'valid'")[0][0],
    }


def crl_serials(home: Home, name: str = "issuing") -> dict[int, x509.RevokedCertificate]:
    crl = x509.load_der_x509_crl((home.public_dir / "crl" / f"{name}.crl").read_bytes())
    return {entry.serial_number: entry for entry in crl}


def reason_of(entry: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


@pytest.fixture
def serial(kinko: Kinko) -> str:
    return kinko.issue(make_csr(), name="山田 太郎", organization="株式会社テスト").record.serial


def test_revoke_is_visible_in_the_crl_before_returning(home: Home, serial: str, run_cli) -> None:
    before = counts(home)
    result = run_cli(
        "--json",
        "--home",
        home.path,
        "revoke",
        serial,
        "--reason",
        "affiliation-changed",
        "--note",
        "moved to another company",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["status"] == "revoked" and data["revocation_reason"] == "affiliation-changed"
    assert [c["kind"] for c in data["crls_published"]] == ["full", "delta"]
    entry = crl_serials(home)[int(serial, 16)]
    assert reason_of(entry) == x509.ReasonFlags.affiliation_changed
    after = counts(home)
    assert after["revoked"] == before["revoked"] + 1
    assert after["ledger"] == before["ledger"] + 3  # revoked, full CRL, delta CRL
    events = list(home.store.ledger_events())
    revoked = [e for e in events if e.action == "certificate.revoked"][-1]
    assert revoked.serial == serial and json.loads(revoked.details)["note"] == "moved to another company"


def test_revoke_stores_and_shows_invalidity_and_reported_at(home: Home, serial: str, run_cli, clock) -> None:
    clock.advance(days=4)  # a compromise before the certificate's notBefore is refused
    invalid = (clock.now() - dt.timedelta(days=3)).astimezone(dt.timezone(dt.timedelta(hours=9)))
    reported = clock.now() - dt.timedelta(hours=2)
    result = run_cli(
        "--home",
        home.path,
        "revoke",
        serial,
        "--reason",
        "key-compromise",
        "--invalidity-date",
        invalid.isoformat(),
        "--reported-at",
        reported.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(run_cli("--json", "--home", home.path, "cert", "show", serial).output)
    assert shown["invalidity_date"] == invalid.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert shown["reported_at"] == reported.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert shown["status"] == "revoked"
    human = run_cli("--home", home.path, "cert", "show", serial).output
    assert "invalidity date" in human and "reported at" in human
    entry = crl_serials(home)[int(serial, 16)]
    invalidity = entry.extensions.get_extension_for_class(x509.InvalidityDate).value
    assert invalidity.invalidity_date_utc == invalid.astimezone(dt.UTC)


def test_reason_can_only_rise_to_key_compromise(home: Home, serial: str, run_cli) -> None:
    assert run_cli("--home", home.path, "revoke", serial, "--reason", "superseded").exit_code == 0
    before = counts(home)
    again = run_cli("--home", home.path, "revoke", serial, "--reason", "superseded")
    assert again.exit_code == 1 and "already revoked" in again.output and "revocation is final" in again.output
    other = run_cli("--home", home.path, "revoke", serial, "--reason", "privilege-withdrawn")
    assert other.exit_code == 1
    assert counts(home) == before
    raised = run_cli("--home", home.path, "revoke", serial, "--reason", "key-compromise")
    assert raised.exit_code == 0, raised.output
    assert reason_of(crl_serials(home)[int(serial, 16)]) == x509.ReasonFlags.key_compromise
    actions = [e.action for e in home.store.ledger_events()]
    assert "certificate.reason-changed" in actions
    assert run_cli("--home", home.path, "revoke", serial, "--reason", "key-compromise").exit_code == 1


def test_hold_and_release(home: Home, serial: str, run_cli) -> None:
    assert run_cli("--home", home.path, "hold", serial, "--note", "customer call").exit_code == 0
    assert reason_of(crl_serials(home)[int(serial, 16)]) == x509.ReasonFlags.certificate_hold
    assert json.loads(run_cli("--json", "--home", home.path, "cert", "show", serial).output)["status"] == "held"
    held_again = run_cli("--home", home.path, "hold", serial)
    assert held_again.exit_code == 1 and "only a valid certificate can be held" in held_again.output
    assert run_cli("--home", home.path, "release", serial).exit_code == 0
    assert int(serial, 16) not in crl_serials(home)
    shown = json.loads(run_cli("--json", "--home", home.path, "cert", "show", serial).output)
    assert shown["status"] == "valid" and shown["revoked_at"] is None
    # A held certificate can be revoked for good.
    assert run_cli("--home", home.path, "hold", serial).exit_code == 0
    assert run_cli("--home", home.path, "revoke", serial, "--reason", "key-compromise").exit_code == 0
    assert reason_of(crl_serials(home)[int(serial, 16)]) == x509.ReasonFlags.key_compromise
    assert run_cli("--home", home.path, "release", serial).exit_code == 1


def test_issuing_ca_revocation_goes_to_the_root_arl(home: Home, run_cli) -> None:
    issuing = home.store.authority("issuing")[0]
    assert run_cli("--home", home.path, "revoke", issuing, "--reason", "ca-compromise").exit_code == 0
    assert reason_of(crl_serials(home, "root")[int(issuing, 16)]) == x509.ReasonFlags.ca_compromise


def test_crl_show_lists_current_crls(home: Home, serial: str, run_cli) -> None:
    run_cli("--home", home.path, "revoke", serial, "--reason", "superseded")
    rows = json.loads(run_cli("--json", "--home", home.path, "crl", "show").output)
    by_kind = {(r["issuer"], r["kind"]): r for r in rows}
    assert by_kind[("issuing", "full")]["entries"] == 1
    assert by_kind[("issuing", "delta")]["base_number"] == by_kind[("issuing", "full")]["number"]
    assert Path(by_kind[("issuing", "full")]["der"]).exists()
    assert Path(by_kind[("root", "full")]["pem"]).read_bytes().startswith(b"-----BEGIN X509 CRL-----")
    human = run_cli("--home", home.path, "crl", "show").output
    assert "NUMBER" in human and "issuing.crl" in human


def test_expired_entries_leave_the_crl(home: Home, kinko: Kinko, clock) -> None:
    serial = kinko.issue(make_csr(), name="Short").record.serial
    kinko.revoke(serial, "superseded")
    assert int(serial, 16) in crl_serials(home)
    not_after = home.store.certificate(serial).not_after
    clock.set(dt.datetime.fromisoformat(not_after.replace("Z", "+00:00")) + dt.timedelta(seconds=1))
    kinko.publish_crl()
    assert int(serial, 16) not in crl_serials(home)


def test_retention_keeps_expired_entries_for_configured_days(home: Home, kinko: Kinko, clock) -> None:
    text = home.config_file.read_text(encoding="utf-8").replace("retention_days = 0", "retention_days = 30")
    home.config_file.write_text(text, encoding="utf-8")
    kinko = Kinko(Home(home.path), clock=clock)
    serial = kinko.issue(make_csr(), name="Kept").record.serial
    kinko.revoke(serial, "superseded")
    expiry = dt.datetime.fromisoformat(home.store.certificate(serial).not_after.replace("Z", "+00:00"))
    clock.set(expiry + dt.timedelta(days=29))
    kinko.publish_crl()
    assert int(serial, 16) in crl_serials(home)
    clock.set(expiry + dt.timedelta(days=30, seconds=1))
    kinko.publish_crl()
    assert int(serial, 16) not in crl_serials(home)


def test_large_crl_switches_to_delta_publication(home: Home, clock) -> None:
    text = home.config_file.read_text(encoding="utf-8").replace(
        "delta_after_entries = 10000", "delta_after_entries = 2"
    )
    home.config_file.write_text(text, encoding="utf-8")
    kinko = Kinko(Home(home.path), clock=clock)
    serials = [kinko.issue(make_csr(), name=f"U{i}").record.serial for i in range(4)]
    kinko.revoke(serials[0], "superseded")
    kinko.revoke(serials[1], "superseded")  # full CRL now holds 2 entries: the threshold
    full_number = home.store.latest_crl("issuing", "full").number
    change = kinko.hold(serials[2])
    assert [c.kind for c in change.crls] == ["delta"]
    assert home.store.latest_crl("issuing", "full").number == full_number
    change = kinko.release(serials[2])
    delta = x509.load_der_x509_crl(change.crls[0].der_path.read_bytes())
    entry = delta.get_revoked_certificate_by_serial_number(int(serials[2], 16))
    assert entry is not None and reason_of(entry) == x509.ReasonFlags.remove_from_crl
    assert delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number == full_number
    # The daily full publication folds the changes in and resets the delta.
    kinko.publish_crl()
    assert set(crl_serials(home)) == {int(serials[0], 16), int(serials[1], 16)}


# -- bad input: exit 1, a clear line, no change, no ledger row ----------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["revoke", "DEADBEEF", "--reason", "superseded"], "no certificate with serial DEADBEEF"),
        (["revoke", "{serial}", "--reason", "stolen"], "unknown revocation reason 'stolen'"),
        (["revoke", "{serial}", "--reason", "certificate-hold"], "unknown revocation reason"),
        (["revoke", "{serial}", "--reason", "ca-compromise"], "unknown revocation reason"),
        (["revoke", "not-hex", "--reason", "superseded"], "not a serial number"),
        (["revoke", "{serial}", "--reason", "key-compromise", "--invalidity-date", "{future}"], "in the future"),
        (["revoke", "{serial}", "--reason", "key-compromise", "--invalidity-date", "2026-13-01"], "is not a date"),
        (
            ["revoke", "{serial}", "--reason", "key-compromise", "--invalidity-date", "2026-01-01T00:00:00"],
            "has no time zone",
        ),
        (["revoke", "{serial}", "--reason", "superseded", "--reported-at", "{future}"], "reported-at"),
        (["release", "{serial}"], "is not on hold"),
        (["release", "ABCDEF"], "no certificate"),
        (["hold", "{root}"], "root CA certificate cannot be revoked or held"),
    ],
)
def test_bad_revocation_input_changes_nothing(home: Home, serial: str, run_cli, clock, args, message) -> None:
    future = (clock.now() + dt.timedelta(minutes=5)).isoformat()
    root = home.store.authority("root")[0]
    filled = [a.format(serial=serial, future=future, root=root) for a in args]
    before = counts(home)
    files = {p.name: p.read_bytes() for p in (home.public_dir / "crl").iterdir()}
    result = run_cli("--home", home.path, *filled)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kinko: error:") and message in lines[0]
    assert counts(home) == before
    assert {p.name: p.read_bytes() for p in (home.public_dir / "crl").iterdir()} == files


def test_revoking_an_expired_certificate_is_refused(home: Home, kinko: Kinko, serial: str, clock) -> None:
    not_after = home.store.certificate(serial).not_after
    clock.set(dt.datetime.fromisoformat(not_after.replace("Z", "+00:00")) + dt.timedelta(seconds=1))
    before = counts(home)
    result = run_kinko_with_clock(home, ["revoke", serial, "--reason", "key-compromise"], clock)
    assert result.exit_code == 1 and "expired" in result.output and "are not revoked" in result.output
    assert counts(home) == before


def run_kinko_with_clock(home: Home, args: list[str], clock):
    from click.testing import CliRunner

    from kinko import cli

    return CliRunner().invoke(cli.cli, ["--home", str(home.path), *args], obj={"clock": clock})


# -- CRL numbers: strictly increasing, never reused ---------------------------------------------


def crl_number(path: Path) -> int:
    return x509.load_der_x509_crl(path.read_bytes()).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_fifty_publications_strictly_increase(home: Home, kinko: Kinko) -> None:
    seen = []
    for _ in range(50):
        published = kinko.publish_crl()
        seen.extend(p.number for p in published)
        assert crl_number(published[0].der_path) == published[0].number
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    numbers = [n for n, _ in home.store.crl_numbers("issuing")]
    assert numbers == list(range(1, len(numbers) + 1))


def test_two_processes_publishing_at_once(home: Home) -> None:
    processes = [
        subprocess.Popen(
            [
                *(sys.executable, "-c", "from kinko import cli; cli.main()"),
                *("--home", str(home.path), "--json", "crl", "publish"),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    numbers = sorted(row["number"] for out, _ in outputs for row in json.loads(out))
    assert len(set(numbers)) == 4
    assert crl_number(home.public_dir / "crl" / "issuing.crl") == max(
        row["number"] for out, _ in outputs for row in json.loads(out) if row["kind"] == "full"
    )
    assert crl_number(home.public_dir / "crl" / "issuing-delta.crl") == max(numbers)


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from kinko.crl import builder
    original = builder.CRLBuilder.sign
    def dying(self, signer):
        result = original(self, signer)
        os.kill(os.getpid(), signal.SIGKILL)
        return result
    builder.CRLBuilder.sign = dying
    from kinko.ca.home import Home
    from kinko.ca.lifecycle import Kinko
    Kinko(Home(Path(sys.argv[1]))).publish_crl()
    """
)


def test_killed_publication_burns_its_number(home: Home, kinko: Kinko) -> None:
    last = kinko.publish_crl()[-1].number
    file_before = (home.public_dir / "crl" / "issuing.crl").read_bytes()
    ledger_before = counts(home)["ledger"]
    process = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(home.path)], cwd=ROOT, capture_output=True, timeout=60, check=False
    )
    assert process.returncode == -signal.SIGKILL, process.stderr
    # Nothing was published, nothing recorded, the old file is intact...
    assert (home.public_dir / "crl" / "issuing.crl").read_bytes() == file_before
    assert counts(home)["ledger"] == ledger_before
    assert (last + 1, "reserved") in home.store.crl_numbers("issuing")
    # ...and the next publication does not reuse the burnt number.
    result = run_kinko("--home", home.path, "--json", "crl", "publish")
    assert result.returncode == 0, result.stderr
    assert min(row["number"] for row in json.loads(result.stdout)) == last + 2
