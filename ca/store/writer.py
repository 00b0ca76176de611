"""The write side of one transaction, the same SQL on both backends: every state change, each
counted so that none commits without a ledger event."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from kinko.ca import ledger
from kinko.ca.errors import Conflict, StorageError
from kinko.ca.store.accounts import AccountReads
from kinko.ca.store.dialect import Dialect
from kinko.ca.store.records import CERT_COLUMNS as _CERT_COLUMNS
from kinko.ca.store.records import (
    CertificateRecord,
)


class SQLWriter(AccountReads):
    """The write side of one transaction (contract.Writer); every change it makes needs a ledger event."""

    def __init__(self, conn: Any, dialect: Dialect, actor: str, time: str) -> None:
        self._conn = conn
        self._dialect = dialect
        self.actor = actor
        self.time = time
        self._changes = 0
        self._events = 0
        self.head: ledger.Event | None = None
        self.first_seq = 0
        self.changed_authorities = False

    @property
    def changed_state(self) -> bool:
        """Whether this transaction changed anything that needs a ledger event (not only appended events)."""
        return self._changes > 0

    def check_complete(self) -> None:
        """Refuses to commit a change that has no ledger event."""
        if self._changes and not self._events:
            raise StorageError("internal error: a state change without a ledger event was not committed")

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
        head = self._conn.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (head[0] + 1, head[1]) if head else (1, ledger.GENESIS)
        text = ledger.encode_details(dict(details) if details is not None else None)
        digest = ledger.chain_hash(
            prev, ledger.canonical(seq, self.time, self.actor, action, serial, subscriber, customer, text)
        )
        self._conn.execute(
            "INSERT INTO ledger (seq, time, actor, action, serial, subscriber, customer, details, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, self.time, self.actor, action, serial, subscriber, customer, text, prev, digest),
        )
        self._events += 1
        self.first_seq = self.first_seq or seq
        self.head = ledger.Event(seq, self.time, self.actor, action, serial, subscriber, customer, text, prev, digest)
        return self.head

    def reserve_serial(self, serial: str, issuer: str) -> bool:
        """Claims a serial before signing; False if it was ever used (the caller draws again)."""
        # ON CONFLICT, not a caught error: a failed statement aborts a PostgreSQL transaction,
        # and this one goes on with another serial.
        cursor = self._conn.execute(
            "INSERT INTO certificates (serial, issuer, profile, subject, not_before, not_after, status, "
            "spki_sha256) VALUES (?, ?, '', '', '', '', 'reserved', '') ON CONFLICT DO NOTHING",
            (serial, issuer),
        )
        if cursor.rowcount != 1:
            return False
        self._changes += 1
        return True

    def record_certificate(self, record: CertificateRecord) -> None:
        """Fills in a reserved serial with the signed certificate."""
        values = {f.name: getattr(record, f.name) for f in fields(CertificateRecord) if f.name != "serial"}
        assignments = ", ".join(f"{name} = ?" for name in values)
        cursor = self._conn.execute(
            f"UPDATE certificates SET {assignments} WHERE serial = ? AND status = 'reserved'",
            (*values.values(), record.serial),
        )
        if cursor.rowcount != 1:
            raise StorageError("serial {serial} was not reserved before recording", serial=record.serial)
        self._changes += 1

    def active_certificate_with_key(self, spki_sha256: str, now: str) -> str | None:
        """The serial of an unexpired, unrevoked certificate holding this public key, if any."""
        row = self._conn.execute(
            "SELECT serial FROM certificates WHERE spki_sha256 = ? AND status IN ('valid', 'held') "
            "AND not_after >= ? LIMIT 1",
            (spki_sha256, now),
        ).fetchone()
        return row[0] if row else None

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
        self._update_status(
            serial,
            "status IN ('valid', 'held')",
            status="revoked",
            revocation_reason=reason,
            revoked_at=revoked_at or self.time,
            invalidity_date=invalidity_date,
            reported_at=reported_at,
            hold_origin=None,
            status_changed_at=self.time,
            changed_seq=seq,
        )

    def change_revocation_reason(
        self, serial: str, *, reason: str, seq: int, invalidity_date: str | None, reported_at: str | None
    ) -> None:
        """Changes the reason of a revoked certificate (to key-compromise), keeping its revocation date."""
        self._update_status(
            serial,
            "status = 'revoked'",
            revocation_reason=reason,
            invalidity_date=invalidity_date,
            reported_at=reported_at,
            status_changed_at=self.time,
            changed_seq=seq,
        )

    def hold(self, serial: str, *, seq: int, origin: str) -> None:
        """Puts a valid certificate on hold (reason certificateHold) as of this transaction's time."""
        self._update_status(
            serial,
            "status = 'valid'",
            status="held",
            revocation_reason="certificate-hold",
            revoked_at=self.time,
            hold_origin=origin,
            status_changed_at=self.time,
            changed_seq=seq,
        )

    def release(self, serial: str, *, seq: int) -> None:
        """Releases a held certificate: it is good again."""
        self._update_status(
            serial,
            "status = 'held'",
            status="valid",
            revocation_reason=None,
            revoked_at=None,
            invalidity_date=None,
            hold_origin=None,
            status_changed_at=self.time,
            changed_seq=seq,
        )

    def _update_status(self, serial: str, condition: str, **values: Any) -> None:
        assignments = ", ".join(f"{name} = ?" for name in values)
        cursor = self._conn.execute(
            f"UPDATE certificates SET {assignments} WHERE serial = ? AND {condition}", (*values.values(), serial)
        )
        if cursor.rowcount != 1:
            raise Conflict("certificate {serial} changed status meanwhile; try again", serial=serial)
        self._changes += 1

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
        cursor = self._conn.execute(
            "UPDATE crls SET state = 'published', this_update = ?, next_update = ?, entries = ?, "
            "ledger_seq = ?, sha256 = ?, published_at = ? WHERE issuer = ? AND number = ? AND state = 'reserved'",
            (this_update, next_update, entries, ledger_seq, sha256, self.time, issuer, number),
        )
        if cursor.rowcount != 1:
            raise StorageError("CRL number {number} of {issuer} was not reserved", number=number, issuer=issuer)
        self._changes += 1

    def certificate(self, serial: str) -> CertificateRecord | None:
        """Reads a registry row inside this transaction."""
        row = self._conn.execute(
            f"SELECT {_CERT_COLUMNS} FROM certificates WHERE serial = ? AND status != 'reserved'", (serial,)
        ).fetchone()
        return CertificateRecord(*row) if row else None

    def put_ocsp_response(
        self, serial: str, hash_algorithm: str, issuer: str, der: bytes, this_update: str, next_update: str
    ) -> None:
        """Stores a pre-signed OCSP response. Derived from the registry, so it needs no ledger event."""
        self._conn.execute(
            "INSERT INTO ocsp_responses (serial, hash_algorithm, issuer, der, this_update, next_update) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(serial, hash_algorithm) DO UPDATE SET "
            "issuer = excluded.issuer, der = excluded.der, this_update = excluded.this_update, "
            "next_update = excluded.next_update",
            (serial, hash_algorithm, issuer, der, this_update, next_update),
        )

    def add_customer(self, customer_id: str, name: str) -> None:
        """Registers a customer, active from now."""
        try:
            self._conn.execute(
                "INSERT INTO customers (id, name, status, created_at, status_changed_at) VALUES (?, ?, 'active', ?, ?)",
                (customer_id, name, self.time, self.time),
            )
        except self._dialect.integrity_errors:
            raise Conflict("customer {customer} already exists", customer=customer_id) from None
        self._changes += 1

    def set_customer_status(self, customer_id: str, status: str, terminate_at: str | None = None) -> None:
        """Sets a customer's service status (and, for a scheduled end, when it takes effect)."""
        self._conn.execute(
            "UPDATE customers SET status = ?, status_changed_at = ?, terminate_at = COALESCE(?, terminate_at) "
            "WHERE id = ?",
            (status, self.time, terminate_at, customer_id),
        )
        self._changes += 1

    def schedule_termination(self, customer_id: str, terminate_at: str) -> None:
        """Records a future service end, applied when it arrives."""
        self._conn.execute("UPDATE customers SET terminate_at = ? WHERE id = ?", (terminate_at, customer_id))
        self._changes += 1

    def add_subscriber(
        self, subscriber_id: str, customer_id: str, role: str, name: str, created_by: str, email: str | None = None
    ) -> None:
        """Registers an administrator or user of a customer."""
        try:
            self._conn.execute(
                "INSERT INTO subscribers (id, customer_id, role, name, status, created_at, created_by, email) "
                "VALUES (?, ?, ?, ?, 'active', ?, ?, ?)",
                (subscriber_id, customer_id, role, name, self.time, created_by, email),
            )
        except self._dialect.integrity_errors:
            raise Conflict("subscriber {subscriber} already exists", subscriber=subscriber_id) from None
        self._changes += 1

    def add_enrollment(
        self, subscriber_id: str, kind: str, lookup: str, code_hash: str, expires_at: str, created_by: str
    ) -> int:
        """Stores a new enrollment (the code's hash only) and returns its id."""
        cursor = self._conn.execute(
            "INSERT INTO enrollments (subscriber_id, kind, lookup, code_hash, created_at, expires_at, created_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (subscriber_id, kind, lookup, code_hash, self.time, expires_at, created_by),
        )
        self._changes += 1
        return int(cursor.fetchone()[0])

    def redeem_enrollment(self, enrollment_id: int, serial: str) -> None:
        """Marks an enrollment used, by the certificate it produced; a second use is refused."""
        cursor = self._conn.execute(
            "UPDATE enrollments SET redeemed_at = ?, redeemed_serial = ? WHERE id = ? AND redeemed_at IS NULL",
            (self.time, serial, enrollment_id),
        )
        if cursor.rowcount != 1:
            raise Conflict("the enrollment code was used meanwhile")
        self._changes += 1

    def close_enrollments(self, subscriber_id: str) -> None:
        """Closes a subscriber's unused enrollments (a reissue replaces them; a service end ends them)."""
        self._conn.execute(
            "UPDATE enrollments SET closed_at = ? "
            "WHERE subscriber_id = ? AND redeemed_at IS NULL AND closed_at IS NULL",
            (self.time, subscriber_id),
        )
        self._changes += 1

    def mark_enrollment_lapsed(self, enrollment_id: int) -> bool:
        """Notes that an expired, unused enrollment is being recorded; False if another process did."""
        cursor = self._conn.execute(
            "UPDATE enrollments SET expiry_recorded = 1 WHERE id = ? AND expiry_recorded = 0", (enrollment_id,)
        )
        self._changes += 1
        return bool(cursor.rowcount == 1)

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
        """Records an incident report and the procedure carried out."""
        cursor = self._conn.execute(
            "INSERT INTO incidents (subscriber_id, serial, kind, reason, received_at, suspected_since, officer, "
            "recorded_at, revoked_at, suspended_customer, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                subscriber_id,
                serial,
                kind,
                reason,
                received_at,
                suspected_since,
                self.actor,
                self.time,
                revoked_at,
                int(suspended_customer),
                note,
            ),
        )
        self._changes += 1
        return int(cursor.fetchone()[0])

    def remove_officer(self, login: str) -> None:
        """Removes an operator account."""
        self._conn.execute("DELETE FROM officers WHERE login = ?", (login,))
        self._changes += 1

    def set_officer_role(self, login: str, role: str) -> None:
        """Changes an operator account's role."""
        self._conn.execute("UPDATE officers SET role = ? WHERE login = ?", (role, login))
        self._changes += 1

    def compromised_certificate_with_key(self, spki_sha256: str) -> str | None:
        """The serial of a certificate revoked for key-compromise that held this public key, if any."""
        row = self._conn.execute(
            "SELECT serial FROM certificates WHERE spki_sha256 = ? AND status = 'revoked' "
            "AND revocation_reason = 'key-compromise' LIMIT 1",
            (spki_sha256,),
        ).fetchone()
        return row[0] if row else None

    def set_authority(self, role: str, serial: str, key_file: str) -> None:
        """Makes a certificate the current one for a CA role or delegated signer."""
        self._conn.execute(
            "INSERT INTO authorities (role, serial, key_file) VALUES (?, ?, ?) "
            "ON CONFLICT(role) DO UPDATE SET serial = excluded.serial, key_file = excluded.key_file",
            (role, serial, key_file),
        )
        self.changed_authorities = True
        self._changes += 1

    def add_officer(self, login: str, role: str, added_by: str) -> None:
        """Registers an operator account with a role."""
        try:
            self._conn.execute(
                "INSERT INTO officers (login, role, added_at, added_by) VALUES (?, ?, ?, ?)",
                (login, role, self.time, added_by),
            )
        except self._dialect.integrity_errors:
            raise Conflict("officer {login!r} already exists", login=login) from None
        self._changes += 1
