"""Replaying the ledger: the state its events say the CA is in, compared with what the tables hold.

Every table that a signature or a decision is made from (certificates and their revocation
fields, officers, customers, subscribers, enrollments, authorities, CRLs, pre-signed OCSP
responses) is rebuilt from the events alone, then compared row by row. An UPDATE made behind
Kinko's back, with the ledger left as it was, is named here by table, key and the event it
contradicts. Events written by older Kinko versions carry fewer facts; what they do not say
is not compared (the `schema.upgraded` event to version 3 attests the key references).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kinko.ca.enrollments import code_commitment
from kinko.ca.i18n import Phrase
from kinko.ca.integrity import Mismatch
from kinko.ca.ledger import EDITED, Event

if TYPE_CHECKING:
    from kinko.ca.store import EnrollmentRecord, Reader

# What one certificate's events decide, by registry column.
Facts = dict[str, object]


@dataclass
class _Row:
    """The expected row of one entity, and the event that last decided it."""

    facts: Facts
    seq: int
    action: str


@dataclass
class LedgerState:
    """The CA's state as the ledger's events decide it."""

    retention_days: int = 0
    certificates: dict[str, _Row] = field(default_factory=dict)
    officers: dict[str, _Row] = field(default_factory=dict)
    customers: dict[str, _Row] = field(default_factory=dict)
    subscribers: dict[str, _Row] = field(default_factory=dict)
    enrollments: dict[str, _Row] = field(default_factory=dict)
    authorities: dict[str, _Row] = field(default_factory=dict)
    crls: dict[str, _Row] = field(default_factory=dict)
    problems: list[Mismatch] = field(default_factory=list)
    issuing_role: str = "root"

    def apply(self, event: Event) -> None:
        """Applies one event to the state."""
        handler = _HANDLERS.get(event.action)
        if handler is not None:
            handler(self, event, json.loads(event.details))

    # -- helpers ------------------------------------------------------------------------------

    def _set(self, table: dict[str, _Row], key: str, event: Event, **facts: object) -> None:
        row = table.get(key)
        if row is None:
            table[key] = _Row(dict(facts), event.seq, event.action)
        else:
            row.facts.update(facts)
            row.seq, row.action = event.seq, event.action

    def _new_certificate(self, event: Event, issuer: str, profile: str | None, details: dict[str, object]) -> None:
        facts: Facts = {
            "issuer": issuer,
            "subscriber_id": event.subscriber or None,
            "issued_at": event.time,
            "status": "valid",
            "revoked_at": None,
            "revocation_reason": None,
            "invalidity_date": None,
            "reported_at": None,
            "hold_origin": None,
            "changed_seq": None,
        }
        if profile is not None:
            facts["profile"] = profile
        for name in ("subject", "not_before", "not_after", "spki_sha256", "fingerprint_sha256", "profile"):
            if details.get(name) is not None:
                facts[name] = details[name]
        if details.get("fingerprint") is not None:  # ca.created names it so
            facts["fingerprint_sha256"] = details["fingerprint"]
        self.certificates[event.serial] = _Row(facts, event.seq, event.action)

    def _status(self, event: Event, **facts: object) -> None:
        row = self.certificates.get(event.serial)
        if row is None:
            self.problems.append(
                Mismatch(
                    "ledger",
                    str(event.seq),
                    Phrase("{action} of {serial}, never issued", {"action": event.action, "serial": event.serial}),
                )
            )
            return
        row.facts.update(status_changed_at=event.time, changed_seq=event.seq, **facts)
        row.seq, row.action = event.seq, event.action

    def _close_open_enrollments(self, subscribers: set[str], event: Event) -> None:
        for row in self.enrollments.values():
            facts = row.facts
            if facts["subscriber_id"] in subscribers and facts["redeemed_at"] is None and facts["closed_at"] is None:
                facts["closed_at"] = event.time
                row.seq, row.action = event.seq, event.action


def _ca_created(state: LedgerState, event: Event, details: dict[str, object]) -> None:
    role = str(details["role"])
    if role == "issuing":
        state.issuing_role = "issuing"
    state._new_certificate(event, "root", f"{role}-ca", details)
    state._set(state.authorities, role, event, serial=event.serial, key_file=details.get("key_file", f"{role}.key"))


def _signer_issued(state: LedgerState, event: Event, details: dict[str, object]) -> None:
    if event.action == "ocsp.signer-issued":
        issuer, profile, role = str(details["issuer"]), "ocsp-signer", f"ocsp:{details['issuer']}"
    else:
        issuer, profile, role = str(details.get("issuer", state.issuing_role)), "audit-signer", "audit"
    state._new_certificate(event, issuer, profile, details)
    facts: Facts = {"serial": event.serial}
    if "key_file" in details:
        facts["key_file"] = details["key_file"]
    state._set(state.authorities, role, event, **facts)
    # A new signer's key reference is recorded from version 3 on; an older one is attested at the upgrade.
    if "key_file" not in details:
        state.authorities[role].facts.pop("key_file", None)


def _issued(state: LedgerState, event: Event, details: dict[str, object]) -> None:
    state._new_certificate(event, str(details.get("issuer", state.issuing_role)), None, details)


def _revoked(state: LedgerState, event: Event, details: dict[str, object]) -> None:
    state._status(
        event,
        status="revoked",
        revocation_reason=details["reason"],
        revoked_at=details.get("revoked_at") or event.time,
        invalidity_date=details.get("invalidity_date"),
        reported_at=details.get("reported_at"),
        hold_origin=None,
    )


def _reason_changed(state: LedgerState, event: Event, details: dict[str, object]) -> None:
    row = state.certificates.get(event.serial)
    before = row.facts if row is not None else {}
    state._status(
        event,
        revocation_reason=details["reason"],
        invalidity_date=details.get("invalidity_date") or before.get("invalidity_date"),
        reported_at=details.get("reported_at") or before.get("reported_at"),
    )


def _held(state: LedgerState, event: Event, details: dict[str, object]) -> None:
    state._status(
        event, status="held", revocation_reason="certificate-hold", revoked_at=event.time, hold_origin=details["origin"]
    )


def _released(state: LedgerState, event: Event, _details: dict[str, object]) -> None:
    state._status(
        event, status="valid", revocation_reason=None, revoked_at=None, invalidity_date=None, hold_origin=None
    )


def _officer(state: LedgerState, event: Event, details: dict[str, object]) -> None:
    login = str(details["login"])
    if event.action == "officer.removed":
        state.officers.pop(login, None)
    else:
        state._set(state.officers, login, event, role=details["role"])


def _customer(state: LedgerState, event: Event, details: dict[str, object]) -> None:
    key = event.customer
    if event.action == "customer.added":
        state._set(state.customers, key, event, name=details["name"], status="active", terminate_at=None)
    elif event.action == "customer.suspended":
        state._set(state.customers, key, event, status="suspended")
    elif event.action == "customer.resumed":
        state._set(state.customers, key, event, status="active")
    elif event.action == "customer.termination-scheduled":
        state._set(state.customers, key, event, terminate_at=details["effective"])
    else:  # customer.terminated: every open enrollment of its holders closes with it
        state._set(state.customers, key, event, status="terminated", terminate_at=details["effective"])
        holders = {k for k, row in state.subscribers.items() if row.facts["customer_id"] == key}
        state._close_open_enrollments(holders, event)


def _subscriber_added(state: LedgerState, event: Event, details: dict[str, object]) -> None:
    state._set(
        state.subscribers,
        event.subscriber,
        event,
        customer_id=event.customer,
        role=details["role"],
        name=details["name"],
        email=details.get("email"),  # recorded since schema 4
    )


def _incident_recorded(state: LedgerState, event: Event, details: dict[str, object]) -> None:
    if details.get("voided_enrollments"):  # a key-compromise voids the holder's open codes
        state._close_open_enrollments({event.subscriber}, event)


def _enrollment_created(state: LedgerState, event: Event, details: dict[str, object]) -> None:
    if details.get("kind") == "reissue":  # a reissue replaces the holder's unused codes
        state._close_open_enrollments({event.subscriber}, event)
    facts: Facts = {
        "subscriber_id": event.subscriber,
        "kind": details["kind"],
        "expires_at": details["expires_at"],
        "redeemed_at": None,
        "redeemed_serial": None,
        "closed_at": None,
        "expiry_recorded": 0,
    }
    if "code_commitment" in details:
        facts["code_commitment"] = details["code_commitment"]
    state.enrollments[str(details["enrollment"])] = _Row(facts, event.seq, event.action)


def _enrollment_redeemed(state: LedgerState, event: Event, details: dict[str, object]) -> None:
    state._set(
        state.enrollments, str(details["enrollment"]), event, redeemed_at=event.time, redeemed_serial=event.serial
    )


def _enrollment_lapsed(state: LedgerState, event: Event, details: dict[str, object]) -> None:
    state._set(state.enrollments, str(details["enrollment"]), event, expiry_recorded=1)


def _crl_published(state: LedgerState, event: Event, details: dict[str, object]) -> None:
    issuer, number = str(details["issuer"]), int(str(details["number"]))
    previous = [int(key.split("#")[1]) for key in state.crls if key.split("#")[0] == issuer]
    if previous and number <= max(previous):
        state.problems.append(
            Mismatch(
                "crls",
                f"{issuer}#{number}",
                Phrase("number published again after #{last}", {"last": max(previous)}),
                event.seq,
            )
        )
    facts: Facts = {
        name: details.get(name) for name in ("kind", "base_number", "this_update", "next_update", "entries", "sha256")
    }
    facts["state"] = "published"
    state.crls[f"{issuer}#{number}"] = _Row(facts, event.seq, event.action)
    if details.get("kind") == "full":
        expected = _expected_entries(state, issuer, str(details["this_update"]))
        if expected != details.get("entries"):
            state.problems.append(
                Mismatch(
                    "crls",
                    f"{issuer}#{number}",
                    Phrase(
                        "holds {entries} entries, but the ledger had {expected} certificates revoked or held then: "
                        "it was signed over a state the ledger does not confirm (seq {seq})",
                        {"entries": details.get("entries"), "expected": expected, "seq": event.seq},
                    ),
                    event.seq,
                )
            )


def _expected_entries(state: LedgerState, issuer: str, this_update: str) -> int:
    import datetime as dt

    keep = dt.datetime.fromisoformat(this_update.replace("Z", "+00:00")) - dt.timedelta(days=state.retention_days)
    keep_after = keep.strftime("%Y-%m-%dT%H:%M:%SZ")
    return sum(
        1
        for row in state.certificates.values()
        if row.facts["issuer"] == issuer
        and row.facts["status"] in ("revoked", "held")
        and str(row.facts.get("not_after", "9999")) >= keep_after
    )


def _upgraded(state: LedgerState, event: Event, details: dict[str, object]) -> None:
    attested = details.get("authorities")
    if isinstance(attested, dict):
        for role, key_file in attested.items():
            if role in state.authorities:
                state.authorities[role].facts["key_file"] = key_file


_HANDLERS = {
    "ca.created": _ca_created,
    "ocsp.signer-issued": _signer_issued,
    "audit.signer-issued": _signer_issued,
    "certificate.issued": _issued,
    "certificate.renewed": _issued,
    "certificate.reacquired": _issued,
    "certificate.reissued": _issued,
    "certificate.revoked": _revoked,
    "certificate.reason-changed": _reason_changed,
    "certificate.held": _held,
    "certificate.released": _released,
    "officer.added": _officer,
    "officer.removed": _officer,
    "officer.role-changed": _officer,
    "customer.added": _customer,
    "customer.suspended": _customer,
    "customer.resumed": _customer,
    "customer.termination-scheduled": _customer,
    "customer.terminated": _customer,
    "subscriber.added": _subscriber_added,
    "enrollment.created": _enrollment_created,
    "enrollment.redeemed": _enrollment_redeemed,
    "enrollment.expired-unused": _enrollment_lapsed,
    "incident.recorded": _incident_recorded,
    "crl.published": _crl_published,
    "schema.upgraded": _upgraded,
}


# The actions whose events decide state: known to every export filter, whether or not one happened yet.
REPLAYED_ACTIONS = frozenset(_HANDLERS)


def replay(events: Iterable[Event], retention_days: int = 0) -> LedgerState:
    """The state the events decide, in order."""
    state = LedgerState(retention_days=retention_days)
    for event in events:
        state.apply(event)
    return state


# -- one row against its last event, before anything is signed over it ---------------------------


def status_facts(event: Event) -> Facts:
    """What a certificate's revocation columns must hold when `event` is its newest status event."""
    details: dict[str, object] = json.loads(event.details)
    if event.action == "certificate.revoked":
        return {
            "status": "revoked",
            "revocation_reason": details["reason"],
            "revoked_at": details.get("revoked_at") or event.time,
            "changed_seq": event.seq,
        }
    if event.action == "certificate.reason-changed":
        return {"status": "revoked", "revocation_reason": details["reason"], "changed_seq": event.seq}
    if event.action == "certificate.held":
        return {
            "status": "held",
            "revocation_reason": "certificate-hold",
            "revoked_at": event.time,
            "changed_seq": event.seq,
        }
    if event.action == "certificate.released":
        return {"status": "valid", "revocation_reason": None, "revoked_at": None, "changed_seq": event.seq}
    return {"status": "valid", "revocation_reason": None, "revoked_at": None, "changed_seq": None}  # issued


