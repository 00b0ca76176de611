"""Pre-signing OCSP responses, so the responder answers from stored bytes without signing.

Called inside the transaction that changes a certificate (issue, revoke, hold, release), so
the registry and its pre-signed responses never disagree, and by `kinko ocsp refresh`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from kinko.ca.clock import from_text, to_text
from kinko.ca.errors import StorageError
from kinko.ca.home import Home
from kinko.ca.integrity import refuse
from kinko.ca.replay import confirm
from kinko.ca.serials import parse_serial
from kinko.ca.store import CertificateRecord, Writer
from kinko.ocsp.protocol import CertID, Responder, Status, build_response, encode_cert_id, key_id, name_hash

# RFC 5019 clients (nginx and OpenSSL among them) send SHA-1 CertIDs: those are pre-signed.
# Other hashes are answered too, signed on demand. (A second pre-signed response per
# certificate cost a tenth of the issuance rate, bench/issue.py.)
PRESIGNED_HASHES = ("sha1",)


@dataclass(frozen=True, eq=False)
class IssuerContext:
    """One CA as OCSP sees it: the hashes that name it in a CertID, and its delegated signer."""

    role: str
    name_der: bytes
    key_der: bytes
    responder: Responder
    signer_not_after: dt.datetime
    signer_not_before: dt.datetime | None = None
    signer_serial: str = ""

    @cached_property
    def hashes(self) -> dict[str, tuple[bytes, bytes]]:
        """hash algorithm -> (issuerNameHash, issuerKeyHash), for every hash a client may use."""
        return {
            algorithm: (name_hash(self.name_der, algorithm), key_id(self.key_der, algorithm))
            for algorithm in ("sha1", "sha256", "sha384", "sha512")
        }

    def cert_id_keys(self) -> list[tuple[str, bytes, bytes]]:
        """(hash algorithm, issuerNameHash, issuerKeyHash) for every hash a client may use."""
        return [(algorithm, *pair) for algorithm, pair in self.hashes.items()]


def issuer_roles(home: Home) -> list[str]:
    """The CAs that have OCSP signers: the root, and the issuing CA in a two-tier home."""
    return ["root"] if home.config.ca.single_tier else ["issuing", "root"]


def load_context(home: Home, role: str) -> IssuerContext:
    """Loads a CA certificate and its delegated signer's certificate and (unencrypted) key."""
    issuer = home.ca_certificate(role)
    signer_certificate = home.ca_certificate(f"ocsp:{role}")
    return IssuerContext(
        role=role,
        name_der=issuer.subject.public_bytes(),
        key_der=issuer.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        responder=Responder.create(
            home.key(f"ocsp:{role}"), signer_certificate.public_bytes(serialization.Encoding.DER)
        ),
        signer_not_after=signer_certificate.not_valid_after_utc,
        signer_not_before=signer_certificate.not_valid_before_utc,
        signer_serial=format(signer_certificate.serial_number, "X"),
    )


class RevocationFacts(Protocol):
    """What a status needs from a registry row."""

    @property
    def status(self) -> str: ...

    @property
    def revoked_at(self) -> str | None: ...

    @property
    def revocation_reason(self) -> str | None: ...


def status_for(
    record: RevocationFacts | None, cert_id: CertID, this_update: dt.datetime, next_update: dt.datetime
) -> Status:
    """The OCSP status of a registry row (status, revoked_at, revocation_reason): good, revoked
    (certificateHold when held), or unknown when there is no row."""
    if record is None:
        return Status(cert_id, "unknown", this_update, next_update)
    if record.status in ("revoked", "held"):
        return Status(
            cert_id,
            "revoked",
            this_update,
            next_update,
            from_text(record.revoked_at),
            record.revocation_reason,
        )
    return Status(cert_id, "good", this_update, next_update)


def response_window(context: IssuerContext, now: dt.datetime, days: int) -> tuple[dt.datetime, dt.datetime]:
    """thisUpdate = now; nextUpdate = now + days, but never after the signer certificate ends."""
    return now, min(now + dt.timedelta(days=days), context.signer_not_after)


def within_validity(context: IssuerContext, now: dt.datetime) -> bool:
    """True while the delegated signer's certificate is valid."""
    start = context.signer_not_before if context.signer_not_before is not None else now
    return start <= now <= context.signer_not_after


