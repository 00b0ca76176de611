"""Times for people in the bank's zone (`[display] timezone`, Asia/Tokyo for a JP CA), always with
their offset; `--json`, the ledger and exports stay UTC. Tested across the date line: 23:30 UTC is
already the next day in Tokyo."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from kinko.ca import clock as clock_module
from kinko.ca.clock import FixedClock, parse_user_time, showing_times_in, shown, shown_if_time, zone_named
from kinko.ca.hierarchy import InitOptions, create_home
from kinko.ca.home import Home
from kinko.ca.officers import current_login
from tests.conftest import make_csr, row_counts

LATE_EVENING_UTC = dt.datetime(2026, 12, 2, 23, 30, tzinfo=dt.UTC)
EN = {"LANG": "C.UTF-8", "LC_ALL": "", "LC_MESSAGES": "", "KINKO_LANG": ""}


def test_a_time_is_shown_in_the_zone_with_its_offset_across_the_date_line() -> None:
    with showing_times_in(zone_named("Asia/Tokyo")):
        assert shown("2026-12-02T23:30:00Z") == "2026-12-03 08:30:00 +09:00"
        assert shown(LATE_EVENING_UTC) == "2026-12-03 08:30:00 +09:00"
    with showing_times_in(zone_named("UTC")):
        assert shown("2026-12-02T23:30:00Z") == "2026-12-02 23:30:00 +00:00"
    with showing_times_in(zone_named("America/St_Johns")):  # a half-hour zone west of UTC
        assert shown("2026-12-02T23:30:00Z") == "2026-12-02 20:00:00 -03:30"
    assert clock_module.display_zone() is dt.UTC  # the context manager put it back


def test_only_stored_times_are_converted() -> None:
    with showing_times_in(zone_named("Asia/Tokyo")):
        assert shown_if_time("2026-12-02T23:30:00Z") == "2026-12-03 08:30:00 +09:00"
        for other in ("E3835F3478A9819C", "2026-12-02", "2026-12-02T23:30:00+09:00", 42, None):
            assert shown_if_time(other) == other
        # The far end of the calendar has no later day to move to: shown as stored, not a crash.
        assert shown_if_time("9999-12-31T23:59:59Z") == "9999-12-31T23:59:59Z"


def test_the_shown_form_can_be_typed_back() -> None:
    assert parse_user_time("2026-12-03 08:30:00 +09:00", "--at") == LATE_EVENING_UTC
    assert parse_user_time("2026-12-02T23:30:00Z", "--at") == LATE_EVENING_UTC


def test_an_unknown_zone_is_not_a_zone() -> None:
    for name in ("Asia/Nowhere", "../etc/passwd", ""):
        with pytest.raises(KeyError):
            zone_named(name)


@pytest.fixture
def evening_home(tmp_path: Path, passphrase_file: Path) -> tuple[Home, FixedClock]:
    """A JP CA at 23:30 UTC, 08:30 the next morning in Tokyo."""
    evening = FixedClock(LATE_EVENING_UTC)
    options = InitOptions(organization="興産信用金庫", passphrase_file=passphrase_file)
    return create_home(tmp_path / "home", options, evening, current_login()), evening


def _invoke(home: Home, clock: FixedClock, *args: str, env: dict[str, str] | None = None) -> Any:
    from click.testing import CliRunner

    from kinko import cli

    return CliRunner().invoke(cli.cli, ["--home", str(home.path), *args], obj={"clock": clock}, env=env or EN)


def _set_zone(home: Home, zone: str) -> None:
    text = (home.path / "kinko.toml").read_text(encoding="utf-8")
    (home.path / "kinko.toml").write_text(text.replace('timezone = "Asia/Tokyo"', f"timezone = {zone!r}"))


def test_human_output_is_in_tokyo_and_json_stays_utc(evening_home: tuple[Home, FixedClock], tmp_path: Path) -> None:
    home, evening = evening_home
    assert 'timezone = "Asia/Tokyo"' in (home.path / "kinko.toml").read_text(encoding="utf-8")
    csr = tmp_path / "taro.csr"
    csr.write_bytes(make_csr())
    issued = _invoke(home, evening, "--json", "issue", "--csr", str(csr), "--name", "山田 太郎")
    assert issued.exit_code == 0, issued.output
    data = json.loads(issued.stdout)
    assert data["not_before"] == "2026-12-02T23:30:00Z"
    shown_lines = _invoke(home, evening, "cert", "show", data["serial"]).stdout.splitlines()
    values = {line.split("  ")[0]: line.split("  ", 1)[1].strip() for line in shown_lines}
    assert values["not before"] == "2026-12-03 08:30:00 +09:00"
    assert values["issued at"] == "2026-12-03 08:30:00 +09:00"
    listed = _invoke(home, evening, "cert", "list").stdout
    row = next(line for line in listed.splitlines() if line.startswith(data["serial"]))
    assert "2027-12-03 08:29:59 +09:00" in row, row
    # The evidence does not move with the reader's zone.
    exported = _invoke(home, evening, "ledger", "export", "--format", "jsonl", "--out", str(tmp_path / "l.jsonl"))
    assert exported.exit_code == 0, exported.output
    text = (tmp_path / "l.jsonl").read_text(encoding="utf-8")
    assert "2026-12-02T23:30:00Z" in text and "+09:00" not in text


def test_the_zone_in_kinko_toml_decides(evening_home: tuple[Home, FixedClock]) -> None:
    home, evening = evening_home
    serial = json.loads(_invoke(home, evening, "--json", "cert", "list").stdout)[0]["serial"]
    _set_zone(home, "UTC")
    shown_lines = _invoke(home, evening, "cert", "show", serial).stdout
    assert "not before          2026-12-02 23:30:00 +00:00" in shown_lines, shown_lines


def test_a_refusal_names_its_time_in_the_bank_s_zone(evening_home: tuple[Home, FixedClock], tmp_path: Path) -> None:
    from kinko.ca.lifecycle import Kinko

    home, evening = evening_home
    kinko = Kinko(home, clock=evening, actor=current_login())
    kinko.add_customer("C0001", "株式会社テスト")
    serial = kinko.acquire(kinko.enroll_administrator("C0001", "山田 太郎", "C0001-A1").code, make_csr()).record.serial
    csr = tmp_path / "new.csr"
    csr.write_bytes(make_csr())
    refused = _invoke(home, evening, "renew", "--serial", serial, "--csr", str(csr))
    assert refused.exit_code == 1
    # Renewal opens 30 days before 2027-12-02T23:29:59Z: in Tokyo, the morning of 2 November.
    assert (
        refused.stderr
        == f"kinko: error: renewal of {serial} opens at 2027-11-03 08:29:59 +09:00 (30 days before it expires)\n"
    )


@pytest.mark.parametrize(
    ("zone", "problem"),
    [("Asia/Nowhere", "'Asia/Nowhere'"), ("../../etc/passwd", "'../../etc/passwd'"), (9, "must be a str")],
)
def test_a_bad_zone_is_one_line_and_changes_nothing(
    evening_home: tuple[Home, FixedClock], zone: object, problem: str
) -> None:
    home, evening = evening_home
    text = (home.path / "kinko.toml").read_text(encoding="utf-8")
    (home.path / "kinko.toml").write_text(text.replace('timezone = "Asia/Tokyo"', f"timezone = {json.dumps(zone)}"))
    before = row_counts(home)
    csr = home.path.parent / "taro.csr"
    csr.write_bytes(make_csr())
    refused = _invoke(home, evening, "issue", "--csr", str(csr), "--name", "山田 太郎")
    assert refused.exit_code == 1 and refused.stdout == ""
    lines = refused.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("kinko: error: [display] timezone") and problem in lines[0], lines
    assert row_counts(home) == before


def test_a_ca_outside_japan_shows_utc_and_an_old_home_follows_its_country(
    tmp_path: Path, passphrase_file: Path
) -> None:
    evening = FixedClock(LATE_EVENING_UTC)
    options = InitOptions(organization="Example Bank", country="US", passphrase_file=passphrase_file)
    home = create_home(tmp_path / "us", options, evening, current_login())
    assert 'timezone = "UTC"' in (home.path / "kinko.toml").read_text(encoding="utf-8")
    assert home.display_zone() is dt.UTC
    # A home made before [display] existed: Tokyo for a JP CA, UTC otherwise.
    jp = create_home(
        tmp_path / "jp", InitOptions(organization="興産信用金庫", passphrase_file=passphrase_file), evening, "root"
    )
    text = (jp.path / "kinko.toml").read_text(encoding="utf-8")
    (jp.path / "kinko.toml").write_text(text[: text.index("[display]")])
    assert str(Home(jp.path).display_zone()) == "Asia/Tokyo"