def confirm(serial: str, row: Mapping[str, object], event: Event | None) -> Mismatch | None:
    """Checks a registry row's revocation columns against its newest status event (whose own hash
    must hold): None when they agree. The signing paths call this; `compare` checks everything."""
    if event is None:
        return Mismatch("certificates", serial, Phrase("no ledger event issued this certificate"))
    from kinko.ca.ledger import event_hash

    if event_hash(event.prev_hash, event) != event.hash:
        return Mismatch("ledger", str(event.seq), EDITED, event.seq)
    for column, expected in status_facts(event).items():
        if row.get(column) != expected:
            return Mismatch(
                "certificates",
                serial,
                _says(column, row.get(column), event.seq, event.action, expected),
                event.seq,
            )
    return None


def confirm_enrollment(row: EnrollmentRecord, events: list[Event]) -> Mismatch | None:
    """Checks an enrollment about to be redeemed against its events: made by Kinko, its code hash
    the one committed to, and not redeemed before."""
    key = str(row.id)
    created = [e for e in events if e.action == "enrollment.created"]
    if not created:
        return Mismatch("enrollments", key, Phrase("no ledger event made this enrollment"))
    committed = json.loads(created[0].details).get("code_commitment")
    if committed is not None and committed != code_commitment(row.lookup, row.code_hash):
        return Mismatch(
            "enrollments",
            key,
            _not_committed(created[0].seq, "enrollment.created"),
            created[0].seq,
        )
    redeemed = [e for e in events if e.action == "enrollment.redeemed"]
    if redeemed:
        last = redeemed[-1]
        return Mismatch(
            "enrollments",
            key,
            _says("redeemed_at", None, last.seq, "enrollment.redeemed", last.time),
            last.seq,
        )
    return None


