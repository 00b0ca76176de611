"""The store contract: both backends' classes provide every verb of the Protocols, reads do not
include the CRL-number reservation, and the change token moves with every state change."""

from __future__ import annotations

import inspect

from kinko.ca.clock import FixedClock, to_text
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from kinko.ca.store import contract, open_store
from kinko.ca.store.postgresql import PostgresStore
from kinko.ca.store.sqlite import SQLiteStore
from kinko.ca.store.writer import SQLWriter
from tests.conftest import make_csr


def members(protocol: type) -> set[str]:
    names = {name for name in dir(protocol) if not name.startswith("_")}
    for klass in protocol.__mro__:
        names |= {name for name in getattr(klass, "__annotations__", {}) if not name.startswith("_")}
    return names


def test_each_backend_provides_every_verb_of_the_contract(home: Home, backend: str) -> None:
    store = home.store
    klass = {"sqlite": SQLiteStore, "postgresql": PostgresStore}[backend]
    assert type(store) is klass
    missing = {name for name in members(contract.Store) if not hasattr(store, name)}
    assert not missing, f"{klass.__name__} lacks {sorted(missing)}"
    with store.transaction("t", "2026-01-01T00:00:00Z") as tx:
        assert isinstance(tx, SQLWriter)
        missing = {name for name in members(contract.Writer) if not hasattr(tx, name)}
    assert not missing, f"SQLWriter lacks {sorted(missing)}"
    # The signatures match too (the type checker checks the types).
    for name in members(contract.Reader):
        expected = inspect.signature(getattr(contract.Store, name)).parameters
        assert list(inspect.signature(getattr(klass, name)).parameters) == list(expected), name


def test_reads_never_write_so_the_crl_reservation_is_not_a_read() -> None:
    assert "reserve_crl_number" not in members(contract.Reader)
    assert "reserve_crl_number" in members(contract.Store)
    assert "transaction" not in members(contract.Reader)
    inside_reads = {"actor", "time", "certificate", "active_certificate_with_key", "compromised_certificate_with_key"}
    writes = members(contract.Writer) - members(contract.AccountReader) - inside_reads
    assert "append_event" in writes
    assert not writes & members(contract.Reader)


def test_the_change_token_moves_with_every_state_change(home: Home, kinko: Kinko) -> None:
    # Another connection, read-only, like a responder's: it sees each commit of the CA's.
    reader = open_store(home.database, readonly=True, password_file=home.database_password_file)
    try:
        token = reader.change_token()
        assert reader.change_token() == token
        reader.certificates()  # reads leave it alone
        assert reader.change_token() == token

        issued = kinko.issue(make_csr(), name="A")
        after_issue = reader.change_token()
        assert after_issue != token

        kinko.hold(issued.record.serial)
        after_hold = reader.change_token()
        assert after_hold != after_issue

        # A CRL number reserved (and committed) on its own moves it too, before anything is signed.
        home.store.reserve_crl_number("issuing", "full", None, "2026-01-01T00:00:00Z")
        assert reader.change_token() != after_hold

        with reader.reading():
            inside = reader.change_token()
            kinko.release(issued.record.serial)
            assert reader.change_token() == inside  # one snapshot
        assert reader.change_token() != inside
    finally:
        reader.close()


def test_a_serial_drawn_twice_is_refused_and_the_transaction_goes_on(home: Home, clock: FixedClock) -> None:
    """reserve_serial says False for a serial ever used, and the same transaction then reserves
    another (a PostgreSQL transaction must not be left aborted by the collision)."""
    used = home.store.certificates()[0].serial
    with home.store.transaction("t", to_text(clock.now()) or "") as tx:
        assert tx.reserve_serial(used, "issuing") is False
        assert tx.reserve_serial("7" * 32, "issuing") is True
        tx.append_event("test.reserved", serial="7" * 32)
    assert home.store.ledger_head()[0] == home.store.last_checkpoint_seq()
    assert [e.action for e in home.store.ledger_events()][-1] == "test.reserved"
