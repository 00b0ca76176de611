"""Refusals and races found in review: each is a rule that must hold, with a test that fails without it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from kinko.ca.clock import parse_user_time, to_text
from kinko.ca.errors import InputError, PolicyError
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from kinko.ocsp.source import DatabaseSource
from tests.conftest import make_csr, row_counts


@pytest.mark.parametrize("profile", ["audit-signer", "ocsp-signer", "issuing-ca", "root-ca"])
def test_the_cas_own_signers_are_never_issued_by_hand(home: Home, kinko: Kinko, profile: str) -> None:
    # An audit signer from `kinko issue` could re-sign a rewritten ledger.
    before = row_counts(home)
    with pytest.raises(PolicyError, match="CA's own certificates"):
        kinko.issue(make_csr(), name="x", profile=profile)
    assert row_counts(home) == before


def test_a_refused_root_crl_request_changes_nothing(tmp_path: Path, passphrase_file: Path, clock) -> None:
    from kinko.ca.hierarchy import InitOptions, create_home
    from kinko.ca.officers import current_login

    home = create_home(
        tmp_path / "single",
        InitOptions(organization="X", passphrase_file=passphrase_file, single_tier=True),
        clock,
        current_login(),
    )
    kinko = Kinko(home, clock=clock)
    kinko.add_customer("C1", "Example")
    kinko.terminate_customer("C1", clock.now() + dt.timedelta(days=1))
    clock.advance(days=2)
    before = row_counts(home)
    with pytest.raises(PolicyError, match="single-tier"):
        kinko.publish_crl(root=True)
    assert row_counts(home) == before
    assert home.store.customer("C1").status == "active"  # the due termination waits for a real publish


def test_the_responder_never_opens_the_database_for_writing(home: Home, kinko: Kinko, clock) -> None:
    source = DatabaseSource(home.path, clock=clock)
    assert source.home.store is source.home.readonly_store
    with pytest.raises(Exception, match=r"readonly|read-only"):
        source.home.store._conn.execute("DELETE FROM ocsp_responses")


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+09:00", "9999-12-31T23:59:59-09:00"])
def test_times_at_the_edge_of_the_calendar_are_refused_cleanly(text: str) -> None:
    with pytest.raises(InputError, match="not an ISO 8601 time"):
        parse_user_time(text, "effective date")


@pytest.mark.parametrize("text", ["0001-01-01", "2026-02-30", "2026-13-01"])
def test_impossible_dates_are_refused_cleanly(text: str) -> None:
    with pytest.raises(InputError, match="is not a date"):
        parse_user_time(text, "since")


def test_a_date_alone_is_the_start_of_the_bank_s_day() -> None:
    """`--since 2026-12-02` was refused: a date alone is midnight in Tokyo (15:00 UTC the day before)."""
    assert to_text(parse_user_time("2026-12-02", "since")) == "2026-12-01T15:00:00Z"
    assert parse_user_time("2026-12-02", "since") == parse_user_time("2026-12-02T00:00:00+09:00", "since")


def test_absurd_periods_are_refused_with_exit_1(home: Home, run_cli) -> None:
    result = run_cli("--home", home.path, "report", "expiring", "--within", "99999999999d")
    assert result.exit_code == 1 and "from 0 to 36500" in result.output


def test_export_checked_against_another_cas_chain_fails(
    home: Home, kinko: Kinko, tmp_path: Path, run_cli, passphrase_file: Path, clock
) -> None:
    from kinko.ca.authorities import chain_pem
    from kinko.ca.hierarchy import InitOptions, create_home
    from kinko.ca.officers import current_login

    out = tmp_path / "ledger.csv"
    assert run_cli("--home", home.path, "ledger", "export", "--format", "csv", "--out", out).exit_code == 0
    other = create_home(
        tmp_path / "other", InitOptions(organization="Other", passphrase_file=passphrase_file), clock, current_login()
    )
    foreign = tmp_path / "other-chain.pem"
    foreign.write_text(chain_pem(other))
    # Issue 10: the auditor's own root is the anchor, never the chain file beside the export.
    ours = run_cli("ledger", "verify", "--export", out, "--ca-file", home.public_dir / "ca" / "root.pem")
    assert ours.exit_code == 0, ours.output
    theirs = run_cli("ledger", "verify", "--export", out, "--ca-file", foreign)
    assert theirs.exit_code == 1 and "signature" in theirs.output


def test_the_code_can_come_from_standard_input(home: Home, kinko: Kinko, tmp_path: Path, run_cli) -> None:
    kinko.add_customer("C1", "Example")
    enrolled = kinko.enroll_administrator("C1", "Taro", "C1-A")
    csr = tmp_path / "a.csr"
    csr.write_bytes(make_csr())
    result = run_cli("--json", "--home", home.path, "acquire", "--csr", csr, input=enrolled.code + "\n")
    assert result.exit_code == 0, result.output
    assert '"subscriber_id": "C1-A"' in result.output