# -- comparing the tables with the replayed state ------------------------------------------------


def compare(store: Reader, state: LedgerState) -> Mismatch | None:
    """The first row of a replayed table that contradicts the ledger, or None."""
    if state.problems:
        return state.problems[0]
    for found in _compare_all(store, state):
        return found
    return None


def _compare_all(store: Reader, state: LedgerState) -> Iterator[Mismatch]:
    yield from _certificates(store, state)
    yield from _simple(store, "officers", state.officers, ("login", "role"))
    yield from _simple(store, "customers", state.customers, ("id", "name", "status", "terminate_at"))
    # Wrong codes are counted from the ledger's own enrollment.code-refused events, per client: no column to check.
    yield from _simple(store, "subscribers", state.subscribers, ("id", "customer_id", "role", "name", "email"))
    yield from _enrollments(store, state)
    yield from _simple(store, "authorities", state.authorities, ("role", "serial", "key_file"))
    yield from _crls(store, state)
    yield from _responses(store, state)


def _contradiction(table: str, key: str, column: str, stored: object, row: _Row) -> Mismatch:
    expected = row.facts[column]
    return Mismatch(table, key, _says(column, stored, row.seq, row.action, expected), row.seq)


def _says(column: str, stored: object, seq: int, action: str, expected: object) -> Phrase:
    facts = {"column": column, "stored": repr(stored), "seq": seq, "action": action, "expected": repr(expected)}
    return Phrase("{column} is {stored}, but seq {seq} ({action}) says {expected}", facts)


