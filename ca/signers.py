"""Which audit signer the ledger appoints, and when an appointment ends. Pure.

The one rule both verifiers (the database's checkpoints, an export's signature) and both
signing paths (sealing a checkpoint, signing an export) apply. It reads only ledger events,
which an export carries too, so an auditor decides it offline exactly as Kinko does:

- `audit.signer-issued` appoints a signer (from its seq; its validity is in the details);
  appointing a new one ends the previous one;
- `audit.signer-retired`, `certificate.revoked` and `certificate.held` of the signer's serial
  end it (`certificate.released` lifts a hold; nothing lifts a retirement or a revocation).

A signature made over events `begins..head` counts when its signer was appointed at or before
`head`, had not ended before `begins`, and was signed within the certificate's validity. The
transaction that ends a signer is the last one it may seal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from kinko.ca import ledger
from kinko.ca.i18n import Phrase

ISSUED = "audit.signer-issued"
RETIRED = "audit.signer-retired"
CA_CREATED = "ca.created"
# Certificate events that change a signer's standing; the store reads these for audit signers only.
STATUS_ACTIONS = ("certificate.revoked", "certificate.held", "certificate.released")
ACTIONS = (CA_CREATED, ISSUED, RETIRED, *STATUS_ACTIONS)
_ENDS = {RETIRED: "retired", "certificate.revoked": "revoked", "certificate.held": "held"}


@dataclass
class Appointment:
    """One audit signer as the ledger records it."""

    serial: str
    seq: int
    not_before: str
    not_after: str
    fingerprint: str | None
    # (seq, state) in ledger order: 'retired', 'revoked', 'held', or None (a hold lifted).
    changes: list[tuple[int, str | None]] = field(default_factory=list)


class AuditSigners:
    """The audit signers the ledger appoints, built from its events in seq order."""

    def __init__(self, events: Iterable[ledger.Event] = ()) -> None:
        self.appointments: dict[str, Appointment] = {}
        # serial -> SHA-256 fingerprint of each CA certificate the ledger records (`ca.created`):
        # what an appointment made before fingerprints were recorded is checked against.
        self.ca_fingerprints: dict[str, str] = {}
        self._current: str | None = None
        for event in events:
            self.observe(event)

    def observe(self, event: ledger.Event) -> None:
        """Takes one event into account (any event: those that do not concern signers are ignored)."""
        action = event.action
        if action == CA_CREATED:
            fingerprint = _details(event).get("fingerprint_sha256")
            if fingerprint:
                self.ca_fingerprints[event.serial] = str(fingerprint)
        elif action == ISSUED:
            details = _details(event)
            if self._current is not None and self._current in self.appointments:
                self.appointments[self._current].changes.append((event.seq, f"replaced by {event.serial}"))
            self.appointments[event.serial] = Appointment(
                event.serial,
                event.seq,
                str(details.get("not_before") or event.time),
                str(details.get("not_after") or ""),
                details.get("fingerprint_sha256"),
            )
            self._current = event.serial
        elif action in _ENDS or action == "certificate.released":
            found = self.appointments.get(event.serial)
            if found is not None:
                found.changes.append((event.seq, _ENDS.get(action)))

    def standing(
        self, serial: str, *, begins: int, head: int, time: str, fingerprint: str | None = None
    ) -> Phrase | None:
        """None when `serial` may sign over events begins..head at `time`; else why it may not."""
        found = self.appointments.get(serial)
        if found is None or found.seq > head:
            appoints = {"serial": serial, "head": head}
            return Phrase("{serial} is not an audit signer the ledger appoints (by seq {head})", appoints)
        if fingerprint is not None and found.fingerprint is not None and fingerprint != found.fingerprint:
            return Phrase(
                "the certificate with serial {serial} is not the one the ledger appointed (fingerprint differs)",
                {"serial": serial},
            )
        ended: tuple[int, str] | None = None
        for seq, state in found.changes:
            if seq >= begins:
                break
            if state is None:
                if ended is not None and ended[1] == "held":
                    ended = None
            elif ended is None or ended[1] == "held":
                ended = (seq, state)
        if ended is not None:
            return Phrase(
                "audit signer {serial} was {state} at seq {seq}: it can no longer sign",
                {"serial": serial, "state": ended[1], "seq": ended[0]},
            )
        if not found.not_before <= time <= found.not_after:
            return Phrase(
                "audit signer {serial} signed at {time}, outside its validity ({not_before} to {not_after})",
                {"serial": serial, "time": time, "not_before": found.not_before, "not_after": found.not_after},
            )
        return None

    def recorded_fingerprint(self, serial: str) -> str | None:
        """The fingerprint the ledger recorded when it appointed `serial` (None for older ledgers)."""
        found = self.appointments.get(serial)
        return found.fingerprint if found is not None else None

    @property
    def current(self) -> str | None:
        """The serial appointed last, or None."""
        return self._current


def _details(event: ledger.Event) -> dict[str, str]:
    try:
        parsed = json.loads(event.details)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
