"""Output files opened by the caller: written beside the destination, renamed over it on success,
removed on failure; modes explicit whatever the umask; a planted symlink replaced, never followed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kinko.ca.errors import InputError
from kinko.ca.outputs import Destination, Outputs, received


@pytest.fixture(autouse=True)
def open_umask() -> None:
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_commit_puts_produced_files_in_place_and_removes_the_others(tmp_path: Path) -> None:
    export, stale = tmp_path / "ledger.csv", tmp_path / "ledger.csv.sig"
    stale.write_text("an earlier export's signature", encoding="utf-8")
    outputs = Outputs([Destination(export, 0o600), Destination(stale, 0o644)])
    outputs.files[0].write(b"seq,time\n")
    outputs.commit([f.produced for f in outputs.files])
    assert export.read_bytes() == b"seq,time\n" and export.stat().st_mode & 0o777 == 0o600
    assert not stale.exists()  # not produced this time: it must not vouch for the new export
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.csv"]


def test_abort_leaves_the_destinations_as_they_were(tmp_path: Path) -> None:
    export = tmp_path / "ledger.csv"
    export.write_text("last month's", encoding="utf-8")
    outputs = Outputs([Destination(export, 0o600)])
    outputs.files[0].write(b"half an export")
    outputs.abort()
    assert export.read_text(encoding="utf-8") == "last month's"
    assert [p.name for p in tmp_path.iterdir()] == ["ledger.csv"]


def test_a_planted_symlink_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me", encoding="utf-8")
    export = tmp_path / "ledger.csv"
    export.symlink_to(victim)
    outputs = Outputs([Destination(export, 0o644)])
    outputs.files[0].write(b"new")
    outputs.commit([True])
    assert not export.is_symlink() and export.read_bytes() == b"new"
    assert victim.read_text(encoding="utf-8") == "keep me"
    assert export.stat().st_mode & 0o777 == 0o644


def test_an_unwritable_destination_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"cannot write .*/missing/ledger.csv: No such file or directory"):
        Outputs([Destination(tmp_path / "missing" / "ledger.csv", 0o600)])


def test_received_descriptors_must_be_regular_files_open_for_writing(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    readonly = os.open(tmp_path / "x", os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(InputError, match="not a regular file"):
            received([write_end], ["ledger.csv"])
        with pytest.raises(InputError, match="not open for writing"):
            received([readonly], ["ledger.csv"])
        with pytest.raises(InputError, match="2 output files were named, 1 descriptors came"):
            received([readonly], ["a", "b"])
    finally:
        for fd in (read_end, write_end, readonly):
            os.close(fd)