def _not_committed(seq: int, action: str) -> Phrase:
    return Phrase("code hash is not the one seq {seq} ({action}) committed to", {"seq": seq, "action": action})


def _compare_row(
    table: str, key: str, values: dict[str, object], expected: dict[str, _Row], seen: set[str]
) -> Iterator[Mismatch]:
    if key in seen:
        yield Mismatch(table, key, Phrase("a second row carries this key: it was added outside Kinko"))
        return
    seen.add(key)
    row = expected.get(key)
    if row is None:
        yield Mismatch(table, key, Phrase("no ledger event made this row: it was added outside Kinko"))
        return
    for column, value in values.items():
        if column in row.facts and row.facts[column] != value:
            yield _contradiction(table, key, column, value, row)
            return


def _missing(table: str, expected: dict[str, _Row], seen: set[str]) -> Iterator[Mismatch]:
    for key, row in expected.items():
        if key not in seen:
            yield Mismatch(
                table,
                key,
                Phrase("missing, though seq {seq} ({action}) made it", {"seq": row.seq, "action": row.action}),
                row.seq,
            )


def _simple(store: Reader, table: str, expected: dict[str, _Row], columns: tuple[str, ...]) -> Iterator[Mismatch]:
    seen: set[str] = set()
    for values in store.table_rows(table):
        data = dict(zip(columns, values, strict=True))
        key = str(data.pop(columns[0]))
        yield from _compare_row(table, key, data, expected, seen)
    yield from _missing(table, expected, seen)


