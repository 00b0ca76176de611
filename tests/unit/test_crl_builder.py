"""The linear CRL builder against `cryptography`'s builder: the same TBSCertList, byte for byte."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from kinko.ca.keys import FileKey, generate_private_key
from kinko.crl.builder import CRLBuilder, Entry, encode_entry, pem

UTC = dt.UTC
ISSUER = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "興産信用金庫"),
        x509.NameAttribute(NameOID.COMMON_NAME, "興産信用金庫 Issuing CA"),
    ]
)
REASONS = {
    "key-compromise": x509.ReasonFlags.key_compromise,
    "ca-compromise": x509.ReasonFlags.ca_compromise,
    "affiliation-changed": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessation-of-operation": x509.ReasonFlags.cessation_of_operation,
    "certificate-hold": x509.ReasonFlags.certificate_hold,
    "remove-from-crl": x509.ReasonFlags.remove_from_crl,
    "privilege-withdrawn": x509.ReasonFlags.privilege_withdrawn,
}


def parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def sample_entries() -> list[Entry]:
    entries = [
        Entry("01", "2026-11-25T10:00:00Z"),
        Entry("7F", "2026-11-25T10:00:01Z", "unspecified"),
        Entry("80", "2026-11-25T10:00:02Z", "key-compromise", "2026-11-20T08:30:00Z"),
        Entry("00FF", "2049-12-31T23:59:59Z", "superseded"),
        Entry("B478D52B8293904F6256CD444D2971A9", "2050-01-01T00:00:00Z", "certificate-hold"),
        Entry("7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", "2026-01-01T00:00:00Z", None, "2025-12-31T00:00:00Z"),
    ]
    entries += [Entry(f"{0x1000 + i:X}", "2026-11-25T10:00:00Z", name) for i, name in enumerate(REASONS)]
    return entries


def reference(
    entries: list[Entry], extensions: list[tuple[x509.ExtensionType, bool]]
) -> x509.CertificateRevocationListBuilder:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ISSUER)
        .last_update(parse("2026-11-25T10:00:00Z"))
        .next_update(parse("2026-11-27T10:00:00Z"))
    )
    for entry in entries:
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(int(entry.serial, 16))
            .revocation_date(parse(entry.revoked_at))
        )
        if entry.reason and entry.reason != "unspecified":
            revoked = revoked.add_extension(x509.CRLReason(REASONS[entry.reason]), critical=False)
        if entry.invalidity_date:
            revoked = revoked.add_extension(x509.InvalidityDate(parse(entry.invalidity_date)), critical=False)
        builder = builder.add_revoked_certificate(revoked.build())
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return builder


def crl_extensions(key: FileKey) -> list[tuple[x509.ExtensionType, bool]]:
    url = x509.UniformResourceIdentifier("http://127.0.0.1:8080/crl/issuing.crl")
    return [
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False),
        (x509.CRLNumber(2**70 + 5), False),
        (
            x509.IssuingDistributionPoint(
                full_name=[url],
                relative_name=None,
                only_contains_user_certs=True,
                only_contains_ca_certs=False,
                only_some_reasons=None,
                indirect_crl=False,
                only_contains_attribute_certs=False,
            ),
            True,
        ),
        (x509.FreshestCRL([x509.DistributionPoint([url], None, None, None)]), False),
    ]


def ours(entries: list[Entry], extensions: list[tuple[x509.ExtensionType, bool]]) -> CRLBuilder:
    builder = CRLBuilder().issuer_name(ISSUER).this_update("2026-11-25T10:00:00Z").next_update("2026-11-27T10:00:00Z")
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return builder.entries(entries)


@pytest.fixture(scope="module", params=["ec-p256", "ec-p384", "rsa-2048"])
def key(request: pytest.FixtureRequest) -> FileKey:
    return FileKey(generate_private_key(request.param))


@pytest.mark.parametrize("entries", [[], sample_entries()], ids=["empty", "every-form"])
def test_tbs_is_byte_identical_to_cryptography(key: FileKey, entries: list[Entry]) -> None:
    extensions = crl_extensions(key)
    expected = key.sign_crl(reference(entries, extensions))
    tbs, count = ours(entries, extensions).tbs(key)
    assert count == len(entries)
    assert tbs == expected.tbs_certlist_bytes


def test_signed_crl_parses_and_verifies(key: FileKey) -> None:
    entries = sample_entries()
    der, count = ours(entries, crl_extensions(key)).sign(key)
    crl = x509.load_der_x509_crl(der)
    assert crl.is_signature_valid(key.public_key())
    assert count == len(crl) == len(entries)
    held = crl.get_revoked_certificate_by_serial_number(0xB478D52B8293904F6256CD444D2971A9)
    assert held is not None
    assert held.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.certificate_hold
    assert held.revocation_date_utc == dt.datetime(2050, 1, 1, tzinfo=UTC)
    compromised = crl.get_revoked_certificate_by_serial_number(0x80)
    assert compromised.extensions.get_extension_for_class(x509.InvalidityDate).value.invalidity_date_utc == (
        dt.datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    )
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2**70 + 5
    assert pem(der) == crl.public_bytes(serialization.Encoding.PEM)


def test_large_entry_lengths_use_long_form() -> None:
    entries = [Entry(f"{i + 1:032X}", "2026-11-25T10:00:00Z", "superseded") for i in range(3000)]
    key = FileKey(generate_private_key("ec-p256"))
    der, count = ours(entries, []).sign(key)
    crl = x509.load_der_x509_crl(der)
    assert count == len(crl) == 3000 and crl.is_signature_valid(key.public_key())


def test_entry_encoding_keeps_serial_positive() -> None:
    assert encode_entry(Entry("80", "2026-11-25T10:00:00Z"))[2:6] == b"\x02\x02\x00\x80"


def test_builder_refuses_second_set_and_missing_fields() -> None:
    builder = CRLBuilder().issuer_name(ISSUER)
    with pytest.raises(ValueError, match="only be set once"):
        builder.issuer_name(ISSUER)
    with pytest.raises(ValueError, match="needs an issuer name"):
        builder.tbs(FileKey(generate_private_key("ec-p256")))
    with pytest.raises(ValueError, match="only be added once"):
        builder.add_extension(x509.CRLNumber(1), False).add_extension(x509.CRLNumber(2), False)
