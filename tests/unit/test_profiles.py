"""Profiles: validity arithmetic (leap day), subjects and extensions."""

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from kinko.ca import config
from kinko.ca.errors import InputError
from kinko.ca.profiles import add_validity, build_extensions, issuer_urls, subject_name

UTC = dt.UTC
ONE_YEAR = config.Validity(years=1)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (dt.datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC), dt.datetime(2027, 3, 1, 9, 59, 59, tzinfo=UTC)),
        (dt.datetime(2028, 2, 29, 10, 0, 0, tzinfo=UTC), dt.datetime(2029, 2, 28, 9, 59, 59, tzinfo=UTC)),
        (dt.datetime(2027, 2, 28, 0, 0, 0, tzinfo=UTC), dt.datetime(2028, 2, 27, 23, 59, 59, tzinfo=UTC)),
        (dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), dt.datetime(2027, 12, 31, 23, 59, 58, tzinfo=UTC)),
        (dt.datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC), dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_one_calendar_year_minus_one_second(start: dt.datetime, end: dt.datetime) -> None:
    assert add_validity(start, ONE_YEAR) == end


def test_days_validity() -> None:
    start = dt.datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
    assert add_validity(start, config.Validity(days=90)) == dt.datetime(2027, 2, 23, 11, 59, 59, tzinfo=UTC)


def test_twenty_years_from_leap_day() -> None:
    start = dt.datetime(2028, 2, 29, 0, 0, 0, tzinfo=UTC)
    assert add_validity(start, config.Validity(years=20)) == dt.datetime(2048, 2, 28, 23, 59, 59, tzinfo=UTC)
    assert add_validity(start, config.Validity(years=4)) == dt.datetime(2032, 2, 28, 23, 59, 59, tzinfo=UTC)


def test_subject_keeps_japanese_as_utf8() -> None:
    name = subject_name("山田 太郎", "株式会社テスト", serial_number="S0001")
    assert name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "山田 太郎"
    assert name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "株式会社テスト"
    assert name.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "S0001"
    assert "CN=山田 太郎" in name.rfc4514_string()


@pytest.mark.parametrize(
    ("common_name", "message"),
    [("", "must not be empty"), ("  ", "must not be empty"), ("あ" * 65, "at most 64"), ("a\nb", "control")],
)
def test_subject_refuses_bad_names(common_name: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        subject_name(common_name)


def test_subject_refuses_bad_country() -> None:
    with pytest.raises(InputError, match="two-letter"):
        subject_name("x", country="JPN")


def test_client_profile_extensions() -> None:
    profiles = config.parse_profiles(__import__("tomllib").loads(config.default_text("profiles.toml")))
    subject_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    issuer_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    urls = issuer_urls("http://ca.example/", "issuing")
    extensions = dict(
        (ext.oid, (ext, critical))
        for ext, critical in build_extensions(
            profiles["client"],
            subject_key=subject_key,
            issuer_key=issuer_key,
            urls=urls,
            policy_oid="1.2.3.4",
            alt_name=x509.RFC822Name("yamada@example.co.jp"),
        )
    )
    basic, critical = extensions[ExtensionOID.BASIC_CONSTRAINTS]
    assert critical and basic.ca is False
    usage, critical = extensions[ExtensionOID.KEY_USAGE]
    assert critical and usage.digital_signature and not usage.key_cert_sign
    eku, _ = extensions[ExtensionOID.EXTENDED_KEY_USAGE]
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    aki, _ = extensions[ExtensionOID.AUTHORITY_KEY_IDENTIFIER]
    assert aki.key_identifier == x509.SubjectKeyIdentifier.from_public_key(issuer_key).digest
    cdp, _ = extensions[ExtensionOID.CRL_DISTRIBUTION_POINTS]
    assert cdp[0].full_name[0].value == "http://ca.example/crl/issuing.crl"
    fresh, _ = extensions[ExtensionOID.FRESHEST_CRL]
    assert fresh[0].full_name[0].value == "http://ca.example/crl/issuing-delta.crl"
    aia, _ = extensions[ExtensionOID.AUTHORITY_INFORMATION_ACCESS]
    assert [(d.access_method._name, d.access_location.value) for d in aia] == [
        ("OCSP", "http://ca.example/"),
        ("caIssuers", "http://ca.example/ca/issuing.cer"),
    ]
    policies, _ = extensions[ExtensionOID.CERTIFICATE_POLICIES]
    assert policies[0].policy_identifier.dotted_string == "1.2.3.4"
    names, _ = extensions[ExtensionOID.SUBJECT_ALTERNATIVE_NAME]
    assert list(names) == [x509.RFC822Name("yamada@example.co.jp")]
    assert all(
        not critical
        for oid, (_, critical) in extensions.items()
        if oid not in (ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE)
    )


def test_ocsp_signer_profile_has_nocheck_and_no_ocsp_url() -> None:
    profiles = config.parse_profiles(__import__("tomllib").loads(config.default_text("profiles.toml")))
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    extensions = {
        ext.oid: ext
        for ext, _ in build_extensions(
            profiles["ocsp-signer"], subject_key=key, issuer_key=key, urls=issuer_urls("http://x", "issuing")
        )
    }
    assert ExtensionOID.OCSP_NO_CHECK in extensions
    assert list(extensions[ExtensionOID.EXTENDED_KEY_USAGE]) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    aia = extensions[ExtensionOID.AUTHORITY_INFORMATION_ACCESS]
    assert [d.access_method._name for d in aia] == ["caIssuers"]
