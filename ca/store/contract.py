"""The store contract: what every backend (SQLite, PostgreSQL) provides and keeps.

Code above the store type-hints against these Protocols only. Transaction rules a backend keeps:

- Writers are serialized. The ledger is a hash chain: each event links to the head the previous
  one left, so two transactions must never append at once. SQLite: `BEGIN IMMEDIATE` takes the
  database-wide write lock at the start. PostgreSQL: the statement after BEGIN takes one
  transaction-level advisory lock all writers share (`pg_advisory_xact_lock` on the fixed key
  postgresql.WRITER_LOCK), released by COMMIT or ROLLBACK; reads inside run READ COMMITTED, so
  each sees every commit made before the lock was granted.
- A state change and the ledger event that records it commit in the same transaction: a crash
  leaves both or neither, and `Writer` refuses to commit a change that has no event.
- Every transaction that appends events ends, before it commits, with a checkpoint signed by the
  store's sealer over (seq, head hash, time); one whose last checkpoint does not sit right
  before its first event is refused (events were added or removed outside Kinko).
- CRL numbers are reserved by `Store.reserve_crl_number`, in a committed transaction of its own,
  before the CRL is signed: a crash burns a number and never reuses one. The caller passes the
  highest number already published as a floor: a database that lost its last commits (a standby
  promoted after an asynchronous primary was lost, a restored backup) continues above it.
- Serials (and CRL numbers per issuer, enrollment lookups, fingerprints) are unique by a
  constraint in the database, not by a check in code.
- Reads never write: no `Reader` verb changes the database, so a read-only connection or a
  hot standby serves every one of them.
- A responder on a replica asks `Reader.replica_lag()` how far behind it reads (PostgreSQL: a
  hot standby's replay position and its WAL receiver), and reports more than a bound in /healthz.
- Change detection goes through `Reader.change_token()`, backed by a one-row counter that, before
  it commits, every transaction that changes state (what needs a ledger event), every CRL-number
  reservation and every schema upgrade increments. A transaction that only appends events (a
  refused command, a checkpoint) or only re-signs pre-signed OCSP responses leaves it alone:
  neither changes what a responder answers, and tables other than the ledger stay untouched.
  A counter works on a replica, where neither SQLite's `data_version` nor LISTEN/NOTIFY does.
- The schema version lives in the database (`meta.schema_version`); a backend opens only its
  own version, or an older one when upgrading, and applies the numbered migrations of
  `schema.py` in one transaction with a `schema.upgraded` event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from kinko.ca import ledger
from kinko.ca.store.records import (
    CertificateRecord,
    CRLRecord,
    CustomerRecord,
    EnrollmentRecord,
    IncidentRecord,
    PresignedResponse,
    RevocationState,
    SubscriberRecord,
)

# Signs a ledger checkpoint: (seq, head hash, time) -> (signature, the signer's serial).
Sealer = Callable[[int, str, str], tuple[bytes, str]]
# Told of each checkpoint after its transaction committed: (seq, head hash, time, signature, signer).
Announcer = Callable[[int, str, str, bytes, str], None]

# (serial, revoked_at or changed_at, reason, invalidity_date) of one CRL entry.
CRLEntry = tuple[str, str, str | None, str | None]

# (serial, its revocation columns by name, its newest status event) of one certificate, for a signing check.
StatusCheck = tuple[str, dict[str, object], ledger.Event | None]

__all__ = [
    "AccountReader",
    "Announcer",
    "CRLEntry",
    "Reader",
    "Sealer",
    "StatusCheck",
    "Store",
    "UpgradeResult",
    "Writer",
]


@dataclass(frozen=True)
class UpgradeResult:
    """What `Store.upgrade` did: the schema version before and after, and the migrations applied."""

    from_version: int
    to_version: int
    applied: tuple[str, ...]


class AccountReader(Protocol):
    """Reads about customers, subscribers, enrollments, incidents and officers: outside and inside a transaction."""

    def customer(self, customer_id: str) -> CustomerRecord | None:
        """A customer by id."""
        ...

    def customers(self) -> list[CustomerRecord]:
        """Every customer, by id."""
        ...

    def subscriber(self, subscriber_id: str) -> SubscriberRecord | None:
        """A subscriber by id."""
        ...

    def subscribers(self, customer_id: str) -> list[SubscriberRecord]:
        """A customer's subscribers, administrators first."""
        ...

    def enrollment_by_lookup(self, lookup: str) -> EnrollmentRecord | None:
        """The enrollment a code's public part names."""
        ...

    def code_locks(self, since: str) -> list[tuple[str, str, str]]:
        """(client, subscriber or "", locked_until) of every code refusal since a time that set a lock."""
        ...

    def code_refusals(self, client: str, since: str) -> list[tuple[str, str, str | None]]:
        """(time, subscriber or "", locked_until) of a client's code refusals since a time, newest
        first; an officer's clearing of the client's lock is a row whose locked_until is ""."""
        ...

    def enrollments(self, subscriber_id: str) -> list[EnrollmentRecord]:
        """A subscriber's enrollments, newest first."""
        ...

    def open_enrollments(self, expiring_before: str, now: str) -> list[EnrollmentRecord]:
        """Unredeemed enrollments still usable at `now` that expire before `expiring_before`."""
        ...

    def lapsed_enrollments(self, now: str) -> list[EnrollmentRecord]:
        """Enrollments that expired unused and were not yet recorded as such."""
        ...

    def subscriber_certificates(self, subscriber_id: str) -> list[CertificateRecord]:
        """A subscriber's certificates, newest first."""
        ...

    def customer_certificates(self, customer_id: str, statuses: tuple[str, ...], now: str) -> list[CertificateRecord]:
        """Unexpired certificates of all of a customer's subscribers with one of `statuses`."""
        ...

    def held_by(self, origin: str) -> list[CertificateRecord]:
        """Certificates on hold with a given origin (e.g. one customer's suspension)."""
        ...

    def expiring_certificates(self, now: str, before: str) -> list[CertificateRecord]:
        """Valid subscriber certificates whose notAfter falls between now and `before`."""
        ...

    def due_terminations(self, now: str) -> list[CustomerRecord]:
        """Customers whose scheduled service end has arrived but was not yet applied."""
        ...

    def officer_role(self, login: str) -> str | None:
        """The role of a registered operator account, or None."""
        ...

    def officers(self) -> list[tuple[str, str, str, str]]:
        """(login, role, added_at, added_by) of every operator."""
        ...

    def count_admins(self) -> int:
        """How many admins there are."""
        ...

    def incidents(self, subscriber_id: str | None = None) -> list[IncidentRecord]:
        """Recorded incidents, newest first."""
        ...

    def last_status_event(self, serial: str) -> ledger.Event | None:
        """The newest event that set a certificate's revocation status (issued, revoked, held, released, reason)."""
        ...

    def last_event(self, action: str, subscriber: str | None = None) -> ledger.Event | None:
        """The newest event with an action (e.g. config.changed), or with it about a subscriber."""
        ...

    def officer_event(self, login: str) -> ledger.Event | None:
        """The newest officer.added or officer.removed event of a login: what its role must be."""
        ...

    def enrollment_events(self, enrollment_id: int) -> list[ledger.Event]:
        """The events that made and redeemed an enrollment, in order."""
        ...


