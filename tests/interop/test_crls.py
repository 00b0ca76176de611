"""Kinko's CRLs as outside tools see them: openssl, GnuTLS certtool, pkilint, and cryptography.

Everything here runs the real tools on the CRL files Kinko publishes under public/crl/;
nothing is mocked. openssl and certtool (gnutls-bin) must be on PATH; pkilint's lint_crl
comes with the test extra (`pip install -e '.[test]'`).

openssl and certtool judge CRL times against the real clock, so the tests that run them
never move `clock` ahead of the real second the fixture started at.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kinko.ca.clock import FixedClock
from kinko.ca.hierarchy import InitOptions, create_home
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from kinko.ca.officers import current_login
from kinko.crl.publisher import crl_paths
from tests.conftest import ORG, make_csr
from tests.interop.tools import openssl, output, run, tool

HOLDER = "山田 太郎"
CUSTOMER = "株式会社テスト"
JST = dt.timezone(dt.timedelta(hours=9))
NEXT_UPDATE = dt.timedelta(hours=48)  # the shipped kinko.toml's crl.next_update_hours

# The reasons `kinko revoke` accepts for a client certificate, and how openssl names them.
OPENSSL_REASONS = {
    "key-compromise": "Key Compromise",
    "affiliation-changed": "Affiliation Changed",
    "superseded": "Superseded",
    "cessation-of-operation": "Cessation Of Operation",
    "privilege-withdrawn": "Privilege Withdrawn",
}
CRYPTOGRAPHY_REASONS = {
    "key-compromise": x509.ReasonFlags.key_compromise,
    "affiliation-changed": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessation-of-operation": x509.ReasonFlags.cessation_of_operation,
    "privilege-withdrawn": x509.ReasonFlags.privilege_withdrawn,
    "hold": x509.ReasonFlags.certificate_hold,
}


# ---------------------------------------------------------------- helpers


def full_crl(home: Home) -> tuple[Path, Path]:
    return crl_paths(home, "issuing", "full")


def delta_crl(home: Home) -> tuple[Path, Path]:
    return crl_paths(home, "issuing", "delta")


def root_arl(home: Home) -> tuple[Path, Path]:
    return crl_paths(home, "root", "full")


def load_crl(path: Path) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl(path.read_bytes())


def issue(kinko: Kinko, out: Path | None = None) -> tuple[str, x509.Certificate]:
    """Issues a client certificate; returns its serial (uppercase hex) and the certificate."""
    issued = kinko.issue(make_csr(), name=HOLDER, organization=CUSTOMER)
    if out is not None:
        out.write_text(issued.pem, encoding="ascii")
    return issued.record.serial, x509.load_pem_x509_certificate(issued.pem.encode("ascii"))


def openssl_verify(home: Home, crl_file: Path, client: Path, *, check_all: bool = False) -> tuple[bool, str]:
    """`openssl verify -crl_check[_all]` of a client against the home's chain; (verified, output)."""
    ca_dir = home.public_dir / "ca"
    result = openssl(
        "verify",
        "-crl_check_all" if check_all else "-crl_check",
        "-CAfile",
        ca_dir / "root.pem",
        "-untrusted",
        ca_dir / "issuing.pem",
        "-CRLfile",
        crl_file,
        client,
    )
    said = output(result)
    verified = result.returncode == 0 and result.stdout.decode("utf-8", "replace").rstrip().endswith(": OK")
    return verified, said


def assert_pkilint_clean(path: Path, crl_type: str = "CRL") -> None:
    result = run(tool("lint_crl"), "lint", "-t", crl_type, "-p", "PKIX", "-s", "ERROR", path)
    out = result.stdout.decode("utf-8", "replace")
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0 and not out.strip(), (
        f"pkilint (lint_crl -t {crl_type} -p PKIX -s ERROR) reported findings on {path.name} "
        f"(exit {result.returncode}):\n{out}{err}"
    )


def openssl_crl_text(path: Path) -> str:
    result = openssl("crl", "-text", "-noout", "-in", path)
    assert result.returncode == 0, output(result)
    return result.stdout.decode("utf-8", "replace")