def require_within_validity(context: IssuerContext, now: dt.datetime) -> None:
    """Refuses to sign with a delegated signer before or after its certificate's validity."""
    from kinko.ca.errors import PolicyError

    start = context.signer_not_before if context.signer_not_before is not None else now
    if not within_validity(context, now):
        raise PolicyError(
            "the OCSP signer of {role} is valid from {starts} to {ends}, not at {now}: nothing was signed; "
            "run `kinko ocsp signer rotate`",
            role=context.role,
            starts=to_text(start),
            ends=to_text(context.signer_not_after),
            now=to_text(now),
        )


def check_built(der: bytes, status: Status) -> None:
    """Parses a response just built and checks it says what was meant, before it is stored: an
    encoder bug must not be served to every client that asks."""
    try:
        response = ocsp.load_der_ocsp_response(der)
        said = (
            response.response_status,
            response.serial_number,
            response.certificate_status.name.lower(),
            response.this_update_utc,
            response.next_update_utc,
            response.revocation_time_utc,
        )
    except ValueError as exc:
        raise StorageError(
            "the OCSP response just built does not parse ({reason}); nothing was stored", reason=str(exc)
        ) from None
    meant = (
        ocsp.OCSPResponseStatus.SUCCESSFUL,
        status.cert_id.serial,
        status.status,
        status.this_update,
        status.next_update,
        status.revoked_at if status.status == "revoked" else None,
    )
    if said != meant:
        raise StorageError(
            "the OCSP response just built says {said}, not {meant}; nothing was stored",
            said=str(said),
            meant=str(meant),
        )


class Presigner:
    """Signs and stores responses for registry rows; loads each issuer's signer once."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self._contexts: dict[str, IssuerContext] = {}

    def context(self, role: str) -> IssuerContext:
        """The issuer context of a role, loaded on first use."""
        if role not in self._contexts:
            self._contexts[role] = load_context(self.home, role)
        return self._contexts[role]

    def forget(self) -> None:
        """Drops loaded signers (after a rotation)."""
        self._contexts.clear()

    def drop_replaced(self) -> None:
        """Drops each loaded signer that the registry no longer names: another process (or the
        service's schedule) may have rotated it, and a retired signer must not sign again."""
        for role, context in list(self._contexts.items()):
            found = self.home.store.authority(f"ocsp:{role}")
            if found is None or int(found[0], 16) != int(context.signer_serial or "0", 16):
                del self._contexts[role]

    def roles(self) -> list[str]:
        """The CAs that answer OCSP through a delegated signer."""
        return issuer_roles(self.home)

    def signer_not_after(self, role: str) -> dt.datetime:
        """When the delegated signer of a CA ends."""
        return self.context(role).signer_not_after

    def refresh(self, tx: Writer, records: Iterable[CertificateRecord], now: dt.datetime) -> int:
        """Re-signs rows read back from the database: each must first agree with its last ledger
        event (IntegrityError otherwise, and nothing is signed)."""
        records = list(records)
        for record in records:
            facts = {
                name: getattr(record, name) for name in ("status", "revocation_reason", "revoked_at", "changed_seq")
            }
            mismatch = confirm(record.serial, facts, tx.last_status_event(record.serial))
            if mismatch is not None:
                raise refuse(mismatch, f"OCSP response for {record.serial}")
        return self.sign(tx, records, now)

    def sign(self, tx: Writer, records: Iterable[CertificateRecord], now: dt.datetime) -> int:
        """Pre-signs the responses for rows this transaction has just written; returns how many were stored."""
        days = self.home.config.ocsp.next_update_days
        self.drop_replaced()
        stored = 0
        for record in records:
            context = self.context(record.issuer)
            require_within_validity(context, now)
            this_update, next_update = response_window(context, now, days)
            for algorithm in PRESIGNED_HASHES:
                cert_id = encode_cert_id(algorithm, *context.hashes[algorithm], parse_serial(record.serial))
                status = status_for(record, cert_id, this_update, next_update)
                der = build_response([status], responder=context.responder, produced_at=now)
                check_built(der, status)
                tx.put_ocsp_response(
                    record.serial, algorithm, record.issuer, der, to_text(this_update) or "", to_text(next_update) or ""
                )
                stored += 1
        return stored