class Reader(AccountReader, Protocol):
    """Every read Kinko runs outside a transaction; none of them writes."""

    def certificate(self, serial: str) -> CertificateRecord | None:
        """The registry row for a serial (canonical hex), or None."""
        ...

    def certificates(
        self,
        statuses: tuple[str, ...] | None = None,
        limit: int | None = None,
        expired: bool | None = None,
        now: str | None = None,
    ) -> list[CertificateRecord]:
        """Registry rows, newest first, filtered by stored status and by expiry at `now`."""
        ...

    def unexpired_certificates(self, issuer: str, now: str) -> list[CertificateRecord]:
        """Every certificate of an issuer that has not expired yet."""
        ...

    def certificates_needing_responses(self, now: str, refresh_before: str) -> list[CertificateRecord]:
        """Unexpired certificates whose pre-signed SHA-1 response is missing or older than `refresh_before`."""
        ...

    def revocation_status(self, serial: str) -> RevocationState | None:
        """A certificate's issuer and revocation columns, for answering OCSP."""
        ...

    def status_disagreements(
        self, issuer: str, expired_before: str, changed_after: int | None = None
    ) -> Iterator[StatusCheck]:
        """The certificates of an issuer, unexpired at `expired_before` (and, when given, whose status
        changed after ledger seq `changed_after`: a delta CRL's rows), whose revocation columns disagree
        with their newest status event (or that have none), each with that event: what a CRL must not be
        signed over. The same facts as `kinko.ca.replay.status_facts`."""
        ...

    def ocsp_response(self, serial: str, hash_algorithm: str) -> PresignedResponse | None:
        """The pre-signed response for a certificate and CertID hash, if there is one."""
        ...

    def authorities(self) -> dict[str, tuple[str, str]]:
        """role -> (serial, key file) for every CA role and delegated signer."""
        ...

    def authority(self, role: str) -> tuple[str, str] | None:
        """(serial, key file) of the CA certificate or signer in a role, or None."""
        ...

    def crl_entries(self, issuer: str, expired_before: str) -> Iterator[CRLEntry]:
        """Every revoked or held certificate of an issuer that expired no earlier than `expired_before`."""
        ...

    def crl_delta_entries(self, issuer: str, after_seq: int, expired_before: str) -> Iterator[CRLEntry]:
        """Status changes after ledger seq `after_seq`, for a delta CRL; released holds as remove-from-crl."""
        ...

    def last_status_change_seq(self, issuer: str) -> int:
        """The ledger seq of the newest status change of an issuer's certificates (0: none)."""
        ...

    def latest_crl(self, issuer: str, kind: str) -> CRLRecord | None:
        """The newest published CRL of an issuer and kind ('full' or 'delta')."""
        ...

    def crl_numbers(self, issuer: str) -> list[tuple[int, str]]:
        """Every (number, state) an issuer has used, in order."""
        ...

    def ledger_head(self) -> tuple[int, str]:
        """(seq, hash) of the newest ledger event; (0, genesis) when empty."""
        ...

    def ledger_events(self, after_seq: int = 0) -> Iterator[ledger.Event]:
        """Ledger events after `after_seq`, in seq order, streamed."""
        ...

    def ledger_event(self, seq: int) -> ledger.Event | None:
        """One ledger event by seq."""
        ...

    def ledger_chain(self) -> Iterator[tuple[int, str, str, str]]:
        """(seq, prev_hash, hash, canonical JSON built by the database) of every event, in seq order."""
        ...

    def ledger_export_lines(
        self, fmt: str, since: str | None, until: str | None, customer: str | None, action: str | None
    ) -> Iterator[str]:
        """Export lines in ledger.py's format ('csv' or 'jsonl'), built by the database in seq order."""
        ...

    def audit_signers(self) -> set[str]:
        """Serials of every certificate the ledger records as made the CA's audit signer."""
        ...

    def checkpoints(self) -> list[tuple[int, str, str, bytes, str]]:
        """(seq, head_hash, time, signature, signer serial) of every checkpoint, in seq order."""
        ...

    def checkpoint(self, seq: int) -> tuple[int, str, str, bytes, str] | None:
        """(seq, head_hash, time, signature, signer serial) of the checkpoint at a seq, or None."""
        ...

    def last_checkpoint_seq(self) -> int:
        """The seq of the newest checkpoint; 0 when there is none."""
        ...

    def signer_events(self, after_seq: int = 0) -> Iterator[ledger.Event]:
        """In seq order, the events that create a CA or appoint, retire, revoke, hold or release an
        audit signer (`kinko.ca.signers.ACTIONS`, the certificate ones only for audit signers' serials)."""
        ...

    def count(self, table: str) -> int:
        """Rows in one of Kinko's tables (for status displays and tests)."""
        ...

    def change_token(self) -> int:
        """A number that differs after any commit that changes state (from any process; also on a replica)."""
        ...

    def replica_lag(self) -> float | None:
        """Seconds this database (a replica) is behind its primary, as far as it can tell; None
        when it is no replica. A replica that lost its primary counts the time since it last heard."""
        ...

    def table_rows(self, table: str) -> Iterator[tuple[object, ...]]:
        """Every row of one of the tables the ledger's replay decides, in key order, streamed (see REPLAYED)."""
        ...