def openssl_entries(crl_text: str) -> dict[int, list[str]]:
    """Splits `openssl crl -text` into {serial: the stripped lines of that serial's entry}."""
    if "No Revoked Certificates." in crl_text:
        return {}
    section = crl_text.split("Revoked Certificates:\n", 1)[1]
    section = section.split("\n    Signature Algorithm:", 1)[0]
    entries: dict[int, list[str]] = {}
    current: list[str] = []
    for line in section.splitlines():
        match = re.fullmatch(r"\s*Serial Number: ([0-9A-F]+)", line)
        if match:
            current = entries.setdefault(int(match.group(1), 16), [])
        elif line.strip():
            current.append(line.strip())
    return entries


def entry_value(lines: list[str], label: str) -> str | None:
    """The value of `label` in one openssl entry: openssl prints it on the line after the label."""
    for index, line in enumerate(lines[:-1]):
        if line.rstrip() == label + ":":
            return lines[index + 1]
    return None


def openssl_time(text: str) -> dt.datetime:
    match = re.fullmatch(r"(\w{3} +\d+ \d\d:\d\d:\d\d \d{4}) GMT", text.strip())
    assert match, f"not an openssl GMT time: {text!r}"
    return dt.datetime.strptime(match.group(1), "%b %d %H:%M:%S %Y").replace(tzinfo=dt.UTC)


def extension(crl: x509.CertificateRevocationList, kind: type[Any]) -> x509.Extension[Any]:
    return crl.extensions.get_extension_for_class(kind)


def crl_number(crl: x509.CertificateRevocationList) -> int:
    return int(extension(crl, x509.CRLNumber).value.crl_number)


def entry_reason(entry: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


def entry_invalidity_date(entry: x509.RevokedCertificate) -> dt.datetime | None:
    try:
        return entry.extensions.get_extension_for_class(x509.InvalidityDate).value.invalidity_date_utc
    except x509.ExtensionNotFound:
        return None


def with_delta_threshold(home: Home, clock: FixedClock, entries: int) -> Kinko:
    """A session on `home` whose revoke/hold/release publish deltas once the full CRL has `entries`."""
    config = home.config_file.read_text(encoding="utf-8")
    assert "delta_after_entries = 10000" in config, "the shipped kinko.toml changed; update this test"
    home.config_file.write_text(
        config.replace("delta_after_entries = 10000", f"delta_after_entries = {entries}"), encoding="utf-8"
    )
    fresh = Home(home.path)
    assert fresh.config.crl.delta_after_entries == entries
    return Kinko(fresh, clock=clock)


# ---------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class Revocations:
    """A full CRL holding every reason an officer can give, a hold, and invalidity dates."""

    reasons: dict[str, str]  # serial -> "unspecified", a REVOCATION_REASONS name, or "hold"
    invalidity: dict[str, dt.datetime]  # serial -> the invalidity date given (UTC)
    typed: dict[str, str]  # serial -> the --invalidity-date text as typed


@pytest.fixture
def clock() -> FixedClock:
    """The CA homes here are made three days in the past (`present` then brings the clock to now), so
    that certificates can be issued before the invalidity dates the revocations give: a compromise
    is never dated before notBefore, and nothing is signed before its signer existed."""
    return FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0) - CA_AGE)


CA_AGE = dt.timedelta(days=3)


@pytest.fixture(autouse=True)
def present(home: Home, clock: FixedClock) -> None:
    """Once the home exists, the real present: real clients check the CRLs' dates against it. The
    CRLs made with the home have lapsed by then: they are published again, as the daily job would."""
    clock.advance(seconds=CA_AGE.total_seconds())
    kinko = Kinko(home, clock=clock)
    kinko.publish_crl()
    kinko.publish_crl(root=True)


