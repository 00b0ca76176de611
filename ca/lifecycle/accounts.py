"""Customers, their administrators and users, enrollments, and the holder's own actions:
acquire, renew, re-acquire, reissue."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass

from kinko.ca import enrollments, integrity, profiles, windows
from kinko.ca.clock import to_text
from kinko.ca.csr import AcceptedCSR, load_csr
from kinko.ca.errors import Conflict, InputError, NotFound, PolicyError
from kinko.ca.lifecycle import proofs
from kinko.ca.lifecycle.issuing import Issuance, require_active_customer
from kinko.ca.lifecycle.revocation import Revocation
from kinko.ca.lifecycle.session import Issued, Session
from kinko.ca.replay import confirm_enrollment
from kinko.ca.store import CustomerRecord, EnrollmentRecord, Store, SubscriberRecord, Writer

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
MAX_CODE_FAILURES = 5  # wrong codes for one holder from one client within LOCKOUT
MAX_CLIENT_FAILURES = 20  # wrong codes from one client within LOCKOUT, whoever they were for
# Compared when no enrollment was found, so that path costs the same hash comparison.
_NO_CODE = "0" * enrollments.GROUPS * enrollments.GROUP_SIZE
_NO_HASH = enrollments.code_hash(_NO_CODE[:-1] + "1")
# Attempts at a free random id or lookup before giving up: with 40 bits each, a real clash
# is already rare, and a loop that never ends would hold the write lock for ever.
MAX_DRAWS = 16
LOCKOUT = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class Enrolled:
    """A new enrollment: the code is shown once, here, and never stored in clear."""

    subscriber_id: str
    customer_id: str
    role: str
    name: str
    code: str
    expires_at: str
    kind: str


class Accounts:
    """The bank's customers and their certificate holders."""

    def __init__(self, session: Session, issuance: Issuance, revocation: Revocation) -> None:
        self.s = session
        self.issuance = issuance
        self.revocation = revocation

    # -- customers -------------------------------------------------------------------------------

    def add_customer(self, customer_id: str, name: str) -> CustomerRecord:
        """Registers a customer (a company using the service), active from now."""
        if not _ID.match(customer_id):
            raise InputError(
                "customer id {customer!r}: use letters, digits, '.', '_' or '-' (at most 32)", customer=customer_id
            )
        profiles.subject_name(name)  # the name goes into certificates: same limits
        now = self.s.clock.now()
        with self.s.store.transaction(self.s.actor, self.s.text(now)) as tx:
            tx.add_customer(customer_id, name.strip())
            tx.append_event("customer.added", customer=customer_id, details={"name": name.strip()})
        return self._customer(customer_id)

    def _customer(self, customer_id: str) -> CustomerRecord:
        customer = self.s.store.customer(customer_id)
        if customer is None:
            raise NotFound("no customer {customer}", customer=customer_id)
        return customer

    # -- enrollments -------------------------------------------------------------------------------

    def enroll_administrator(
        self, customer_id: str, name: str, subscriber_id: str | None = None, email: str | None = None
    ) -> Enrolled:
        """Creates an administrator and its enrollment (the bank, after the customer's application)."""
        return self._enroll(customer_id, name, "administrator", subscriber_id, by=None, email=email)

    def enroll_user(
        self, customer_id: str, name: str, by: str, subscriber_id: str | None = None, email: str | None = None
    ) -> Enrolled:
        """Creates a user and its enrollment on behalf of that customer's administrator."""
        return self._enroll(customer_id, name, "user", subscriber_id, by=by, email=email)

    def enroll_user_by_administrator(
        self, presented: bytes, customer_id: str, name: str, email: str | None = None
    ) -> Enrolled:
        """A user's enrollment asked for by the administrator whose client certificate (verified by
        the front end's TLS layer) is `presented`: the administrator is that certificate's holder."""
        now_text = self.s.text(self.s.clock.now())
        record = proofs.presented_record(self.s.store, presented, now_text)
        assert record.subscriber_id is not None
        return self._enroll(
            customer_id, name, "user", None, by=record.subscriber_id, by_serial=record.serial, email=email
        )

    def _enroll(
        self,
        customer_id: str,
        name: str,
        role: str,
        subscriber_id: str | None,
        by: str | None,
        by_serial: str | None = None,
        email: str | None = None,
    ) -> Enrolled:
        if subscriber_id is not None and not _ID.match(subscriber_id):
            raise InputError(
                "subscriber id {subscriber!r}: use letters, digits, '.', '_' or '-' (at most 32)",
                subscriber=subscriber_id,
            )
        profiles.subject_name(name)
        email = profiles.checked_email(email) if email is not None else None
        now = self.s.clock.now()
        with self.s.store.transaction(self.s.actor, self.s.text(now)) as tx:
            customer = require_active_customer(tx.customer(customer_id), customer_id)
            if by is not None:
                self._require_acting_administrator(tx, by, customer.id, now, by_serial)
            new_id = subscriber_id or self._new_subscriber_id(tx)
            tx.add_subscriber(new_id, customer.id, role, name.strip(), by or self.s.actor, email)
            details: dict[str, object] = {"role": role, "name": name.strip(), "on_behalf_of": by}
            if email is not None:
                details["email"] = email
            tx.append_event("subscriber.added", subscriber=new_id, customer=customer.id, details=details)
            enrolled = self._new_enrollment(tx, new_id, customer.id, role, name.strip(), "new", now, by)
        return enrolled

    def _require_acting_administrator(
        self, tx: Writer, admin_id: str, customer_id: str, now: dt.datetime, presented_serial: str | None = None
    ) -> None:
        """A user's enrollment or reissue needs an administrator of the same customer with a valid
        certificate (the presented one, when the caller proved the administrator by it)."""
        admin = tx.subscriber(admin_id)
        if admin is None:
            raise NotFound("no subscriber {admin}: --by names the customer's administrator", admin=admin_id)
        if admin.role != "administrator":
            raise PolicyError(
                "{admin} is not an administrator; only a customer's administrator acts for users", admin=admin_id
            )
        if admin.customer_id != customer_id:
            raise PolicyError("administrator {admin} belongs to another customer; refused", admin=admin_id)
        current = next(iter(tx.subscriber_certificates(admin_id)), None)
        if current is None or current.status != "valid" or current.not_after < self.s.text(now):
            raise PolicyError("administrator {admin} holds no valid certificate; refused", admin=admin_id)
        if presented_serial is not None and current.serial != presented_serial:
            raise PolicyError(
                "the client certificate {serial} is not its holder's current certificate", serial=presented_serial
            )

    @staticmethod
    def _new_subscriber_id(tx: Writer) -> str:
        for _ in range(MAX_DRAWS):
            candidate = "S" + "".join(secrets.choice(enrollments.ALPHABET) for _ in range(8))
            if tx.subscriber(candidate) is None:
                return candidate
        raise Conflict("no free subscriber id after {draws} random draws; give one with --id", draws=MAX_DRAWS)

    def _new_enrollment(
        self,
        tx: Writer,
        subscriber_id: str,
        customer_id: str,
        role: str,
        name: str,
        kind: str,
        now: dt.datetime,
        by: str | None,
    ) -> Enrolled:
        for _ in range(MAX_DRAWS):
            code = enrollments.new_code()
            normalized = enrollments.normalize(code)
            assert normalized is not None
            if not any(tx.enrollment_by_lookup(key) for key in enrollments.lookup_keys(normalized)):
                break
        else:
            raise Conflict("no free enrollment code after {draws} random draws; nothing was changed", draws=MAX_DRAWS)
        expires = to_text(windows.enrollment_expiry(now, self.s.config.lifecycle)) or ""
        enrollment_id = tx.add_enrollment(
            subscriber_id,
            kind,
            enrollments.lookup_key(normalized),
            enrollments.code_hash(normalized),
            expires,
            by or self.s.actor,
        )
        tx.append_event(
            "enrollment.created",
            subscriber=subscriber_id,
            customer=customer_id,
            details={
                "enrollment": enrollment_id,
                "kind": kind,
                "expires_at": expires,
                "on_behalf_of": by,
                # A hash of the stored hash: the code itself never reaches the ledger.
                "code_commitment": enrollments.code_commitment(
                    enrollments.lookup_key(normalized), enrollments.code_hash(normalized)
                ),
            },
        )
        return Enrolled(subscriber_id, customer_id, role, name, code, expires, kind)

    def reissue(self, subscriber_id: str, by: str | None = None) -> Enrolled:
        """A new enrollment for an existing holder; the current certificate is superseded on acquisition.

        Administrators are reissued by the bank (no --by); users by their administrator (--by)."""
        now = self.s.clock.now()
        with self.s.store.transaction(self.s.actor, self.s.text(now)) as tx:
            subscriber = self._subscriber(tx, subscriber_id)
            customer = require_active_customer(tx.customer(subscriber.customer_id), subscriber.customer_id)
            if subscriber.role == "administrator" and by is not None:
                raise PolicyError(
                    "an administrator's reissue is applied for to the bank: the officer runs it, without --by"
                )
            if subscriber.role == "user":
                if by is None:
                    raise PolicyError("a user's reissue is made by the customer's administrator: give --by ADMIN")
                self._require_acting_administrator(tx, by, customer.id, now)
            tx.close_enrollments(subscriber.id)
            enrolled = self._new_enrollment(
                tx, subscriber.id, customer.id, subscriber.role, subscriber.name, "reissue", now, by
            )
        return enrolled

    @staticmethod
    def _subscriber(tx: Writer | Store, subscriber_id: str) -> SubscriberRecord:
        subscriber = tx.subscriber(subscriber_id)
        if subscriber is None:
            raise NotFound("no subscriber {subscriber}", subscriber=subscriber_id)
        return subscriber

    # -- the holder's actions -----------------------------------------------------------------------

    def acquire(self, code: str, csr_data: bytes, client: str | None = None) -> Issued:
        """Redeems an enrollment code within its window: a one-year certificate for its subscriber.

        `client` names who typed the code (the API: the front end's forwarded address) for the rate limit."""
        now = self.s.clock.now()
        now_text = self.s.text(now)
        client = client or f"cli:{self.s.actor}"
        # Locked: the same reply whatever the code, before it is even looked up.
        locked_until = self._locked_until(self.s.store, client, now)
        if locked_until is not None:
            raise PolicyError("too many wrong codes; try again after {until}", until=locked_until)
        normalized = enrollments.normalize(code)
        enrollment = self._find_enrollment(normalized)
        # The same work whether or not a row was found: a hash comparison, then one recorded
        # refusal (a write, an fsync and a checkpoint signature), so time tells nothing.
        matches = enrollments.matches(normalized or _NO_CODE, enrollment.code_hash if enrollment else _NO_HASH)
        usable = (
            enrollment is not None
            and matches
            and enrollment.redeemed_at is None
            and enrollment.closed_at is None
            and now_text <= enrollment.expires_at
        )
        if enrollment is None or not usable:
            # A code once right (used, voided or expired: from shell history, an old letter) is not
            # a guess: it does not count toward the lock, and is not recorded either (nothing changes,
            # and a replay loop must not cost an fsync and a signature each). Only whoever holds
            # that very code can tell the reply came sooner; its text is a wrong code's.
            if enrollment is None or not matches:
                self._count_code_failure(client, enrollment, now)
            raise PolicyError(windows.BAD_CODE)
        subscriber = self.s.store.subscriber(enrollment.subscriber_id)
        assert subscriber is not None
        accepted = load_csr(csr_data)
        self.s.load_signing_keys()
        with (
            integrity.recorded(self.s.store, self.s.actor, now_text),
            self.s.store.transaction(self.s.actor, now_text) as tx,
        ):
            customer = require_active_customer(tx.customer(subscriber.customer_id), subscriber.customer_id)
            fresh = tx.enrollment_by_lookup(enrollment.lookup)
            if fresh is None or fresh.redeemed_at is not None or fresh.closed_at is not None:
                raise PolicyError(windows.BAD_CODE)
            # A code is redeemed only as the ledger made it: not again, and not with a hash swapped in.
            mismatch = confirm_enrollment(fresh, tx.enrollment_events(fresh.id))
            if mismatch is not None:
                raise integrity.refuse(mismatch, f"certificate for enrollment {fresh.id}", doing="issue a")
            current = [r for r in tx.subscriber_certificates(subscriber.id) if windows.is_active(r, now_text)]
            if current and enrollment.kind != "reissue":
                raise PolicyError(
                    "subscriber {subscriber} already has an active certificate ({serial})",
                    subscriber=subscriber.id,
                    serial=current[0].serial,
                )
            issued = self._issue_for(tx, accepted, subscriber, customer, now)
            tx.redeem_enrollment(enrollment.id, issued.record.serial)
            tx.append_event(
                "enrollment.redeemed",
                serial=issued.record.serial,
                subscriber=subscriber.id,
                customer=customer.id,
                details={"enrollment": enrollment.id, "kind": enrollment.kind},
            )
            action = "certificate.reissued" if enrollment.kind == "reissue" else "certificate.issued"
            tx.append_event(
                action,
                serial=issued.record.serial,
                subscriber=subscriber.id,
                customer=customer.id,
                details=self.issuance.details(issued.record, via="enrollment", enrollment=enrollment.id),
            )
            for old in current:
                self.revocation.revoke_in(
                    tx, old, "superseded", now, customer=customer.id, superseded_by=issued.record.serial
                )
        if current:
            self.s.publish_after({old.issuer for old in current}, now)
        return issued

    def _find_enrollment(self, normalized: str | None) -> EnrollmentRecord | None:
        if normalized is None:
            return None
        # Both queries always: which one finds the row must not show in the time taken.
        found = [self.s.store.enrollment_by_lookup(key) for key in enrollments.lookup_keys(normalized)]
        return found[0] or found[1]

    def _locked_until(self, reader: Store | Writer, client: str, now: dt.datetime) -> str | None:
        """Until when a client is locked out of trying codes, or None."""
        # A lock lasts LOCKOUT from the refusal that set it: any lock still running was set within it.
        now_text = self.s.text(now)
        for _time, _subscriber, until in reader.code_refusals(client, self.s.text(now - LOCKOUT)):
            if until == "":
                return None  # an officer cleared it since: the newest lock is the longest, and it is gone
            if until is not None:
                return until if until > now_text else None
        return None

    def code_locks(self, subscriber_id: str | None = None) -> list[tuple[str, str, str]]:
        """(client, subscriber, locked_until) of the locks running now, a holder's or all."""
        now = self.s.clock.now()
        # Each client's newest lock is the one running (it ends last); the holder is that lock's.
        newest: dict[str, tuple[str, str]] = {}
        for client, subscriber, until in self.s.store.code_locks(self.s.text(now - LOCKOUT)):
            newest[client] = (subscriber, until)  # oldest first: the newest wins
        found = []
        for client, (subscriber, until) in newest.items():
            if (subscriber_id is None or subscriber == subscriber_id) and self._locked_until(
                self.s.store, client, now
            ) == until:
                found.append((client, subscriber, until))
        return found

    def clear_code_lock(self, client: str) -> str:
        """An officer lifts a client's lock (the holder called the bank); recorded. Returns when it would have ended."""
        now = self.s.clock.now()
        if client == f"cli:{self.s.actor}":
            raise PolicyError("{client} is your own lock: another officer lifts it", client=client)
        with self.s.store.transaction(self.s.actor, self.s.text(now)) as tx:
            until = self._locked_until(tx, client, now)
            if until is None:
                raise Conflict("client {client} is not locked out of trying codes", client=client)
            tx.append_event("enrollment.lock-cleared", details={"client": client, "locked_until": until})
        return until

    def _count_code_failure(self, client: str, enrollment: EnrollmentRecord | None, now: dt.datetime) -> None:
        # Recorded even though the command is refused: the rate limit counts these events.
        with self.s.store.transaction(self.s.actor, self.s.text(now)) as tx:
            # The same lookup on both paths (no subscriber has the empty id).
            subscriber = tx.subscriber(enrollment.subscriber_id if enrollment else "")
            holder = subscriber.id if subscriber else ""
            earlier = tx.code_refusals(client, self.s.text(now - LOCKOUT))
            attempts, locked = _attempts(earlier, holder, now)
            tx.append_event(
                "enrollment.code-refused",
                subscriber=holder,
                customer=subscriber.customer_id if subscriber else "",
                details={"client": client, "attempts": attempts, "locked_until": locked},
            )

    def renew_by_holder(self, presented: bytes, csr_data: bytes) -> Issued:
        """Renews the client certificate the holder logged in with (verified by the front end's TLS
        layer and presented here): it must be the holder's current, valid certificate."""
        record = proofs.presented_record(self.s.store, presented, self.s.text(self.s.clock.now()))
        return self.renew(record.serial, csr_data)

    def renew(self, serial: str, csr_data: bytes) -> Issued:
        """Renews within notAfter - renewal_days .. notAfter with a new key; the old one is superseded."""
        now = self.s.clock.now()
        old = self.s.certificate(serial)
        if old.subscriber_id is None:
            raise PolicyError(
                "certificate {serial} belongs to no subscriber; issue a new one with `kinko issue`", serial=old.serial
            )
        windows.check_renewal(old, now, self.s.config.lifecycle)
        accepted = load_csr(csr_data)
        if accepted.spki_sha256 == old.spki_sha256:
            raise PolicyError("renewal needs a new key pair; the CSR carries the current certificate's key")
        self.s.load_signing_keys()
        with self.s.store.transaction(self.s.actor, self.s.text(now)) as tx:
            subscriber = self._subscriber(tx, old.subscriber_id)
            customer = require_active_customer(tx.customer(subscriber.customer_id), subscriber.customer_id)
            current = tx.certificate(old.serial)
            assert current is not None
            windows.check_renewal(current, now, self.s.config.lifecycle)  # again under the write lock
            issued = self._issue_for(tx, accepted, subscriber, customer, now)
            tx.append_event(
                "certificate.renewed",
                serial=issued.record.serial,
                subscriber=subscriber.id,
                customer=customer.id,
                details=self.issuance.details(issued.record, replaces=old.serial),
            )
            self.revocation.revoke_in(
                tx, old, "superseded", now, customer=customer.id, superseded_by=issued.record.serial
            )
        self.s.publish_after({old.issuer}, now)
        return issued

    def reacquire_by_holder(self, subscriber_id: str, csr_data: bytes, signature: bytes) -> Issued:
        """Re-acquires for a holder who proves itself by a signature over the new CSR's DER made
        with the expired certificate's key."""
        return self._reacquire(subscriber_id, csr_data, signature)

    def reacquire(self, subscriber_id: str, csr_data: bytes) -> Issued:
        """Re-acquires after an unrevoked expiry, within notAfter .. notAfter + grace_days (an officer's act)."""
        return self._reacquire(subscriber_id, csr_data, None)

    def _reacquire(self, subscriber_id: str, csr_data: bytes, signature: bytes | None) -> Issued:
        now = self.s.clock.now()
        subscriber = self._subscriber(self.s.store, subscriber_id)
        history = self.s.store.subscriber_certificates(subscriber.id)
        if not history:
            raise PolicyError(
                "subscriber {subscriber} has no certificate yet; acquire one with its enrollment code",
                subscriber=subscriber.id,
            )
        windows.check_reacquire(history[0], subscriber.role, now, self.s.config.lifecycle)
        accepted = load_csr(csr_data)
        if signature is not None:
            proofs.verify_by_old_key(history[0], accepted.der, signature)
        self.s.load_signing_keys()
        with self.s.store.transaction(self.s.actor, self.s.text(now)) as tx:
            customer = require_active_customer(tx.customer(subscriber.customer_id), subscriber.customer_id)
            # Again under the write lock: a second re-acquisition may have committed meanwhile.
            proved = history[0].serial
            history = tx.subscriber_certificates(subscriber.id)
            windows.check_reacquire(history[0], subscriber.role, now, self.s.config.lifecycle)
            if signature is not None and history[0].serial != proved:
                raise PolicyError(
                    "subscriber {subscriber} has a newer certificate; the signature proves nothing",
                    subscriber=subscriber.id,
                )
            issued = self._issue_for(tx, accepted, subscriber, customer, now)
            tx.append_event(
                "certificate.reacquired",
                serial=issued.record.serial,
                subscriber=subscriber.id,
                customer=customer.id,
                details=self.issuance.details(issued.record, previous=history[0].serial),
            )
            # At exactly notAfter the old certificate is still valid (X.509 validity is inclusive):
            # supersede it, so the holder never has two.
            still_active = history[0].status == "valid" and history[0].not_after >= self.s.text(now)
            if still_active:
                self.revocation.revoke_in(
                    tx, history[0], "superseded", now, customer=customer.id, superseded_by=issued.record.serial
                )
        if still_active:
            self.s.publish_after({history[0].issuer}, now)
        return issued

    def _issue_for(
        self,
        tx: Writer,
        accepted: AcceptedCSR,
        subscriber: SubscriberRecord,
        customer: CustomerRecord,
        now: dt.datetime,
    ) -> Issued:
        # The subject names the holder, the company and the subscriber id, so the login front
        # end can map a certificate to its account.
        subject = profiles.subject_name(subscriber.name, customer.name, serial_number=subscriber.id)
        return self.issuance.issue_in(tx, accepted, subject=subject, now=now, subscriber_id=subscriber.id)


def _attempts(earlier: list[tuple[str, str, str | None]], holder: str, now: dt.datetime) -> tuple[int, str | None]:
    """A new wrong code's count (this client's, for this holder) and the lock it sets, if any:
    at MAX_CODE_FAILURES for one holder or MAX_CLIENT_FAILURES in all within LOCKOUT."""
    # Only the client is ever locked, never the holder: someone guessing a holder's codes
    # locks out their own address, while the holder's own attempts from elsewhere go on.
    counted = []
    for refusal in earlier:  # newest first; those before the last lock were paid for by it
        if refusal[2] is not None:
            break
        counted.append(refusal)
    total = len(counted) + 1
    for_holder = 1 + sum(1 for _, subscriber, _ in counted if subscriber == holder) if holder else 0
    if for_holder >= MAX_CODE_FAILURES or total >= MAX_CLIENT_FAILURES:
        return max(total, for_holder), to_text(now + LOCKOUT)
    return (for_holder or total), None