# The tables whose state replaying the ledger decides, with the columns `table_rows` yields, in order.
REPLAYED: dict[str, tuple[str, ...]] = {
    "certificates": (
        "serial",
        "issuer",
        "profile",
        "subject",
        "subscriber_id",
        "not_before",
        "not_after",
        "status",
        "issued_at",
        "fingerprint_sha256",
        "spki_sha256",
        "revoked_at",
        "revocation_reason",
        "invalidity_date",
        "reported_at",
        "hold_origin",
        "changed_seq",
        "der",
    ),
    "officers": ("login", "role"),
    "customers": ("id", "name", "status", "terminate_at"),
    "subscribers": ("id", "customer_id", "role", "name", "email"),
    "enrollments": (
        "id",
        "subscriber_id",
        "kind",
        "lookup",
        "code_hash",
        "expires_at",
        "redeemed_at",
        "redeemed_serial",
        "closed_at",
        "expiry_recorded",
    ),
    "authorities": ("role", "serial", "key_file"),
    "crls": ("issuer", "number", "kind", "base_number", "this_update", "next_update", "entries", "state", "sha256"),
    "ocsp_responses": ("serial", "hash_algorithm", "issuer", "der", "this_update", "next_update"),
}
# Events that issue a certificate (valid, no status change yet), and all that set its revocation status.
ISSUING_ACTIONS = (
    "ca.created",
    "ocsp.signer-issued",
    "audit.signer-issued",
    "certificate.issued",
    "certificate.renewed",
    "certificate.reacquired",
    "certificate.reissued",
)
STATUS_ACTIONS = (
    *ISSUING_ACTIONS,
    "certificate.revoked",
    "certificate.held",
    "certificate.released",
    "certificate.reason-changed",
)


