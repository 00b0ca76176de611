"""CSR intake: formats, proof of possession, and the key policy refusing keys by name."""

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kinko.ca.csr import load_csr, spki_sha256
from kinko.ca.errors import InputError, PolicyError
from tests.conftest import make_csr, make_key


@pytest.mark.parametrize("key_type", ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072"])
@pytest.mark.parametrize("der", [False, True])
def test_accepts_allowed_keys_in_pem_and_der(key_type: str, der: bool) -> None:
    key = make_key(key_type)
    accepted = load_csr(make_csr(key, der=der))
    assert accepted.spki_sha256 == spki_sha256(key.public_key())


@pytest.mark.parametrize(
    ("key_type", "message"),
    [
        ("rsa-1024", "RSA 1024-bit keys are not accepted; use 2048 or more"),
        ("rsa-2048-e3", "RSA public exponent 3 is not accepted; use 65537"),
        ("ec-secp256k1", "EC curve secp256k1 is not accepted; use P-256 or P-384"),
        ("ec-p192", "EC curve secp192r1 is not accepted; use P-256 or P-384"),
        ("ed25519", "Ed25519 keys are not accepted"),
    ],
)
def test_refuses_other_keys_by_name(key_type: str, message: str) -> None:
    with pytest.raises(PolicyError) as raised:
        load_csr(make_csr(make_key(key_type)))
    assert message in str(raised.value)


def test_refuses_broken_signature() -> None:
    der = bytearray(make_csr(der=True))
    der[-5] ^= 0x01  # inside the signature value
    with pytest.raises(InputError, match="signature does not verify"):
        load_csr(bytes(der))


def test_refuses_csr_signed_by_another_key() -> None:
    # Swap the public key: the signature no longer matches it (no proof of possession).
    good = x509.load_der_x509_csr(make_csr(der=True))
    other = (
        make_key()
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    der = good.public_bytes(serialization.Encoding.DER)
    mine = good.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    forged = der.replace(mine, other)
    assert forged != der
    with pytest.raises(InputError, match="signature does not verify"):
        load_csr(forged)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, this is not a CSR\n", "not a valid certificate signing request"),
        (b"\x30\x82\x01\x00garbage", "not a valid certificate signing request"),
        (b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "no CERTIFICATE REQUEST block"),
        (b"x" * (64 * 1024 + 1), "too large"),
    ],
)
def test_refuses_garbage(data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_csr(data)


def test_refuses_truncated_pem() -> None:
    pem = make_csr()
    with pytest.raises(InputError, match=r"truncated|not a valid"):
        load_csr(pem[: len(pem) // 2])
    # Cut inside the base64 but keep the END line: still refused.
    lines = pem.splitlines()
    with pytest.raises(InputError, match="not a valid"):
        load_csr(b"\n".join([lines[0], lines[1], lines[-1]]))
