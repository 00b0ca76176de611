"""Moving a home's database to another backend in one pass (`kinko db migrate --to URL`): every
table copied row for row (the ledger with its hashes and checkpoints as they are), writers held
off the source for the whole copy, and the target's own transaction ending with one sealed
`store.migrated` event, so that its ledger records the move and verifies on its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kinko.ca.errors import Conflict, InputError
from kinko.ca.store import create_store, discard_new_store, is_server
from kinko.ca.store.contract import Sealer, Store
from kinko.ca.store.postgresql import PostgresStore
from kinko.ca.store.reads import ALL_TABLES, SQLStore


@dataclass(frozen=True)
class Copied:
    """What a migration copied: rows per table, and the ledger head both sides now share."""

    rows: dict[str, int]
    head_seq: int
    head_hash: str


def copy_store(
    source: Store,
    target_location: Path | str,
    password_file: Path | None,
    *,
    sealer: Sealer | None,
    actor: str,
    time: str,
    switch: Callable[[], None],
) -> Copied:
    """Copies every table of `source` into a new, empty database at `target_location` and calls
    `switch` (which points the home at it and verifies it there) while writers are still held off
    the source, which is then marked moved: no write can land on it after the copy. Refuses a
    target that is not empty, and leaves it empty again if the copy or the switch fails."""
    if not is_server(target_location) or not isinstance(source, SQLStore) or source.backend == "postgresql":
        raise InputError(
            "kinko db migrate moves a home's SQLite database to PostgreSQL: --to takes a postgresql:// URL"
        )
    target = create_store(target_location, password_file)
    assert isinstance(target, PostgresStore)
    switched = False
    try:
        with source.holding_writers() as hold:
            head = source.ledger_head()
            if source.last_checkpoint_seq() != head[0]:
                raise Conflict(
                    "the ledger's last {count} event(s) have no checkpoint: run `kinko ledger verify` "
                    "before moving the database",
                    count=head[0] - source.last_checkpoint_seq(),
                )
            target.sealer = sealer
            rows: dict[str, int] = {}
            with target.transaction(actor, time) as tx:
                for table in ALL_TABLES:
                    columns = target.columns(table)
                    rows[table] = target.load(table, columns, source.dump(table, columns))
                target.restart_sequences()
                target.take_counter(source.change_token())
                tx.append_event(
                    "store.migrated",
                    details={
                        "from": source.backend,
                        "to": target.backend,
                        "rows": {t: n for t, n in rows.items() if t not in ("ledger", "checkpoints")},
                        "ledger_head": {"seq": head[0], "hash": head[1]},
                    },
                )
            target.close()
            # Marked inside the held transaction first (undone if the switch fails), so that once
            # the home points at the copy, only the commit of that mark is left to do.
            hold.mark_moved(shown_location(target_location))
            switch()
            switched = True
    except BaseException:
        target.close()
        if not switched:  # the home points at the copy once switched: it is kept, whatever failed after
            discard_new_store(target_location, password_file)
        raise
    return Copied(rows, head[0], head[1])


def shown_location(location: Path | str) -> str:
    """A database location as messages show it (a server's URL without any password)."""
    from kinko.ca.store.postgresql import shown

    return shown(str(location)) if is_server(location) else str(location)
