"""Refusing to sign a state the ledger does not confirm, and saying so in the ledger.

Every signing path (a CRL, an OCSP response pre-signed or on demand, a checkpoint) checks the
rows it signs against their last ledger event (`kinko.ca.replay.confirm`) and raises
`IntegrityError` on the first contradiction. `recorded` wraps a command so that the refusal is
also an `integrity.refused` event, unless the ledger itself is what was changed: then sealing
would launder it, and the refusal stays a line on stderr.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kinko.ca.errors import IntegrityError, KinkoError
from kinko.ca.i18n import Phrase

if TYPE_CHECKING:
    from kinko.ca.store import Store


MADE_BY_NONE = Phrase("no ledger event made it")


@dataclass(frozen=True)
class Mismatch:
    """The first place the tables contradict the ledger."""

    table: str
    key: str
    what: Phrase
    seq: int | None = None

    def __str__(self) -> str:
        return f"{self.table} {self.key}: {self.what}"

    def said(self) -> Phrase:
        """The contradiction as a sentence (English in the ledger and JSON, the reader's on screen)."""
        return Phrase("{table} {key}: {what}", {"table": self.table, "key": self.key, "what": self.what})


def refuse(mismatch: Mismatch, signing: str, doing: str = "sign the") -> IntegrityError:
    """The error a signing path (or a decision made from a table) raises for a contradiction it found."""
    facts = (mismatch.table, mismatch.key, str(mismatch.what), signing)
    if doing == "issue a":
        return IntegrityError(
            "refused to issue a {signing}: {mismatch}; nothing was done: run `kinko ledger verify`",
            *facts,
            signing=signing,
            mismatch=mismatch.said(),
        )
    if doing == "run":
        return IntegrityError(
            "refused to run {signing}: {mismatch}; nothing was done: run `kinko ledger verify`",
            *facts,
            signing=signing,
            mismatch=mismatch.said(),
        )
    return IntegrityError(
        "refused to sign the {signing}: {mismatch}; nothing was signed: run `kinko ledger verify`",
        *facts,
        signing=signing,
        mismatch=mismatch.said(),
    )


@contextmanager
def recorded(store: Store, actor: str, time: str) -> Iterator[None]:
    """Records an IntegrityError raised inside as an `integrity.refused` event, then lets it go on."""
    try:
        yield
    except IntegrityError as exc:
        try:
            with store.transaction(actor, time) as tx:
                tx.append_event(
                    "integrity.refused",
                    serial=exc.key if exc.table == "certificates" else "",
                    details={"signing": exc.signing, "table": exc.table, "key": exc.key, "what": exc.what},
                )
        except KinkoError:
            exc.add_note("not recorded in the ledger: the ledger itself was changed outside Kinko")
        raise
