"""Key backends: the CA's private keys live behind one small interface and never leave it.

Today's backend is an encrypted PKCS#8 file; a PKCS#11 backend can implement the same
methods later. Nothing here prints or logs key material.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)

from kinko.ca.errors import ConfigError, InputError, PassphraseError
from kinko.ca.files import make_dir, write_new

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
Digest = hashes.SHA256 | hashes.SHA384


class KeyBackend(Protocol):
    """Signs with a private key it never hands out."""

    def public_key(self) -> CertificateIssuerPublicKeyTypes:
        """The public half."""
        ...

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        """The digest this key signs with."""
        ...

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        """Signs a certificate builder."""
        ...

    def sign_data(self, data: bytes) -> bytes:
        """Signs raw bytes (a TBS structure, a checkpoint message)."""
        ...


class KeyRing(Protocol):
    """The key backend as the RA sees it: the CA's certificates and keys by role."""

    @property
    def issuing_role(self) -> str:
        """The CA that signs client certificates: 'issuing', or 'root' in a single-tier home."""
        ...

    def key(self, role: str) -> KeyBackend:
        """The signing key of a CA role or delegated signer (loaded once, never exported)."""
        ...

    def ca_certificate(self, role: str) -> x509.Certificate:
        """The current certificate of a CA role or delegated signer."""
        ...

    def store_signer_key(self, authority: str, key: PrivateKey, now: dt.datetime) -> str:
        """Keeps a new delegated signer's key; returns the reference recorded in `authorities`."""
        ...

    def delete_signer_key(self, reference: str) -> bool:
        """Destroys a retired delegated signer's key; False when it was already gone."""
        ...


def certificate_key(certificate: x509.Certificate) -> CertificateIssuerPublicKeyTypes:
    """A CA certificate's public key, as a type that can issue (RSA or EC: what Kinko makes)."""
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ConfigError(
            "certificate {subject} has a {type} key",
            subject=certificate.subject.rfc4514_string(),
            type=type(key).__name__,
        )
    return key


def generate_private_key(key_type: str) -> PrivateKey:
    """Makes a new key of a configured type (ec-p256, ec-p384, rsa-2048/3072/4096)."""
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type in ("rsa-2048", "rsa-3072", "rsa-4096"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    raise InputError("unknown key type {type!r}", type=key_type)


def describe_key(public_key: object) -> str:
    """Names a public key for people: 'EC P-256', 'RSA 2048'."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return f"EC {names.get(public_key.curve.name, public_key.curve.name)}"
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA {public_key.key_size}"
    return type(public_key).__name__


def hash_for(public_key: object) -> Digest:
    """The digest paired with a key: SHA-384 for P-384, SHA-256 otherwise."""
    if isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def write_private_key(path: Path, key: PrivateKey, passphrase: bytes | None, mode: int = 0o600) -> None:
    """Writes a key as PKCS#8 PEM, encrypted when a passphrase is given, created 0600 (or `mode`)."""
    if passphrase is not None:
        encryption: serialization.KeySerializationEncryption = serialization.BestAvailableEncryption(passphrase)
    else:
        encryption = serialization.NoEncryption()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    if not path.parent.is_dir():
        make_private_dir(path.parent)  # an existing keys/ keeps its mode: a service home's admits the responder
    # O_EXCL|O_NOFOLLOW + the mode at creation: the key is never readable by others, not even briefly.
    write_new(path, pem, mode)


def make_private_dir(path: Path) -> None:
    """Creates a directory readable only by its owner."""
    make_dir(path, 0o700)


class FileKey:
    """A private key held in a PKCS#8 file, encrypted with a passphrase at rest."""

    def __init__(self, key: CertificateIssuerPrivateKeyTypes) -> None:
        self._key = key

    def __repr__(self) -> str:
        return f"FileKey({describe_key(self._key.public_key())})"

    @classmethod
    def load(cls, path: Path, passphrase: bytes | None) -> FileKey:
        """Loads and decrypts a key file; a wrong passphrase is a PassphraseError."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError("key file {path} is missing", path=path) from None
        except PermissionError:
            raise ConfigError("key file {path} is not readable by this account", path=path) from None
        try:
            key = serialization.load_pem_private_key(data, password=passphrase)
        except TypeError:
            # cryptography raises TypeError when a passphrase is missing or not needed.
            if passphrase is None:
                raise PassphraseError("key file {path} is encrypted and no passphrase was given", path=path) from None
            raise ConfigError("key file {path} is not encrypted; expected an encrypted key", path=path) from None
        except ValueError:
            raise PassphraseError("wrong passphrase for {name}", name=path.name) from None
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ConfigError("key file {path} holds an unsupported key type", path=path)
        return cls(key)

    def public_key(self) -> CertificateIssuerPublicKeyTypes:
        return self._key.public_key()

    def hash_algorithm(self) -> Digest:
        return hash_for(self._key.public_key())

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        """Signs a certificate builder with this key and its paired digest."""
        return builder.sign(self._key, self.hash_algorithm())

    def sign_crl(self, builder: x509.CertificateRevocationListBuilder) -> x509.CertificateRevocationList:
        """Signs a CRL builder (used for small CRLs and for tests against our fast builder)."""
        return builder.sign(self._key, self.hash_algorithm())

    def sign_data(self, data: bytes) -> bytes:
        """Signs raw bytes (a TBS structure) the way the key's certificates are signed."""
        key = self._key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(self.hash_algorithm()))
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), self.hash_algorithm())
        raise ConfigError("unsupported key type for signing")
