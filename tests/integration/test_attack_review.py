"""Findings of the attack review (issue 12): each refusal or detection, and that nothing changed."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from tests.conftest import make_csr, row_counts


@pytest.mark.parametrize("option", ["--invalidity-date", "--reported-at"])
@pytest.mark.parametrize("when", ["0001-01-01T00:00:00Z", "before-issue"])
def test_report_dates_before_not_before_are_refused(
    home: Home, kinko: Kinko, run_cli, clock, option: str, when: str
) -> None:
    serial = kinko.issue(make_csr(), name="山田 太郎").record.serial
    crl_before = (home.public_dir / "crl" / "issuing.crl").read_bytes()
    if when == "before-issue":
        when = (clock.now() - dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    before = row_counts(home)
    result = run_cli("--home", home.path, "revoke", serial, "--reason", "key-compromise", option, when)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("kinko: error: ") and "before certificate" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert row_counts(home) == before
    assert home.store.certificate(serial).status == "valid"
    assert (home.public_dir / "crl" / "issuing.crl").read_bytes() == crl_before
    x509.load_der_x509_crl(crl_before)


def test_incident_with_a_compromise_before_not_before_is_refused(home: Home, kinko: Kinko, clock) -> None:
    from kinko.ca.errors import InputError

    kinko.add_customer("C1", "株式会社テスト")
    enrolled = kinko.enroll_administrator("C1", "管理 者")
    kinko.acquire(enrolled.code, make_csr())
    before = row_counts(home)
    with pytest.raises(InputError, match="before certificate"):
        kinko.report_incident(
            enrolled.subscriber_id,
            "lost",
            received_at=clock.now(),
            suspected_since=dt.datetime(1, 1, 1, tzinfo=dt.UTC),
        )
    assert row_counts(home) == before
    assert home.store.incidents() == []