@pytest.fixture
def revocations(home: Home, kinko: Kinko, clock: FixedClock, run_cli: Callable[..., Any]) -> Revocations:
    """Revokes one certificate per reason through `kinko revoke`, holds one through `kinko hold`."""
    # The certificates are issued when the CA was made, three days ago; the revocations come now.
    now = clock.now()
    start = now - CA_AGE
    # Invalidity dates typed as a Japanese officer would (+09:00) and in UTC; both in the past.
    key_compromise_since = now - dt.timedelta(days=2, hours=3, minutes=25, seconds=7)
    superseded_since = now - dt.timedelta(minutes=41, seconds=13)
    typed = {
        "key-compromise": key_compromise_since.astimezone(JST).isoformat(),
        "superseded": superseded_since.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    assert typed["key-compromise"].endswith("+09:00")
    reasons: dict[str, str] = {}
    invalidity: dict[str, dt.datetime] = {}
    typed_by_serial: dict[str, str] = {}
    for reason in ("unspecified", *OPENSSL_REASONS, "hold"):
        clock.set(start)
        serial, _ = issue(kinko)
        clock.set(now)
        if reason == "hold":
            args: tuple[str, ...] = ("hold", serial)
        else:
            args = ("revoke", serial, "--reason", reason)
            if reason in typed:
                args = (*args, "--invalidity-date", typed[reason])
                typed_by_serial[serial] = typed[reason]
                invalidity[serial] = key_compromise_since if reason == "key-compromise" else superseded_since
        result = run_cli("--home", home.path, *args)
        assert result.exit_code == 0, result.output
        reasons[serial] = reason
    return Revocations(reasons, invalidity, typed_by_serial)


@dataclass(frozen=True)
class DeltaCase:
    """A delta CRL with a revocation, a hold, and a released hold (removeFromCRL)."""

    kinko: Kinko
    base_number: int
    revoked: str  # on the full CRL (key-compromise)
    held: str  # held after the full CRL: on the delta as certificateHold
    released: str  # held and released after the full CRL: on the delta as removeFromCRL
    superseded: str  # revoked after the full CRL: on the delta as superseded


@pytest.fixture
def delta_case(home: Home, clock: FixedClock) -> DeltaCase:
    kinko = with_delta_threshold(home, clock, 1)
    revoked, _ = issue(kinko)
    held, _ = issue(kinko)
    released, _ = issue(kinko)
    superseded, _ = issue(kinko)
    published = kinko.revoke(revoked, "key-compromise").crls
    # The full CRL had 0 entries (< 1) before this change, so it was republished with 1 entry.
    assert [p.kind for p in published] == ["full", "delta"], published
    base_number = published[0].number
    for change in (
        lambda: kinko.hold(released),
        lambda: kinko.hold(held),
        lambda: kinko.revoke(superseded, "superseded"),
        lambda: kinko.release(released),
    ):
        crls = change().crls
        assert [(p.kind, p.base_number) for p in crls] == [("delta", base_number)], crls
    return DeltaCase(kinko, base_number, revoked, held, released, superseded)


# ---------------------------------------------------------------- 1. openssl verify -crl_check


def test_openssl_crl_check_accepts_good_and_rejects_revoked(home: Home, kinko: Kinko, tmp_path: Path) -> None:
    good_serial, _ = issue(kinko, tmp_path / "good.pem")
    bad_serial, _ = issue(kinko, tmp_path / "bad.pem")
    kinko.revoke(bad_serial, "key-compromise")
    crl_pem = full_crl(home)[1]

    verified, said = openssl_verify(home, crl_pem, tmp_path / "good.pem")
    assert verified, f"good certificate {good_serial} rejected with the CRL:\n{said}"
    verified, said = openssl_verify(home, crl_pem, tmp_path / "bad.pem")
    assert not verified, f"revoked certificate {bad_serial} accepted:\n{said}"
    assert "certificate revoked" in said, said


def test_openssl_crl_check_rejects_held_and_accepts_released(home: Home, kinko: Kinko, tmp_path: Path) -> None:
    client = tmp_path / "client.pem"
    serial, _ = issue(kinko, client)
    crl_pem = full_crl(home)[1]
    verified, said = openssl_verify(home, crl_pem, client)
    assert verified, said

    kinko.hold(serial)
    held_crl = tmp_path / "held-crl.pem"
    shutil.copyfile(crl_pem, held_crl)
    verified, said = openssl_verify(home, held_crl, client)
    assert not verified, f"held certificate {serial} accepted:\n{said}"
    assert "certificate revoked" in said, said

    kinko.release(serial)
    verified, said = openssl_verify(home, crl_pem, client)
    assert verified, f"released certificate {serial} still rejected with the new CRL:\n{said}"
    # The CRL from before the release still rejects it: it is the new file that lets it back in.
    verified, said = openssl_verify(home, held_crl, client)
    assert not verified and "certificate revoked" in said, said


def test_openssl_crl_check_all_uses_the_root_arl(home: Home, kinko: Kinko, tmp_path: Path) -> None:
    good = tmp_path / "good.pem"
    bad = tmp_path / "bad.pem"
    issue(kinko, good)
    bad_serial, _ = issue(kinko, bad)
    kinko.revoke(bad_serial, "cessation-of-operation")
    kinko.publish_crl(root=True)
    both = tmp_path / "crls.pem"
    both.write_bytes(full_crl(home)[1].read_bytes() + root_arl(home)[1].read_bytes())

    verified, said = openssl_verify(home, both, good, check_all=True)
    # -crl_check_all is what nginx's ssl_crl turns on: it checks every certificate of the chain,
    # the self-signed root included, so the root must fall within the scope of some CRL.
    assert verified, f"good certificate rejected with -crl_check_all and the issuing CRL + root ARL:\n{said}"
    verified, said = openssl_verify(home, both, bad, check_all=True)
    assert not verified and "certificate revoked" in said, said
    # Without the ARL the issuing CA's own status is unknown: so the ARL above was really used.
    verified, said = openssl_verify(home, full_crl(home)[1], good, check_all=True)
    assert not verified and "unable to get certificate CRL" in said, said


def test_openssl_crl_check_all_single_tier(tmp_path: Path, clock: FixedClock, passphrase_file: Path) -> None:
    home = create_home(
        tmp_path / "single",
        InitOptions(organization=ORG, single_tier=True, passphrase_file=passphrase_file),
        clock,
        current_login(),
    )
    kinko = Kinko(home, clock=clock)
    good, bad = tmp_path / "good.pem", tmp_path / "bad.pem"
    issue(kinko, good)
    bad_serial, _ = issue(kinko, bad)
    kinko.revoke(bad_serial, "privilege-withdrawn")
    root_ca = home.public_dir / "ca" / "root.pem"
    crl_file = crl_paths(home, "root", "full")[1]

    def verify(client: Path, *flags: str) -> tuple[bool, str]:
        result = openssl("verify", *flags, "-CAfile", root_ca, "-CRLfile", crl_file, client)
        return result.returncode == 0 and result.stdout.decode().rstrip().endswith(": OK"), output(result)

    verified, said = verify(bad, "-crl_check")
    assert not verified and "certificate revoked" in said, said
    verified, said = verify(good, "-crl_check")
    assert verified, said
    verified, said = verify(good, "-crl_check_all")
    assert verified, f"single-tier: good certificate rejected with -crl_check_all and the root's CRL:\n{said}"


# ---------------------------------------------------------------- 2. openssl crl -text


def test_openssl_shows_every_reason_and_invalidity_date(home: Home, revocations: Revocations) -> None:
    entries = openssl_entries(openssl_crl_text(full_crl(home)[1]))
    assert set(entries) == {int(s, 16) for s in revocations.reasons}, entries
    for serial, reason in revocations.reasons.items():
        lines = entries[int(serial, 16)]
        shown = entry_value(lines, "X509v3 CRL Reason Code")
        if reason == "unspecified":
            assert shown is None, f"{serial}: unspecified should omit reasonCode, openssl shows {lines}"
        elif reason == "hold":
            assert shown == "Certificate Hold", lines
        else:
            assert shown == OPENSSL_REASONS[reason], lines
        invalidity = entry_value(lines, "Invalidity Date")
        if serial in revocations.invalidity:
            assert invalidity is not None, f"{serial}: no invalidity date ({revocations.typed[serial]}): {lines}"
            assert openssl_time(invalidity) == revocations.invalidity[serial], (revocations.typed[serial], lines)
        else:
            assert invalidity is None, lines
    # The +09:00 date is shown converted to GMT, to the second.
    key_serial = next(s for s, r in revocations.reasons.items() if r == "key-compromise")
    expected = revocations.invalidity[key_serial].astimezone(dt.UTC)
    shown = entry_value(entries[int(key_serial, 16)], "Invalidity Date")
    assert shown == f"{expected:%b} {expected.day:2d} {expected:%H:%M:%S %Y} GMT", shown


def test_openssl_shows_remove_from_crl_in_the_delta(home: Home, delta_case: DeltaCase) -> None:
    delta_text = openssl_crl_text(delta_crl(home)[1])
    assert re.search(r"X509v3 Delta CRL Indicator: critical\n\s+" + str(delta_case.base_number) + "\n", delta_text), (
        delta_text
    )
    entries = openssl_entries(delta_text)
    assert set(entries) == {int(s, 16) for s in (delta_case.held, delta_case.released, delta_case.superseded)}
    assert entry_value(entries[int(delta_case.released, 16)], "X509v3 CRL Reason Code") == "Remove From CRL"
    assert entry_value(entries[int(delta_case.held, 16)], "X509v3 CRL Reason Code") == "Certificate Hold"
    assert entry_value(entries[int(delta_case.superseded, 16)], "X509v3 CRL Reason Code") == "Superseded"
    # The full CRL it updates still has only the first revocation.
    assert set(openssl_entries(openssl_crl_text(full_crl(home)[1]))) == {int(delta_case.revoked, 16)}


# ---------------------------------------------------------------- 3. GnuTLS certtool


@pytest.mark.parametrize("kind", ["full", "delta"])
def test_certtool_verifies_crl_signature(home: Home, revocations: Revocations, kind: str) -> None:
    crl_pem = crl_paths(home, "issuing", kind)[1]
    ca_dir = home.public_dir / "ca"
    good = run(tool("certtool"), "--verify-crl", "--load-ca-certificate", ca_dir / "issuing.pem", "--infile", crl_pem)
    assert good.returncode == 0, output(good)
    assert "Verification output: Verified." in output(good), output(good)

    wrong = run(tool("certtool"), "--verify-crl", "--load-ca-certificate", ca_dir / "root.pem", "--infile", crl_pem)
    assert wrong.returncode != 0, f"certtool verified the issuing CA's CRL with the root as CA:\n{output(wrong)}"
    assert "Not verified" in output(wrong), output(wrong)


def test_certtool_verifies_root_arl(home: Home, kinko: Kinko) -> None:
    kinko.publish_crl(root=True)
    ca_dir = home.public_dir / "ca"
    arl = root_arl(home)[1]
    good = run(tool("certtool"), "--verify-crl", "--load-ca-certificate", ca_dir / "root.pem", "--infile", arl)
    assert good.returncode == 0 and "Verification output: Verified." in output(good), output(good)
    wrong = run(tool("certtool"), "--verify-crl", "--load-ca-certificate", ca_dir / "issuing.pem", "--infile", arl)
    assert wrong.returncode != 0 and "Not verified" in output(wrong), output(wrong)


# ---------------------------------------------------------------- 4. pkilint


@pytest.mark.parametrize("form", ["der", "pem"])
def test_pkilint_full_crl_with_every_reason(home: Home, revocations: Revocations, form: str) -> None:
    der, pem = full_crl(home)
    assert len(load_crl(pem)) == len(revocations.reasons)
    assert_pkilint_clean(der if form == "der" else pem)


def test_pkilint_empty_crls_of_a_new_home(home: Home) -> None:
    # `kinko init` published issuing CRL #1, its empty delta, and the root's ARL.
    for path in (full_crl(home)[0], delta_crl(home)[0]):
        assert len(x509.load_der_x509_crl(path.read_bytes())) == 0
        assert_pkilint_clean(path)
    assert len(x509.load_der_x509_crl(root_arl(home)[0].read_bytes())) == 0
    assert_pkilint_clean(root_arl(home)[0], "ARL")


def test_pkilint_delta_crl_with_remove_from_crl(home: Home, delta_case: DeltaCase) -> None:
    der = delta_crl(home)[0]
    reasons = {entry_reason(e) for e in x509.load_der_x509_crl(der.read_bytes())}
    assert x509.ReasonFlags.remove_from_crl in reasons
    assert_pkilint_clean(der)
    assert_pkilint_clean(full_crl(home)[0])


def test_pkilint_delta_crl_with_every_reason(home: Home, clock: FixedClock) -> None:
    kinko = with_delta_threshold(home, clock, 0)  # every change after the first full CRL is a delta
    now = clock.now()
    since = now - dt.timedelta(hours=5)
    for reason in ("unspecified", *OPENSSL_REASONS):
        clock.set(now - dt.timedelta(hours=6))  # issued before the invalidity date
        serial, _ = issue(kinko)
        clock.set(now)
        crls = kinko.revoke(serial, reason, invalidity_date=since if reason == "key-compromise" else None).crls
        assert [p.kind for p in crls] == ["delta"], crls
    serial, _ = issue(kinko)
    kinko.hold(serial)
    delta = x509.load_der_x509_crl(delta_crl(home)[0].read_bytes())
    assert len(delta) == len(OPENSSL_REASONS) + 2
    assert_pkilint_clean(delta_crl(home)[0])


def test_pkilint_root_arl(home: Home, kinko: Kinko) -> None:
    kinko.publish_crl(root=True)
    assert_pkilint_clean(root_arl(home)[0], "ARL")
    assert_pkilint_clean(root_arl(home)[1], "ARL")


def test_pkilint_root_arl_with_the_issuing_ca_revoked(home: Home, kinko: Kinko) -> None:
    issuing_serial = format(home.ca_certificate("issuing").serial_number, "X")
    crls = kinko.revoke(issuing_serial, "ca-compromise").crls
    assert [(p.issuer, p.entries) for p in crls] == [("root", 1)], crls
    arl = x509.load_der_x509_crl(root_arl(home)[0].read_bytes())
    assert [entry_reason(e) for e in arl] == [x509.ReasonFlags.ca_compromise]
    assert_pkilint_clean(root_arl(home)[0], "ARL")


# ---------------------------------------------------------------- 5. structure, per cryptography


def test_full_and_delta_crl_structure(home: Home, kinko: Kinko, clock: FixedClock, tmp_path: Path) -> None:
    _, client = issue(kinko)
    issuing = home.ca_certificate("issuing")
    issuing_ski = issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    client_cdp = client.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    client_freshest = client.extensions.get_extension_for_class(x509.FreshestCRL).value
    assert len(client_cdp) == 1 and len(client_freshest) == 1

    initial_full = load_crl(full_crl(home)[1])
    initial_delta = load_crl(delta_crl(home)[1])
    last_number = crl_number(initial_delta)
    assert crl_number(initial_full) < last_number

    for step in range(3):
        clock.advance(seconds=1)
        published = kinko.publish_crl()
        assert [p.kind for p in published] == ["full", "delta"]
        full, delta = load_crl(full_crl(home)[1]), load_crl(delta_crl(home)[1])

        # Full and delta share one strictly increasing sequence of numbers.
        assert crl_number(full) == last_number + 1, step
        assert crl_number(delta) == crl_number(full) + 1, step
        last_number = crl_number(delta)

        for crl in (full, delta):
            assert crl.is_signature_valid(issuing.public_key())
            assert crl.issuer == issuing.subject
            assert crl.last_update_utc == clock.now()
            assert crl.next_update_utc == clock.now() + NEXT_UPDATE
            aki = extension(crl, x509.AuthorityKeyIdentifier)
            assert not aki.critical
            assert aki.value.key_identifier == issuing_ski
            assert not extension(crl, x509.CRLNumber).critical
            # Unpartitioned, every certificate of the CA: no IDP (RFC 5280 5.2.5), which NSS refuses.
            with pytest.raises(x509.ExtensionNotFound):
                extension(crl, x509.IssuingDistributionPoint)

        freshest = extension(full, x509.FreshestCRL)
        assert not freshest.critical
        assert [p.full_name for p in freshest.value] == [p.full_name for p in client_freshest]
        with pytest.raises(x509.ExtensionNotFound):
            extension(full, x509.DeltaCRLIndicator)

        indicator = extension(delta, x509.DeltaCRLIndicator)
        assert indicator.critical
        assert indicator.value.crl_number == crl_number(full)
        with pytest.raises(x509.ExtensionNotFound):
            extension(delta, x509.FreshestCRL)


def test_delta_crl_entries_per_cryptography(home: Home, delta_case: DeltaCase, clock: FixedClock) -> None:
    full, delta = load_crl(full_crl(home)[1]), load_crl(delta_crl(home)[1])
    assert crl_number(full) == delta_case.base_number
    assert extension(delta, x509.DeltaCRLIndicator).value.crl_number == delta_case.base_number
    assert crl_number(delta) > delta_case.base_number
    assert delta.is_signature_valid(home.ca_certificate("issuing").public_key())
    reasons = {format(e.serial_number, "X"): entry_reason(e) for e in delta}
    expected = {
        delta_case.held: x509.ReasonFlags.certificate_hold,
        delta_case.released: x509.ReasonFlags.remove_from_crl,
        delta_case.superseded: x509.ReasonFlags.superseded,
    }
    assert reasons == {format(int(s, 16), "X"): r for s, r in expected.items()}
    for entry in delta:
        assert entry.revocation_date_utc == clock.now()
        assert entry_invalidity_date(entry) is None
    assert [format(e.serial_number, "X") for e in full] == [format(int(delta_case.revoked, 16), "X")]


def test_full_crl_entries_per_cryptography(home: Home, revocations: Revocations, clock: FixedClock) -> None:
    crl = load_crl(full_crl(home)[1])
    found = {e.serial_number: e for e in crl}
    assert set(found) == {int(s, 16) for s in revocations.reasons}
    for serial, reason in revocations.reasons.items():
        entry = found[int(serial, 16)]
        assert entry.revocation_date_utc == clock.now()
        assert entry_reason(entry) == (None if reason == "unspecified" else CRYPTOGRAPHY_REASONS[reason]), serial
        assert entry_invalidity_date(entry) == revocations.invalidity.get(serial), serial


def test_root_arl_structure(home: Home, kinko: Kinko, clock: FixedClock) -> None:
    before = crl_number(load_crl(root_arl(home)[1]))
    clock.advance(seconds=1)
    kinko.publish_crl(root=True)
    arl = load_crl(root_arl(home)[1])
    root = home.ca_certificate("root")
    issuing = home.ca_certificate("issuing")

    assert crl_number(arl) == before + 1
    assert arl.is_signature_valid(root.public_key())
    assert arl.issuer == root.subject
    assert arl.last_update_utc == clock.now()
    assert arl.next_update_utc == clock.now() + dt.timedelta(days=35)  # crl.arl_next_update_days
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert extension(arl, x509.AuthorityKeyIdentifier).value.key_identifier == root_ski
    assert issuing.extensions.get_extension_for_class(x509.CRLDistributionPoints).value[0].full_name
    # The root's one CRL covers all it issued: no IDP, so NSS imports it (tests/interop/test_nss.py).
    for absent in (x509.IssuingDistributionPoint, x509.FreshestCRL, x509.DeltaCRLIndicator):
        with pytest.raises(x509.ExtensionNotFound):
            extension(arl, absent)
    assert not crl_paths(home, "root", "delta")[0].exists()


@pytest.mark.parametrize("which", ["issuing-full", "issuing-delta", "root"])
def test_der_and_pem_files_hold_the_same_crl(home: Home, revocations: Revocations, which: str) -> None:
    issuer, _, kind = which.partition("-")
    der_path, pem_path = crl_paths(home, issuer, kind or "full")
    der = der_path.read_bytes()
    assert der[:1] == b"\x30" and b"-----BEGIN" not in der
    pem = pem_path.read_bytes()
    assert pem.startswith(b"-----BEGIN X509 CRL-----\n") and pem.endswith(b"-----END X509 CRL-----\n")
    from_pem = x509.load_pem_x509_crl(pem)
    assert from_pem.public_bytes(serialization.Encoding.DER) == der
    assert x509.load_der_x509_crl(der) == from_pem
    # openssl reads both forms to the same bytes.
    converted = openssl("crl", "-inform", "DER", "-in", der_path, "-outform", "PEM")
    assert converted.returncode == 0, output(converted)
    assert converted.stdout == pem
