"""The registration authority's session: the collaborators every part receives, injected.

Boulder's RA holds a CA client and a storage client and nothing else; Kinko's parts hold one
`Session` with the store, the key backend, the CRL publisher, the OCSP pre-signer, the
configuration, the clock and the actor. Each collaborator is a small Protocol, so a test or
another backend (PostgreSQL, PKCS#11) plugs in without the parts knowing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from kinko.ca.clock import Clock, SystemClock, to_text
from kinko.ca.config import Config
from kinko.ca.keys import KeyRing
from kinko.ca.officers import current_login
from kinko.ca.serials import no_such_certificate, normalize_serial
from kinko.ca.store import CertificateRecord, Store, Writer

if TYPE_CHECKING:
    from kinko.ca.home import Home
    from kinko.crl.publisher import Published

# Reasons an officer may give, by RFC 5280 name in kebab case. certificateHold has its own
# command (hold); removeFromCRL only appears in delta CRLs, for released holds.
REVOCATION_REASONS = (
    "unspecified",
    "key-compromise",
    "affiliation-changed",
    "superseded",
    "cessation-of-operation",
    "privilege-withdrawn",
)
CA_REVOCATION_REASONS = (*REVOCATION_REASONS, "ca-compromise")


class CRLPublisher(Protocol):
    """Builds, signs, records and writes CRLs."""

    def publish(self, issuer: str, kind: str, now: dt.datetime, actor: str) -> Published:
        """One CRL of an issuer: 'full' or 'delta'."""
        ...

    def full_and_delta(self, issuer: str, now: dt.datetime, actor: str) -> list[Published]:
        """A full CRL and, where the issuer has deltas, an empty delta against it."""
        ...

    def after_change(self, issuer: str, now: dt.datetime, actor: str) -> list[Published]:
        """Makes a committed status change visible: a new full CRL while it is small, else a delta."""
        ...


class OCSPPresigner(Protocol):
    """Signs OCSP responses inside the transactions that change a certificate."""

    def sign(self, tx: Writer, records: Iterable[CertificateRecord], now: dt.datetime) -> int:
        """Pre-signs and stores the responses of rows this transaction has just written."""
        ...

    def refresh(self, tx: Writer, records: Iterable[CertificateRecord], now: dt.datetime) -> int:
        """Re-signs rows read back from the database, each checked against its last ledger event first."""
        ...

    def forget(self) -> None:
        """Drops loaded signers (after a rotation)."""
        ...

    def roles(self) -> list[str]:
        """The CAs that answer OCSP through a delegated signer."""
        ...

    def signer_not_after(self, role: str) -> dt.datetime:
        """When the delegated signer of a CA ends."""
        ...


@dataclass(frozen=True)
class Issued:
    """A newly issued certificate: its registry row and its PEM."""

    record: CertificateRecord
    pem: str


@dataclass(frozen=True)
class StatusChange:
    """The result of revoke, hold or release: the registry row after it, and the CRLs published."""

    record: CertificateRecord
    crls: list[Published]


@dataclass(frozen=True)
class Session:
    """One actor's session with the CA: the injected collaborators and the steps every part shares."""

    store: Store
    keys: KeyRing
    crls: CRLPublisher
    presigner: OCSPPresigner
    config: Config
    clock: Clock
    actor: str
    # Run by load_signing_keys before a change that signs: Kinko renews the OCSP signers due for
    # renewal here too, so a change never finds its delegated signer past its end.
    before_signing: list[Callable[[], object]] = field(default_factory=list)

    @classmethod
    def for_home(
        cls, home: Home, clock: Clock | None = None, actor: str | None = None, presigner: OCSPPresigner | None = None
    ) -> Session:
        """The session of a CA home: its store, its keys, its publisher and pre-signer (a long-lived
        process passes its own pre-signer, whose loaded signers then serve every session)."""
        from kinko.crl.publisher import Publisher
        from kinko.ocsp.presign import Presigner

        return cls(
            store=home.store,
            keys=home,
            crls=Publisher(home),
            presigner=presigner or Presigner(home),
            config=home.config,
            clock=clock or SystemClock(),
            actor=actor or current_login(),
        )

    def certificate(self, serial: str) -> CertificateRecord:
        """The registry row of a serial, or NotFound."""
        record = self.store.certificate(normalize_serial(serial))
        if record is None:
            raise no_such_certificate(serial)
        return record

    def load_signing_keys(self, roles: set[str] | None = None) -> None:
        """Loads (and, on a terminal, asks the passphrase for) the CA keys a change will need,
        before the write lock is taken: never while other writers wait, and never after the
        change has committed (a revocation whose CRL then cannot be signed)."""
        for check in self.before_signing:
            check()
        for role in sorted(roles or {self.keys.issuing_role}):
            self.keys.key(role)

    def presign_changed(self, tx: Writer, serial: str, now: dt.datetime) -> None:
        """Re-signs a changed certificate's OCSP response in the changing transaction, so the
        responder can never serve the old status once the change is committed."""
        changed = tx.certificate(serial)
        assert changed is not None
        self.presigner.sign(tx, [changed], now)

    def publish_after(self, issuers: set[str], now: dt.datetime) -> list[Published]:
        """Publishes each affected issuer's CRL once, after a change has committed."""
        published: list[Published] = []
        for issuer in sorted(issuers):
            published.extend(self.crls.after_change(issuer, now, self.actor))
        return published

    @staticmethod
    def text(now: dt.datetime) -> str:
        """A time as stored: ISO 8601 UTC with a Z."""
        return to_text(now) or ""
