"""What an untrusted caller (the login front end's API) must present for a holder: the client
certificate its TLS layer verified, or a signature by the holder's previous key."""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from kinko.ca.errors import InputError, PolicyError
from kinko.ca.serials import format_serial
from kinko.ca.store import CertificateRecord, Reader, Writer

MAX_CERTIFICATE_BYTES = 16 * 1024


def presented_record(store: Reader | Writer, data: bytes, now: str) -> CertificateRecord:
    """The registry record of a presented client certificate (PEM or DER): byte for byte one this
    CA issued, bound to a holder, valid now, and that holder's current certificate."""
    certificate = _load(data)
    record = store.certificate(format_serial(certificate.serial_number))
    der = certificate.public_bytes(serialization.Encoding.DER)
    # The serial alone proves nothing (it is printed everywhere): the whole certificate must match.
    if record is None or record.der != der:
        raise PolicyError("the client certificate was not issued by this CA")
    if record.subscriber_id is None:
        raise PolicyError("certificate {serial} belongs to no holder", serial=record.serial)
    if record.status != "valid" or not record.not_before <= now <= record.not_after:
        raise PolicyError("the client certificate {serial} is not valid now; it proves nothing", serial=record.serial)
    newest = next(iter(store.subscriber_certificates(record.subscriber_id)), None)
    if newest is None or newest.serial != record.serial:
        raise PolicyError(
            "the client certificate {serial} is not its holder's current certificate", serial=record.serial
        )
    return record


def verify_by_old_key(record: CertificateRecord, message: bytes, signature: bytes) -> None:
    """Checks a signature over `message` by the key of `record`'s certificate: ECDSA or RSA
    PKCS#1 v1.5, with SHA-256 (`openssl dgst -sha256 -sign old.key`)."""
    key = x509.load_der_x509_certificate(record.der).public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise PolicyError(
                "certificate {serial} has a key Kinko cannot check a signature with", serial=record.serial
            )
    except (InvalidSignature, ValueError):
        raise PolicyError(
            "the signature over the CSR does not verify with the key of certificate {serial}; "
            "sign the CSR's DER with the previous certificate's key (SHA-256)",
            serial=record.serial,
        ) from None


def _load(data: bytes) -> x509.Certificate:
    if not data or len(data) > MAX_CERTIFICATE_BYTES:
        raise InputError("no client certificate was presented (or it is over 16 KiB)")
    try:
        if data.lstrip().startswith(b"-----BEGIN CERTIFICATE-----"):
            return x509.load_pem_x509_certificate(data.strip())
        return x509.load_der_x509_certificate(data)
    except (ValueError, UnsupportedAlgorithm):
        raise InputError("the client certificate is not a PEM or DER X.509 certificate") from None