def _certificates(store: Reader, state: LedgerState) -> Iterator[Mismatch]:
    from kinko.ca.store.contract import REPLAYED

    columns = REPLAYED["certificates"]
    seen: set[str] = set()
    for values in store.table_rows("certificates"):
        data = dict(zip(columns, values, strict=True))
        serial = str(data.pop("serial"))
        der = data.pop("der")
        if not isinstance(der, bytes) or hashlib.sha256(der).hexdigest() != data["fingerprint_sha256"]:
            yield Mismatch(
                "certificates", serial, Phrase("the stored DER does not match its fingerprint: it was replaced")
            )
            continue
        yield from _compare_row("certificates", serial, data, state.certificates, seen)
    yield from _missing("certificates", state.certificates, seen)


def _enrollments(store: Reader, state: LedgerState) -> Iterator[Mismatch]:
    from kinko.ca.store.contract import REPLAYED

    columns = REPLAYED["enrollments"]
    seen: set[str] = set()
    for values in store.table_rows("enrollments"):
        data = dict(zip(columns, values, strict=True))
        key = str(data.pop("id"))
        lookup, code_hash = str(data.pop("lookup")), str(data.pop("code_hash"))
        row = state.enrollments.get(key)
        if (
            row is not None
            and "code_commitment" in row.facts
            and row.facts["code_commitment"] != code_commitment(lookup, code_hash)
        ):
            yield Mismatch("enrollments", key, _not_committed(row.seq, row.action), row.seq)
            continue
        yield from _compare_row("enrollments", key, data, state.enrollments, seen)
    yield from _missing("enrollments", state.enrollments, seen)


def _crls(store: Reader, state: LedgerState) -> Iterator[Mismatch]:
    from kinko.ca.store.contract import REPLAYED

    columns = REPLAYED["crls"]
    seen: set[str] = set()
    for values in store.table_rows("crls"):
        data = dict(zip(columns, values, strict=True))
        key = f"{data.pop('issuer')}#{data.pop('number')}"
        if data["state"] == "reserved" and key not in state.crls:
            continue  # a number burned by a publication that did not finish: never reused, never published
        yield from _compare_row("crls", key, data, state.crls, seen)
    yield from _missing("crls", state.crls, seen)


def _responses(store: Reader, state: LedgerState) -> Iterator[Mismatch]:
    from cryptography.x509 import ocsp

    for serial, algorithm, issuer, der, _this_update, _next_update in store.table_rows("ocsp_responses"):
        key = f"{serial}/{algorithm}"
        row = state.certificates.get(str(serial))
        if row is None:
            yield Mismatch("ocsp_responses", key, Phrase("a response for a certificate no event issued"))
            continue
        try:
            if not isinstance(der, bytes):
                raise ValueError("not bytes")
            single = next(iter(ocsp.load_der_ocsp_response(der).responses))
        except (ValueError, StopIteration):
            yield Mismatch("ocsp_responses", key, Phrase("the stored response is not a signed OCSP response"))
            continue
        answered = f"{single.serial_number:X}"
        if answered.zfill(len(str(serial))) != serial:
            yield Mismatch(
                "ocsp_responses", key, Phrase("the stored response answers for serial {serial}", {"serial": answered})
            )
            continue
        said = single.certificate_status.name.lower()
        expected = "revoked" if row.facts["status"] in ("revoked", "held") else "good"
        when = single.revocation_time_utc if said == "revoked" else None
        revoked_at = when.strftime("%Y-%m-%dT%H:%M:%SZ") if when is not None else None
        if said != expected or issuer != row.facts["issuer"] or revoked_at != row.facts["revoked_at"]:
            yield Mismatch(
                "ocsp_responses",
                key,
                Phrase(
                    "the stored response says {said}, but seq {seq} ({action}) says {status}",
                    {"said": said, "seq": row.seq, "action": row.action, "status": row.facts["status"]},
                ),
                row.seq,
            )
