"""Queries about customers, subscribers, enrollments, incidents and officers, shared by the
read side (Store) and the write side (Writer) so that rules can read inside a transaction."""

from __future__ import annotations

from typing import Any

from kinko.ca import ledger
from kinko.ca.store.dialect import Dialect
from kinko.ca.store.records import CERT_COLUMNS as _CERT_COLUMNS
from kinko.ca.store.records import (
    CUSTOMER_COLUMNS,
    ENROLLMENT_COLUMNS,
    INCIDENT_COLUMNS,
    SUBSCRIBER_COLUMNS,
    CertificateRecord,
    CustomerRecord,
    EnrollmentRecord,
    IncidentRecord,
    SubscriberRecord,
)


class AccountReads:
    """Queries about customers, subscribers, enrollments and incidents; Store and Writer share them."""

    # A DB-API connection whose `execute(sql, params)` takes `?` placeholders (postgresql.py adapts psycopg).
    _conn: Any
    _dialect: Dialect

    def customer(self, customer_id: str) -> CustomerRecord | None:
        """A customer by id."""
        row = self._conn.execute(f"SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = ?", (customer_id,)).fetchone()
        return CustomerRecord(*row) if row else None

    def customers(self) -> list[CustomerRecord]:
        """Every customer, by id."""
        return [CustomerRecord(*r) for r in self._conn.execute(f"SELECT {CUSTOMER_COLUMNS} FROM customers ORDER BY id")]

    def subscriber(self, subscriber_id: str) -> SubscriberRecord | None:
        """A subscriber by id."""
        row = self._conn.execute(
            f"SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE id = ?", (subscriber_id,)
        ).fetchone()
        return SubscriberRecord(*row) if row else None

    def subscribers(self, customer_id: str) -> list[SubscriberRecord]:
        """A customer's subscribers, administrators first."""
        rows = self._conn.execute(
            f"SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE customer_id = ? ORDER BY role, id", (customer_id,)
        )
        return [SubscriberRecord(*r) for r in rows]

    def enrollment_by_lookup(self, lookup: str) -> EnrollmentRecord | None:
        """The enrollment a code's public part names."""
        row = self._conn.execute(f"SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE lookup = ?", (lookup,)).fetchone()
        return EnrollmentRecord(*row) if row else None

    def code_refusals(self, client: str, since: str) -> list[tuple[str, str, str | None]]:
        """(time, subscriber or "", locked_until) of a client's code refusals since a time, newest
        first; an officer's clearing of its lock is a row whose locked_until is ""."""
        # The ledger is the record the rate limit counts: a refusal and its count commit together.
        # An unindexed action keeps SQLite on the time index: the window is short, the history of refusals long.
        d = self._dialect
        rows = self._conn.execute(
            "SELECT time, subscriber, CASE action WHEN 'enrollment.lock-cleared' THEN '' "
            f"ELSE {d.json_text('details', 'locked_until')} END FROM ledger "
            f"WHERE time >= ? AND {d.unindexed('action')} IN ('enrollment.code-refused', 'enrollment.lock-cleared') "
            f"AND {d.json_text('details', 'client')} = ? ORDER BY seq DESC",
            (since, client),
        )
        return [(str(r[0]), str(r[1]), None if r[2] is None else str(r[2])) for r in rows]

    def code_locks(self, since: str) -> list[tuple[str, str, str]]:
        """(client, subscriber or "", locked_until) of every refusal since a time that set a lock."""
        d = self._dialect
        locked_until = d.json_text("details", "locked_until")
        rows = self._conn.execute(
            f"SELECT {d.json_text('details', 'client')}, subscriber, {locked_until} "
            f"FROM ledger WHERE time >= ? AND {d.unindexed('action')} = 'enrollment.code-refused' "
            f"AND {locked_until} IS NOT NULL ORDER BY seq",
            (since,),
        )
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def enrollments(self, subscriber_id: str) -> list[EnrollmentRecord]:
        """A subscriber's enrollments, newest first."""
        rows = self._conn.execute(
            f"SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE subscriber_id = ? ORDER BY id DESC", (subscriber_id,)
        )
        return [EnrollmentRecord(*r) for r in rows]

    def open_enrollments(self, expiring_before: str, now: str) -> list[EnrollmentRecord]:
        """Unredeemed enrollments still usable at `now` that expire before `expiring_before`."""
        rows = self._conn.execute(
            f"SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE redeemed_at IS NULL AND closed_at IS NULL "
            "AND expires_at >= ? AND expires_at <= ? ORDER BY expires_at",
            (now, expiring_before),
        )
        return [EnrollmentRecord(*r) for r in rows]

    def lapsed_enrollments(self, now: str) -> list[EnrollmentRecord]:
        """Enrollments that expired unused and were not yet recorded as such."""
        rows = self._conn.execute(
            f"SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE redeemed_at IS NULL AND closed_at IS NULL "
            "AND expires_at < ? AND expiry_recorded = 0 ORDER BY id",
            (now,),
        )
        return [EnrollmentRecord(*r) for r in rows]

    def subscriber_certificates(self, subscriber_id: str) -> list[CertificateRecord]:
        """A subscriber's certificates, newest first."""
        rows = self._conn.execute(
            f"SELECT {_CERT_COLUMNS} FROM certificates WHERE subscriber_id = ? AND status != 'reserved' "
            "ORDER BY not_before DESC, rowid DESC",
            (subscriber_id,),
        )
        return [CertificateRecord(*r) for r in rows]

    def customer_certificates(self, customer_id: str, statuses: tuple[str, ...], now: str) -> list[CertificateRecord]:
        """Unexpired certificates of all of a customer's subscribers with one of `statuses`."""
        marks = ", ".join("?" for _ in statuses)
        rows = self._conn.execute(
            f"SELECT {', '.join('c.' + c for c in _CERT_COLUMNS.split(', '))} FROM certificates c "
            "JOIN subscribers s ON s.id = c.subscriber_id "
            f"WHERE s.customer_id = ? AND c.status IN ({marks}) AND c.not_after >= ? ORDER BY c.serial",
            (customer_id, *statuses, now),
        )
        return [CertificateRecord(*r) for r in rows]

    def held_by(self, origin: str) -> list[CertificateRecord]:
        """Certificates on hold with a given origin (e.g. one customer's suspension)."""
        rows = self._conn.execute(
            f"SELECT {_CERT_COLUMNS} FROM certificates WHERE status = 'held' AND hold_origin = ? ORDER BY serial",
            (origin,),
        )
        return [CertificateRecord(*r) for r in rows]

    def expiring_certificates(self, now: str, before: str) -> list[CertificateRecord]:
        """Valid subscriber certificates whose notAfter falls between now and `before`."""
        rows = self._conn.execute(
            f"SELECT {_CERT_COLUMNS} FROM certificates WHERE status = 'valid' AND subscriber_id IS NOT NULL "
            "AND not_after >= ? AND not_after <= ? ORDER BY not_after",
            (now, before),
        )
        return [CertificateRecord(*r) for r in rows]

    def due_terminations(self, now: str) -> list[CustomerRecord]:
        """Customers whose scheduled service end has arrived but was not yet applied."""
        rows = self._conn.execute(
            f"SELECT {CUSTOMER_COLUMNS} FROM customers WHERE status != 'terminated' AND terminate_at IS NOT NULL "
            "AND terminate_at <= ? ORDER BY id",
            (now,),
        )
        return [CustomerRecord(*r) for r in rows]

    def officer_role(self, login: str) -> str | None:
        """The role of a registered operator account, or None."""
        row = self._conn.execute("SELECT role FROM officers WHERE login = ?", (login,)).fetchone()
        return row[0] if row else None

    def officers(self) -> list[tuple[str, str, str, str]]:
        """(login, role, added_at, added_by) of every operator."""
        return list(self._conn.execute("SELECT login, role, added_at, added_by FROM officers ORDER BY login"))

    def count_admins(self) -> int:
        """How many admins there are."""
        return int(self._conn.execute("SELECT COUNT(*) FROM officers WHERE role = 'admin'").fetchone()[0])

    def incidents(self, subscriber_id: str | None = None) -> list[IncidentRecord]:
        """Recorded incidents, newest first."""
        sql = f"SELECT {INCIDENT_COLUMNS} FROM incidents"
        params: tuple[str, ...] = ()
        if subscriber_id is not None:
            sql += " WHERE subscriber_id = ?"
            params = (subscriber_id,)
        return [IncidentRecord(*r) for r in self._conn.execute(sql + " ORDER BY id DESC", params)]

    def last_status_event(self, serial: str) -> ledger.Event | None:
        """The newest event that set a certificate's revocation status."""
        from kinko.ca.store.contract import STATUS_ACTIONS

        row = self._conn.execute(
            "SELECT seq, time, actor, action, serial, subscriber, customer, details, prev_hash, hash FROM ledger "
            f"WHERE serial = ? AND action IN ({', '.join('?' for _ in STATUS_ACTIONS)}) ORDER BY seq DESC LIMIT 1",
            (serial, *STATUS_ACTIONS),
        ).fetchone()
        return ledger.Event(*row) if row else None

    def last_event(self, action: str, subscriber: str | None = None) -> ledger.Event | None:
        """The newest event with an action (e.g. config.changed), or with it about a subscriber."""
        where, params = (
            ("action = ?", (action,)) if subscriber is None else ("action = ? AND subscriber = ?", (action, subscriber))
        )
        row = self._conn.execute(
            "SELECT seq, time, actor, action, serial, subscriber, customer, details, prev_hash, hash FROM ledger "
            f"WHERE {where} ORDER BY seq DESC LIMIT 1",
            params,
        ).fetchone()
        return ledger.Event(*row) if row else None

    def officer_event(self, login: str) -> ledger.Event | None:
        """The newest officer.added, officer.role-changed or officer.removed event of a login: what its role must be."""
        row = self._conn.execute(
            "SELECT seq, time, actor, action, serial, subscriber, customer, details, prev_hash, hash FROM ledger "
            "WHERE action IN ('officer.added', 'officer.role-changed', 'officer.removed') "
            f"AND {self._dialect.json_text('details', 'login')} = ? "
            "ORDER BY seq DESC LIMIT 1",
            (login,),
        ).fetchone()
        return ledger.Event(*row) if row else None

    def enrollment_events(self, enrollment_id: int) -> list[ledger.Event]:
        """The events that made and redeemed an enrollment, in order."""
        rows = self._conn.execute(
            "SELECT seq, time, actor, action, serial, subscriber, customer, details, prev_hash, hash FROM ledger "
            "WHERE action IN ('enrollment.created', 'enrollment.redeemed') "
            f"AND {self._dialect.json_equals_integer('details', 'enrollment')} ORDER BY seq",
            (enrollment_id,),
        )
        return [ledger.Event(*row) for row in rows]