class Writer(AccountReader, Protocol):
    """One write transaction: its state changes, each recorded by a ledger event, and the reads rules need inside it."""

    actor: str
    time: str

    def append_event(
        self,
        action: str,
        *,
        serial: str = "",
        subscriber: str = "",
        customer: str = "",
        details: Mapping[str, object] | None = None,
    ) -> ledger.Event:
        """Appends one event to the chain, linked to the current head."""
        ...

    def certificate(self, serial: str) -> CertificateRecord | None:
        """Reads a registry row inside this transaction."""
        ...

    def active_certificate_with_key(self, spki_sha256: str, now: str) -> str | None:
        """The serial of an unexpired, unrevoked certificate holding this public key, if any."""
        ...

    def compromised_certificate_with_key(self, spki_sha256: str) -> str | None:
        """The serial of a certificate revoked for key-compromise that held this public key, if any."""
        ...

    def reserve_serial(self, serial: str, issuer: str) -> bool:
        """Claims a serial before signing; False if it was ever used (the caller draws again)."""
        ...

    def record_certificate(self, record: CertificateRecord) -> None:
        """Fills in a reserved serial with the signed certificate."""
        ...

    def revoke(
        self,
        serial: str,
        *,
        reason: str,
        seq: int,
        invalidity_date: str | None = None,
        reported_at: str | None = None,
        revoked_at: str | None = None,
    ) -> None:
        """Marks a valid or held certificate revoked, as of this transaction's time unless told otherwise."""
        ...

    def change_revocation_reason(
        self, serial: str, *, reason: str, seq: int, invalidity_date: str | None, reported_at: str | None
    ) -> None:
        """Changes the reason of a revoked certificate (to key-compromise), keeping its revocation date."""
        ...

    def hold(self, serial: str, *, seq: int, origin: str) -> None:
        """Puts a valid certificate on hold (reason certificateHold) as of this transaction's time."""
        ...

    def release(self, serial: str, *, seq: int) -> None:
        """Releases a held certificate: it is good again."""
        ...

    def record_crl(
        self,
        issuer: str,
        number: int,
        *,
        this_update: str,
        next_update: str,
        entries: int,
        ledger_seq: int,
        sha256: str,
    ) -> None:
        """Marks a reserved CRL number as published, with what it covered."""
        ...

    def put_ocsp_response(
        self, serial: str, hash_algorithm: str, issuer: str, der: bytes, this_update: str, next_update: str
    ) -> None:
        """Stores a pre-signed OCSP response (derived from the registry: it needs no ledger event)."""
        ...

    def set_authority(self, role: str, serial: str, key_file: str) -> None:
        """Makes a certificate the current one for a CA role or delegated signer."""
        ...

    def add_customer(self, customer_id: str, name: str) -> None:
        """Registers a customer, active from now."""
        ...

    def set_customer_status(self, customer_id: str, status: str, terminate_at: str | None = None) -> None:
        """Sets a customer's service status (and, for a scheduled end, when it takes effect)."""
        ...

    def schedule_termination(self, customer_id: str, terminate_at: str) -> None:
        """Records a future service end, applied when it arrives."""
        ...

    def add_subscriber(
        self, subscriber_id: str, customer_id: str, role: str, name: str, created_by: str, email: str | None = None
    ) -> None:
        """Registers an administrator or user of a customer (and the e-mail address its certificates name)."""
        ...

    def add_enrollment(
        self, subscriber_id: str, kind: str, lookup: str, code_hash: str, expires_at: str, created_by: str
    ) -> int:
        """Stores a new enrollment (the code's hash only) and returns its id."""
        ...

    def redeem_enrollment(self, enrollment_id: int, serial: str) -> None:
        """Marks an enrollment used, by the certificate it produced; a second use is refused."""
        ...

    def close_enrollments(self, subscriber_id: str) -> None:
        """Closes a subscriber's unused enrollments."""
        ...

    def mark_enrollment_lapsed(self, enrollment_id: int) -> bool:
        """Notes that an expired, unused enrollment is being recorded; False if another process did."""
        ...

    def add_incident(
        self,
        *,
        subscriber_id: str,
        serial: str | None,
        kind: str,
        reason: str | None,
        received_at: str,
        suspected_since: str | None,
        revoked_at: str | None,
        suspended_customer: bool,
        note: str | None,
    ) -> int:
        """Records an incident report and the procedure carried out; returns its id."""
        ...

    def add_officer(self, login: str, role: str, added_by: str) -> None:
        """Registers an operator account with a role."""
        ...

    def remove_officer(self, login: str) -> None:
        """Removes an operator account."""
        ...

    def set_officer_role(self, login: str, role: str) -> None:
        """Changes an operator account's role."""
        ...


class Store(Reader, Protocol):
    """A Kinko database: the reads, and every change through `transaction()`."""

    # Seals each transaction that appends events; None only while a home is being created.
    sealer: Sealer | None
    # Hears of each sealed checkpoint once it is committed (the home sends it to syslog); may be None.
    announcer: Announcer | None

    def transaction(self, actor: str, time: str) -> AbstractContextManager[Writer]:
        """One serialized write transaction: its changes, events and checkpoint commit together or not at all."""
        ...

    def reading(self) -> AbstractContextManager[Reader]:
        """Runs reads against one consistent snapshot of the database."""
        ...

    def reserve_crl_number(self, issuer: str, kind: str, base_number: int | None, time: str, floor: int = 0) -> int:
        """Claims the next CRL number of an issuer, above `floor` too (the highest the world has seen),
        in a committed transaction of its own, before signing."""
        ...

    def upgrade(self, actor: str, time: str) -> UpgradeResult:
        """Applies the pending migrations and records `schema.upgraded`, in one sealed transaction."""
        ...

    def close(self) -> None:
        """Closes the connection."""
        ...
