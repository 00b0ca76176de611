"""Kinko's certificates as outside tools see them: pkilint, openssl, and an independent parse.

Everything here runs the real tools on real certificates written to tmp_path; nothing is mocked.
pkilint comes with the test extra (`pip install -e '.[test]'`); openssl must be on PATH.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import subprocess
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from kinko.ca.clock import FixedClock
from kinko.ca.hierarchy import InitOptions, create_home
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from kinko.ca.officers import current_login
from tests.conftest import ORG, make_csr, make_key
from tests.interop.tools import openssl, run, tool

HOLDER = "山田 太郎"
CUSTOMER = "株式会社テスト"
CLIENT_KEY_TYPES = ("ec-p256", "ec-p384", "rsa-2048")


# ---------------------------------------------------------------- helpers


def new_home(
    path: Path, clock: FixedClock, passphrase_file: Path, *, key_type: str = "ec-p256", single_tier: bool = False
) -> Home:
    options = InitOptions(organization=ORG, key_type=key_type, single_tier=single_tier, passphrase_file=passphrase_file)
    return create_home(path, options, clock, current_login())


def issue_client(home: Home, clock: FixedClock, key_type: str, out: Path) -> Path:
    """Issues a client certificate for a fresh key of `key_type` and writes its PEM to `out`."""
    issued = Kinko(home, clock=clock).issue(make_csr(make_key(key_type)), name=HOLDER, organization=CUSTOMER)
    out.write_text(issued.pem, encoding="ascii")
    return out


def write_pem(certificate: x509.Certificate, out: Path) -> Path:
    out.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return out


def text(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode("utf-8")


def assert_pkilint_clean(path: Path) -> None:
    result = run(tool("lint_pkix_cert"), "lint", "-s", "ERROR", path)
    out = result.stdout.decode("utf-8", "replace")
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0 and not out.strip(), (
        f"pkilint (-s ERROR) reported findings on {path.name} (exit {result.returncode}):\n{out}{err}"
    )


def one_calendar_year_minus_one_second(start: dt.datetime) -> dt.datetime:
    """Independent of ca.profiles: same wall time a year later (Feb 29 -> Feb 28), minus 1 s."""
    year = start.year + 1
    day = min(start.day, calendar.monthrange(year, start.month)[1])
    return start.replace(year=year, day=day) - dt.timedelta(seconds=1)


def openssl_extensions(certificate_text: str) -> dict[str, tuple[bool, list[str]]]:
    """Parses `openssl x509 -text` extensions into {name: (critical, value lines)}."""
    section = certificate_text.split("X509v3 extensions:\n", 1)[1]
    section = section.split("\n    Signature Algorithm:", 1)[0]
    extensions: dict[str, tuple[bool, list[str]]] = {}
    current = ""
    for line in section.splitlines():
        if not line.strip():
            continue
        if line.startswith(" " * 16):
            extensions[current][1].append(line.strip())
        else:
            name, _, rest = line.strip().partition(":")
            current = name
            extensions[name] = (rest.strip() == "critical", [])
    return extensions


def openssl_time(certificate_text: str, label: str) -> dt.datetime:
    match = re.search(rf"{label}\s*: (\w{{3}} +\d+ \d\d:\d\d:\d\d \d{{4}}) GMT", certificate_text)
    assert match, f"no {label} in openssl output:\n{certificate_text}"
    return dt.datetime.strptime(match.group(1), "%b %d %H:%M:%S %Y").replace(tzinfo=dt.UTC)


def colon_hex(data: bytes) -> str:
    return data.hex(":").upper()


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def client_pem(home: Home, clock: FixedClock, tmp_path: Path) -> Path:
    """An EC P-256 client certificate from the two-tier `home`."""
    return issue_client(home, clock, "ec-p256", tmp_path / "client.pem")


# ---------------------------------------------------------------- 1. pkilint


@pytest.mark.parametrize("ca_key_type", ["ec-p256", "rsa-3072"])
@pytest.mark.parametrize("subject", ["root", "issuing", "ocsp:issuing", *(f"client-{k}" for k in CLIENT_KEY_TYPES)])
def test_pkilint_finds_no_errors(
    tmp_path: Path, clock: FixedClock, passphrase_file: Path, ca_key_type: str, subject: str
) -> None:
    home = new_home(tmp_path / "home", clock, passphrase_file, key_type=ca_key_type)
    if subject in ("root", "issuing"):
        path = home.public_dir / "ca" / f"{subject}.pem"
    elif subject == "ocsp:issuing":
        path = write_pem(home.ca_certificate("ocsp:issuing"), tmp_path / "ocsp-signer.pem")
    else:
        path = issue_client(home, clock, subject.removeprefix("client-"), tmp_path / "client.pem")
    assert path.is_file()
    assert_pkilint_clean(path)


# ---------------------------------------------------------------- 2. openssl verify


@pytest.mark.parametrize("client_key_type", CLIENT_KEY_TYPES)
def test_openssl_verifies_chain_to_root(home: Home, clock: FixedClock, tmp_path: Path, client_key_type: str) -> None:
    client = issue_client(home, clock, client_key_type, tmp_path / "client.pem")
    ca_dir = home.public_dir / "ca"
    result = openssl("verify", "-CAfile", ca_dir / "root.pem", "-untrusted", ca_dir / "issuing.pem", client)
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")
    assert text(result).rstrip().endswith(": OK"), text(result)
    # The same chain under RFC 5280 strict checks and the TLS-client purpose the certificate is for.
    strict = openssl(
        "verify",
        "-x509_strict",
        "-purpose",
        "sslclient",
        "-CAfile",
        ca_dir / "root.pem",
        "-untrusted",
        ca_dir / "issuing.pem",
        client,
    )
    assert strict.returncode == 0, text(strict) + strict.stderr.decode("utf-8", "replace")
    assert text(strict).rstrip().endswith(": OK"), text(strict)


def test_openssl_verifies_single_tier_against_root_alone(
    tmp_path: Path, clock: FixedClock, passphrase_file: Path
) -> None:
    home = new_home(tmp_path / "home", clock, passphrase_file, single_tier=True)
    assert not (home.public_dir / "ca" / "issuing.pem").exists()
    client = issue_client(home, clock, "ec-p256", tmp_path / "client.pem")
    result = openssl("verify", "-CAfile", home.public_dir / "ca" / "root.pem", client)
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")
    assert text(result).rstrip().endswith(": OK"), text(result)


def test_openssl_rejects_client_against_another_homes_root(
    home: Home, client_pem: Path, tmp_path: Path, clock: FixedClock, passphrase_file: Path
) -> None:
    # Same organisation, so the other home's CA names are identical: only the keys differ.
    other = new_home(tmp_path / "other", clock, passphrase_file)
    other_ca = other.public_dir / "ca"
    assert other.ca_certificate("issuing").subject == home.ca_certificate("issuing").subject
    for untrusted in (home.public_dir / "ca" / "issuing.pem", other_ca / "issuing.pem"):
        result = openssl("verify", "-CAfile", other_ca / "root.pem", "-untrusted", untrusted, client_pem)
        assert result.returncode != 0, f"verified against a foreign root:\n{text(result)}"
        assert not text(result).rstrip().endswith(": OK")


# ---------------------------------------------------------------- 3. Japanese names


def test_openssl_shows_japanese_names_intact(home: Home, client_pem: Path) -> None:
    subject = openssl("x509", "-nameopt", "utf8", "-noout", "-subject", "-in", client_pem)
    assert subject.returncode == 0, subject.stderr.decode("utf-8", "replace")
    subject_text = text(subject)
    assert "CN=山田 太郎" in subject_text, subject_text
    assert "O=株式会社テスト" in subject_text, subject_text

    issuer = openssl("x509", "-nameopt", "utf8", "-noout", "-issuer", "-in", client_pem)
    assert issuer.returncode == 0, issuer.stderr.decode("utf-8", "replace")
    issuer_text = text(issuer)
    assert f"O={ORG}" in issuer_text, issuer_text
    assert f"CN={ORG} Issuing CA" in issuer_text, issuer_text


# ---------------------------------------------------------------- 4. the client profile


def test_client_certificate_matches_profile_per_openssl(home: Home, client_pem: Path, clock: FixedClock) -> None:
    result = openssl("x509", "-noout", "-text", "-in", client_pem)
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")
    dump = text(result)
    extensions = openssl_extensions(dump)
    base = home.config.ca.base_url
    issuing_ski = home.ca_certificate("issuing").extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    own_key = x509.load_pem_x509_certificate(client_pem.read_bytes()).public_key()

    assert extensions["X509v3 Key Usage"] == (True, ["Digital Signature"])
    assert extensions["X509v3 Extended Key Usage"][1] == ["TLS Web Client Authentication"]
    assert extensions["X509v3 Basic Constraints"] == (True, ["CA:FALSE"])
    assert extensions["X509v3 Subject Key Identifier"][1] == [
        colon_hex(x509.SubjectKeyIdentifier.from_public_key(own_key).digest)
    ]
    assert extensions["X509v3 Authority Key Identifier"][1] == [colon_hex(issuing_ski.value.digest)]
    assert extensions["X509v3 CRL Distribution Points"][1] == ["Full Name:", f"URI:{base}/crl/issuing.crl"]
    assert extensions["Authority Information Access"][1] == [
        f"OCSP - URI:{base}/",
        f"CA Issuers - URI:{base}/ca/issuing.cer",
    ]
    assert extensions["X509v3 Certificate Policies"][1] == [f"Policy: {home.config.ca.policy_oid}"]

    not_before = openssl_time(dump, "Not Before")
    not_after = openssl_time(dump, "Not After")
    assert not_before == clock.now()
    assert not_after == one_calendar_year_minus_one_second(not_before)

    serial = openssl("x509", "-noout", "-serial", "-in", client_pem)
    assert serial.returncode == 0, serial.stderr.decode("utf-8", "replace")
    serial_hex = text(serial).strip().removeprefix("serial=")
    assert re.fullmatch(r"[0-9A-F]+", serial_hex), text(serial)
    assert "(Negative)" not in dump
    octets = bytes.fromhex(serial_hex.rjust(len(serial_hex) + len(serial_hex) % 2, "0")).lstrip(b"\x00")
    assert int.from_bytes(octets, "big") > 0
    # openssl prints the magnitude; DER adds a 0x00 octet when its top bit is set.
    assert len(octets) + (octets[0] >> 7) <= 20


def test_client_certificate_matches_profile_per_cryptography(home: Home, client_pem: Path, clock: FixedClock) -> None:
    cert = x509.load_pem_x509_certificate(client_pem.read_bytes())
    issuing = home.ca_certificate("issuing")
    base = home.config.ca.base_url
    ext = cert.extensions

    key_usage = ext.get_extension_for_class(x509.KeyUsage)
    assert key_usage.critical
    assert key_usage.value.digital_signature
    assert not any(
        (
            key_usage.value.content_commitment,
            key_usage.value.key_encipherment,
            key_usage.value.data_encipherment,
            key_usage.value.key_agreement,
            key_usage.value.key_cert_sign,
            key_usage.value.crl_sign,
        )
    )

    assert list(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]

    basic = ext.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca is False
    assert basic.value.path_length is None

    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert cert.issuer == issuing.subject

    points = ext.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [p.full_name for p in points] == [[x509.UniformResourceIdentifier(f"{base}/crl/issuing.crl")]]

    aia = ext.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [(d.access_method, d.access_location.value) for d in aia] == [
        (AuthorityInformationAccessOID.OCSP, f"{base}/"),
        (AuthorityInformationAccessOID.CA_ISSUERS, f"{base}/ca/issuing.cer"),
    ]

    policies = ext.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == [home.config.ca.policy_oid]

    assert cert.not_valid_before_utc == clock.now()
    assert cert.not_valid_after_utc == one_calendar_year_minus_one_second(cert.not_valid_before_utc)

    assert cert.serial_number > 0
    der_serial = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))["tbs_certificate"][
        "serial_number"
    ]
    assert 1 <= len(der_serial.contents) <= 20
    assert der_serial.native == cert.serial_number

    subject = {a.oid: a for a in cert.subject}
    assert subject[NameOID.COMMON_NAME].value == HOLDER
    assert subject[NameOID.ORGANIZATION_NAME].value == CUSTOMER
    for attribute in cert.subject:
        assert attribute._type == x509.name._ASN1Type.UTF8String, attribute
    # The same, decoded independently of cryptography.
    asn1_subject = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)).subject
    for rdn in asn1_subject.chosen:
        for type_and_value in rdn:
            assert type_and_value["value"].name == "utf8_string", type_and_value.native


def test_not_after_is_one_calendar_year_on_leap_day(home: Home, clock: FixedClock, tmp_path: Path) -> None:
    """Feb 29 has no anniversary: the year ends Feb 28, one second before the same wall time."""
    # The CAs were made "now" and last 10 years: the next Feb 29 (within 8 years) plus one year
    # still ends inside the issuing CA's lifetime, so issuing then is legal.
    year = next(y for y in range(clock.now().year, clock.now().year + 8) if calendar.isleap(y))
    leap_day = dt.datetime(year, 2, 29, 9, 30, 15, tzinfo=dt.UTC)
    if leap_day < clock.now():
        year = next(y for y in range(year + 1, year + 9) if calendar.isleap(y))
        leap_day = leap_day.replace(year=year)
    clock.set(leap_day)
    cert = x509.load_pem_x509_certificate(issue_client(home, clock, "ec-p256", tmp_path / "c.pem").read_bytes())
    assert cert.not_valid_before_utc == leap_day
    assert cert.not_valid_after_utc == dt.datetime(year + 1, 2, 28, 9, 30, 14, tzinfo=dt.UTC)


# ---------------------------------------------------------------- 5. AIA caIssuers is served


@pytest.mark.parametrize("single_tier", [False, True], ids=["two-tier", "single-tier"])
def test_ca_issuers_url_points_at_a_der_file_in_public(
    tmp_path: Path, clock: FixedClock, passphrase_file: Path, single_tier: bool
) -> None:
    home = new_home(tmp_path / "home", clock, passphrase_file, single_tier=single_tier)
    cert = x509.load_pem_x509_certificate(issue_client(home, clock, "ec-p256", tmp_path / "client.pem").read_bytes())
    base = home.config.ca.base_url
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    urls = [d.access_location.value for d in aia if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS]
    assert len(urls) == 1
    assert urls[0].startswith(base + "/"), urls[0]
    served = home.public_dir / urls[0].removeprefix(base + "/")
    assert served.is_file(), f"{urls[0]} is not served: {served} is missing"

    data = served.read_bytes()
    assert data[:1] == b"\x30" and b"-----BEGIN" not in data  # DER SEQUENCE, not PEM
    issuer = x509.load_der_x509_certificate(data)
    assert issuer == home.ca_certificate(home.issuing_role)
    assert issuer.subject == cert.issuer
    openssl_read = openssl("x509", "-inform", "DER", "-noout", "-subject", "-in", served)
    assert openssl_read.returncode == 0, openssl_read.stderr.decode("utf-8", "replace")
