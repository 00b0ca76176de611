"""A process killed (SIGKILL) mid-issuance leaves neither a registry row nor a ledger row."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kinko.ca.home import Home
from tests.conftest import ROOT, make_csr, raw_execute, row_counts, run_kinko

# Each point patches one step of the issuance transaction to kill the process right there.
KILL_POINTS = {
    "after signing, before recording": ("kinko.ca.signer", "sign_certificate", "after"),
    "after recording the certificate": ("kinko.ca.store.writer", "SQLWriter.record_certificate", "after"),
    "after the ledger event, before commit": ("kinko.ca.store.writer", "SQLWriter.check_complete", "after"),
}

SCRIPT = textwrap.dedent(
    """
    import importlib, os, signal, sys
    from pathlib import Path
    module_name, attribute, _ = sys.argv[1], sys.argv[2], sys.argv[3]
    module = importlib.import_module(module_name)
    owner, name = (getattr(module, attribute.split(".")[0]), attribute.split(".")[1]) if "." in attribute \\
        else (module, attribute)
    original = getattr(owner, name)
    def dying(*args, **kwargs):
        result = original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
        return result
    setattr(owner, name, dying)
    from kinko.ca.home import Home
    from kinko.ca.lifecycle import Kinko
    Kinko(Home(Path(sys.argv[4]))).issue(Path(sys.argv[5]).read_bytes(), name="Crash Test")
    print("not killed")
    """
)


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_kill_during_issuance_leaves_nothing(home: Home, tmp_path: Path, point: str, backend: str) -> None:
    csr = tmp_path / "a.csr"
    csr.write_bytes(make_csr())
    before = row_counts(home)
    head_before = list(home.store.ledger_events())[-1]
    module, attribute, when = KILL_POINTS[point]
    process = subprocess.run(
        [sys.executable, "-c", SCRIPT, module, attribute, when, str(home.path), str(csr)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr
    assert "not killed" not in process.stdout
    # Read the database with its own driver, as a fresh process would after the crash.
    if backend == "sqlite":
        assert raw_execute(home, "PRAGMA integrity_check")[0][0] == "ok"
    assert raw_execute(home, "SELECT COUNT(*) FROM certificates WHERE profile = 'client'")[0][0] == 0
    assert raw_execute(home, "SELECT COUNT(*) FROM certificates WHERE status = 'reserved'")[0][0] == 0
    assert row_counts(home) == before
    assert list(home.store.ledger_events())[-1] == head_before
    # The CA carries on: the same CSR issues normally afterwards.
    result = run_kinko("--home", home.path, "issue", "--csr", csr, "--name", "After Crash")
    assert result.returncode == 0, result.stderr
    assert row_counts(home)["certificates"] == before["certificates"] + 1
    assert row_counts(home)["ledger"] == before["ledger"] + 1


def test_exception_inside_the_transaction_rolls_back(home: Home, kinko, monkeypatch) -> None:
    from kinko.ca.store import writer

    def fail(self, *args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(writer.SQLWriter, "append_event", fail)
    before = row_counts(home)
    with pytest.raises(RuntimeError):
        kinko.issue(make_csr(), name="Rollback")
    assert row_counts(home) == before


def test_change_without_ledger_event_is_not_committed(home: Home) -> None:
    from kinko.ca.errors import StorageError

    before = row_counts(home)
    with (
        pytest.raises(StorageError, match="without a ledger event"),
        home.store.transaction("t", "2026-01-01T00:00:00Z") as tx,
    ):
        tx.set_authority("extra", "00", "none.key")
    assert row_counts(home) == before


@pytest.mark.parametrize(
    "statement", ["UPDATE ledger SET actor = 'mallory' WHERE seq = 1", "DELETE FROM ledger WHERE seq = 1"]
)
def test_ledger_rows_cannot_be_updated_or_deleted(home: Home, statement: str) -> None:
    import psycopg

    with pytest.raises((sqlite3.IntegrityError, psycopg.errors.RaiseException), match="append-only"):
        raw_execute(home, statement)
    assert raw_execute(home, "SELECT actor FROM ledger WHERE seq = 1") != [("mallory",)]
