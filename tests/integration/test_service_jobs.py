"""The CA service's schedule, driven on an injected clock: each job runs when it is due, does its
work with the service's own session, and is recorded in the ledger when it did something or failed.

The schedule is run here by calling `run_due` (what the service's thread does every second), so
nothing sleeps; tests/integration/test_service.py checks the thread inside a running service.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from kinko.ca.clock import FixedClock, to_text
from kinko.ca.config import set_value
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from kinko.ca.service.jobs import JobStatus, Schedule, jobs
from kinko.crl.publisher import crl_paths
from tests.conftest import make_csr, raw_execute

FULL_CRL_SECONDS = 20  # the shipped [service] full_crl_seconds


def configure(home: Home, **values: int) -> Home:
    """Sets `key = value` lines in the home's kinko.toml; returns the home opened again."""
    text = home.config_file.read_text(encoding="utf-8")
    for key, value in values.items():
        text = set_value(text, key, value)
    home.config_file.write_text(text, encoding="utf-8")
    return Home(home.path)


@pytest.fixture
def officer(home: Home, clock: FixedClock) -> Kinko:
    """An officer's session whose revocations go only into the delta once the full CRL has 1 entry."""
    return Kinko(configure(home, delta_after_entries=1), clock=clock)


@pytest.fixture
def schedule(officer: Kinko, clock: FixedClock) -> Schedule:
    """The service's schedule, with its own session (as the service's thread has)."""
    service = Kinko(Home(officer.home.path), clock=clock, actor="kinko-service")
    made = Schedule(service, clock, jobs(FULL_CRL_SECONDS))
    made.run_due()  # the start-up run: everything is checked once
    return made


def issue(kinko: Kinko) -> str:
    return kinko.issue(make_csr(), name="山田 太郎", organization="株式会社テスト").record.serial


def full_crl_serials(home: Home) -> set[int]:
    crl = x509.load_der_x509_crl(crl_paths(home, "issuing", "full")[0].read_bytes())
    return {entry.serial_number for entry in crl}


def events(home: Home, action: str) -> list[dict[str, object]]:
    return [json.loads(e.details) for e in Home(home.path).store.ledger_events() if e.action == action]


def status(schedule: Schedule, name: str) -> JobStatus:
    return next(job for job in schedule.status() if job.name == name)


def test_a_change_that_went_only_into_the_delta_reaches_the_full_crl(
    officer: Kinko, schedule: Schedule, clock: FixedClock
) -> None:
    first, second = issue(officer), issue(officer)
    officer.revoke(first, reason="key-compromise")  # the full CRL then holds 1 entry
    clock.advance(seconds=FULL_CRL_SECONDS)
    published = officer.revoke(second, reason="key-compromise").crls
    assert [p.kind for p in published] == ["delta"]
    assert full_crl_serials(officer.home) == {int(first, 16)}

    clock.advance(seconds=1)
    assert "crl-current" in schedule.run_due()
    assert full_crl_serials(officer.home) == {int(first, 16), int(second, 16)}
    ran = [e for e in events(officer.home, "job.ran") if e["job"] == "crl-current"]
    assert len(ran) == 1 and "issuing full CRL" in str(ran[0]["result"])
    job = status(schedule, "crl-current")
    assert job.last_run == to_text(clock.now()) and job.last_error is None
    assert job.next_run == to_text(clock.now() + dt.timedelta(seconds=FULL_CRL_SECONDS))


def test_a_burst_of_changes_gets_one_full_crl_per_interval(
    officer: Kinko, schedule: Schedule, clock: FixedClock
) -> None:
    serials = [issue(officer) for _ in range(4)]
    officer.revoke(serials[0], reason="key-compromise")
    clock.advance(seconds=FULL_CRL_SECONDS)
    officer.revoke(serials[1], reason="key-compromise")
    schedule.trigger("crl-current")  # what the service does after each request
    schedule.run_due()
    assert full_crl_serials(officer.home) == {int(s, 16) for s in serials[:2]}
    for serial in serials[2:]:
        clock.advance(seconds=1)
        officer.revoke(serial, reason="key-compromise")
        schedule.trigger("crl-current")
        schedule.run_due()
    # Within the interval the changes wait in the delta; at its end, one full CRL takes them all.
    assert full_crl_serials(officer.home) == {int(s, 16) for s in serials[:2]}
    clock.advance(seconds=FULL_CRL_SECONDS)
    schedule.run_due()
    assert full_crl_serials(officer.home) == {int(s, 16) for s in serials}
    assert len([e for e in events(officer.home, "job.ran") if e["job"] == "crl-current"]) == 2


def test_nothing_due_records_nothing(officer: Kinko, schedule: Schedule, clock: FixedClock) -> None:
    head = officer.home.store.ledger_head()[0]
    clock.advance(seconds=FULL_CRL_SECONDS)
    assert "crl-current" in schedule.run_due()
    assert Home(officer.home.path).store.ledger_head()[0] == head
    assert status(schedule, "crl-current").last_run == to_text(clock.now())


def test_crls_are_published_again_at_half_their_life(officer: Kinko, schedule: Schedule, clock: FixedClock) -> None:
    home = officer.home
    before = home.store.latest_crl("issuing", "full")
    root_before = home.store.latest_crl("root", "full")
    assert before is not None and root_before is not None
    clock.advance(hours=24)  # half of [crl] next_update_hours = 48
    schedule.run_due()
    after = Home(home.path).store.latest_crl("issuing", "full")
    assert after is not None and after.number > before.number and after.this_update == to_text(clock.now())
    assert Home(home.path).store.latest_crl("root", "full") == root_before  # the ARL lives 35 days
    clock.advance(days=17, hours=12)
    schedule.run_due()
    root_after = Home(home.path).store.latest_crl("root", "full")
    assert root_after is not None and root_after.number > root_before.number


def test_a_scheduled_termination_is_applied_when_its_date_comes(
    officer: Kinko, schedule: Schedule, clock: FixedClock
) -> None:
    officer.add_customer("C0001", "株式会社テスト")
    enrolled = officer.enroll_administrator("C0001", "山田 太郎")
    holder = officer.acquire(enrolled.code, make_csr()).record.serial
    effective = clock.now() + dt.timedelta(hours=3)
    officer.terminate_customer("C0001", effective)
    clock.set(effective - dt.timedelta(seconds=1))
    schedule.run_due()
    assert Home(officer.home.path).store.customer("C0001").status == "active"
    clock.set(effective + dt.timedelta(seconds=59))
    assert "service-ends" in schedule.run_due()
    store = Home(officer.home.path).store
    assert store.customer("C0001").status == "terminated"
    assert store.certificate(holder).status == "revoked"
    assert any(e["job"] == "service-ends" and "C0001" in str(e["result"]) for e in events(officer.home, "job.ran"))


def test_ocsp_signers_are_renewed_at_two_thirds_of_their_life(
    officer: Kinko, schedule: Schedule, clock: FixedClock
) -> None:
    before = officer.home.store.authority("ocsp:issuing")
    clock.advance(days=20, hours=1)  # 2/3 of [ocsp] signer_validity_days = 30
    schedule.run_due()
    after = Home(officer.home.path).store.authority("ocsp:issuing")
    assert after is not None and before is not None and after[0] != before[0]
    assert any(e["job"] == "ocsp-signers" for e in events(officer.home, "job.ran"))


def test_the_service_warns_ahead_of_a_certificate_s_end(officer: Kinko, clock: FixedClock) -> None:
    home = configure(officer.home, expiry_warning_days=100_000)
    schedule = Schedule(Kinko(home, clock=clock, actor="kinko-service"), clock, jobs(FULL_CRL_SECONDS))
    schedule.run_due()
    result = status(schedule, "expiry-warnings").last_result or ""
    assert result.startswith("warning: ") and "the audit signer ends" in result and "issuing CA" in result
    assert any(e["job"] == "expiry-warnings" for e in events(home, "job.ran"))


def test_a_run_of_failures_is_recorded_once_and_ends_when_the_job_succeeds(
    officer: Kinko, schedule: Schedule, clock: FixedClock
) -> None:
    crl_dir = officer.home.public_dir / "crl"
    saved = crl_dir.with_name("crl.saved")
    shutil.move(crl_dir, saved)
    crl_dir.write_text("not a directory\n", encoding="utf-8")  # root ignores modes: a file blocks it
    for _ in range(3):
        clock.advance(hours=24)
        schedule.run_due()
    failed = [e for e in events(officer.home, "job.failed") if e["job"] == "crl-republish"]
    assert len(failed) == 1 and "was not published" in str(failed[0]["error"])
    latest_error = status(schedule, "crl-republish").last_error or ""
    assert latest_error.startswith(f"cannot write {crl_dir}") and "was not published" in latest_error
    # The other jobs ran all the same.
    assert status(schedule, "ocsp-refresh").last_run == to_text(clock.now())

    crl_dir.unlink()
    shutil.move(saved, crl_dir)
    clock.advance(hours=24)
    schedule.run_due()
    assert status(schedule, "crl-republish").last_error is None
    latest = Home(officer.home.path).store.latest_crl("issuing", "full")
    assert latest is not None and latest.this_update == to_text(clock.now())


def test_service_status_outside_the_service_is_one_line(home: Home, run_cli) -> None:
    result = run_cli("--home", home.path, "service", "status")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "kinko: error: no CA service here: `kinko service status` asks the running service (--socket or KINKO_SOCKET)"
    ]


def test_the_schedule_s_full_crl_is_signed_only_over_confirmed_rows(
    officer: Kinko, schedule: Schedule, clock: FixedClock, tmp_path: Path
) -> None:
    first, second = issue(officer), issue(officer)
    officer.revoke(first, reason="key-compromise")
    clock.advance(seconds=FULL_CRL_SECONDS)
    officer.revoke(second, reason="key-compromise")
    # Someone with write access to the file un-revokes the first behind Kinko's back.
    raw_execute(officer.home, "UPDATE certificates SET status = 'valid' WHERE serial = ?", (first,))
    clock.advance(seconds=1)
    schedule.run_due()
    assert full_crl_serials(officer.home) == {int(first, 16)}  # the last good full CRL stands
    failed = [e for e in events(officer.home, "job.failed") if e["job"] == "crl-current"]
    assert len(failed) == 1 and first in str(failed[0]["error"])


# ---------------------------------------------------------------- inside a running service


@pytest.fixture
def running_service(officer: Kinko, tmp_path: Path) -> Iterator[Path]:
    """`kinko service run` on the officer's home (real clock), full CRL interval 1 s."""
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    configure(officer.home, full_crl_seconds=1)
    sock = tmp_path / "kinko.sock"
    process = subprocess.Popen(
        [sys.executable, "-m", "kinko.cli", "--home", str(officer.home.path), "service", "run", "--listen", str(sock)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert process.poll() is None and time.monotonic() < deadline, "the service did not start"
            time.sleep(0.02)
        yield sock
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_running_service_keeps_the_full_crl_current_and_shows_its_jobs(
    officer: Kinko, running_service: Path
) -> None:
    import time

    from tests.conftest import run_kinko

    first, second = issue(officer), issue(officer)
    for serial in (first, second):
        done = run_kinko("--socket", running_service, "--json", "revoke", serial, "--reason", "key-compromise")
        assert done.returncode == 0, done.stderr
    assert [c["kind"] for c in json.loads(done.stdout)["crls_published"]] == ["delta"]
    # The service's own thread builds the full CRL after the change: wait for it, bounded.
    deadline = time.monotonic() + 30
    while full_crl_serials(officer.home) != {int(first, 16), int(second, 16)}:
        assert time.monotonic() < deadline, "the service never put the change into a full CRL"
        time.sleep(0.1)

    shown = run_kinko("--socket", running_service, "--json", "service", "status")
    assert shown.returncode == 0, shown.stderr
    jobs_shown = {job["name"]: job for job in json.loads(shown.stdout)}
    assert list(jobs_shown) == [job.name for job in jobs(1)]
    assert all(job["last_run"] and job["next_run"] for job in jobs_shown.values())
    assert "issuing full CRL" in (jobs_shown["crl-current"]["last_result"] or "")
    human = run_kinko("--socket", running_service, "service", "status")
    assert human.returncode == 0 and "crl-current: every 1 s; last run " in human.stdout


def test_a_delta_is_published_while_a_full_crl_is_being_built(officer: Kinko, clock: FixedClock) -> None:
    """The schedule's full CRL (seconds at a million entries) holds the full CRL's lock only: a
    revocation's delta goes out meanwhile."""
    import fcntl
    import os
    import threading

    first, second = issue(officer), issue(officer)
    officer.revoke(first, reason="key-compromise")
    clock.advance(seconds=1)
    lock = os.open(officer.home.path / ".crl-issuing.lock", os.O_RDWR)
    results: list[list[str]] = []
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a full CRL build in progress holds it

        def revoke() -> None:  # another officer's process: its own connection
            other = Kinko(Home(officer.home.path), clock=clock)
            results.append([c.kind for c in other.revoke(second, reason="key-compromise").crls])

        revoking = threading.Thread(target=revoke)
        revoking.start()
        revoking.join(timeout=30)
        assert not revoking.is_alive(), "the revocation waited for the full CRL's lock"
    finally:
        os.close(lock)
    assert results == [["delta"]]
    delta = x509.load_der_x509_crl(crl_paths(officer.home, "issuing", "delta")[0].read_bytes())
    assert delta.get_revoked_certificate_by_serial_number(int(second, 16)) is not None


def test_a_delta_checks_the_rows_it_lists_and_the_full_crl_all_of_them(
    officer: Kinko, schedule: Schedule, clock: FixedClock
) -> None:
    """A delta is signed over the rows changed since its base, each confirmed by its last event (so a
    revocation stays cheap at a million entries); a row edited without a new change is the full CRL's
    to refuse."""
    first, second, third = issue(officer), issue(officer), issue(officer)
    officer.revoke(first, reason="key-compromise")
    base = officer.home.store.latest_crl("issuing", "full")
    assert base is not None
    clock.advance(seconds=FULL_CRL_SECONDS)
    # Someone with write access un-revokes `first` and dresses it up as a change after the base,
    # so that the next delta would carry removeFromCRL for it.
    raw_execute(
        officer.home,
        "UPDATE certificates SET status = 'valid', revocation_reason = NULL, revoked_at = NULL, "
        "changed_seq = changed_seq + 1000 WHERE serial = ?",
        (first,),
    )
    with pytest.raises(Exception, match="refused to sign the delta CRL of issuing") as refused:
        officer.revoke(second, reason="key-compromise")
    assert first in str(refused.value)
    delta = x509.load_der_x509_crl(crl_paths(officer.home, "issuing", "delta")[0].read_bytes())
    assert delta.get_revoked_certificate_by_serial_number(int(first, 16)) is None  # no removeFromCRL went out
    # Put back, then edit a row that the next delta does not list: the delta goes out, the full refuses.
    raw_execute(
        officer.home,
        "UPDATE certificates SET status = 'revoked', revocation_reason = 'key-compromise', "
        "revoked_at = ?, changed_seq = changed_seq - 1000 WHERE serial = ?",
        (base.this_update, first),
    )
    raw_execute(officer.home, "UPDATE certificates SET revocation_reason = 'superseded' WHERE serial = ?", (first,))
    clock.advance(seconds=1)
    assert [c.kind for c in officer.revoke(third, reason="key-compromise").crls] == ["delta"]
    clock.advance(seconds=FULL_CRL_SECONDS)
    schedule.run_due()
    failed = [e for e in events(officer.home, "job.failed") if e["job"] == "crl-current"]
    assert len(failed) == 1 and first in str(failed[0]["error"])


def test_a_bulk_operation_streams_its_progress_through_the_socket(officer: Kinko, running_service: Path) -> None:
    """A customer's suspension over the socket: progress frames come before the reply, ending at
    done == total, and the officer's terminal draws the same bar as in direct mode."""
    import os
    import pty
    import subprocess
    import sys

    from kinko.ca.service.client import call
    from tests.conftest import ROOT

    officer.add_customer("C0001", "株式会社テスト")
    holders = 5
    for n in range(holders):
        enrolled = officer.enroll_administrator("C0001", f"管理者 {n}") if n == 0 else None
        if enrolled is not None:
            admin = enrolled.subscriber_id
            officer.acquire(enrolled.code, make_csr())
        else:
            user = officer.enroll_user("C0001", f"利用者 {n}", admin)
            officer.acquire(user.code, make_csr())
    frames: list[dict[str, object]] = []
    reply = call(running_service, "customer suspend", {"customer_id": "C0001"}, True, on_progress=frames.append)
    assert reply["exit"] == 0, reply
    assert frames and frames[-1] == {"label": "certificates", "done": holders, "total": holders}
    assert json.loads(reply["stdout"])["certificates"]
    # Without asking for progress (a pipe, or --json), no frames: the reply alone.
    reply = call(running_service, "customer resume", {"customer_id": "C0001"}, True)
    assert reply["exit"] == 0 and "progress" not in reply

    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "kinko.cli", "--socket", str(running_service), "customer", "suspend", "C0001"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=secondary,
            timeout=60,
            check=False,
        )
        os.close(secondary)
        drawn = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(primary, 65536):
                drawn += chunk
    finally:
        os.close(primary)
    assert done.returncode == 0, drawn
    assert b"certificates" in drawn and b"100%" in drawn, drawn


def test_each_new_configuration_is_recorded_and_a_broken_one_is_reported(
    officer: Kinko, schedule: Schedule, clock: FixedClock
) -> None:
    import hashlib

    home = officer.home
    (first,) = events(home, "config.changed")  # the start-up run
    assert first["changed"] == ["kinko.toml", "profiles.toml"]
    assert first["sha256"] == {
        name: hashlib.sha256((home.path / name).read_bytes()).hexdigest() for name in ("kinko.toml", "profiles.toml")
    }
    clock.advance(minutes=1)
    schedule.run_due()
    assert len(events(home, "config.changed")) == 1  # unchanged: nothing recorded

    profiles = home.path / "profiles.toml"
    profiles.write_text(profiles.read_text(encoding="utf-8").replace('validity = "1y"', 'validity = "300d"', 1))
    clock.advance(minutes=1)
    schedule.run_due()
    recorded = events(home, "config.changed")
    assert len(recorded) == 2 and recorded[-1]["changed"] == ["profiles.toml"]

    with profiles.open("a", encoding="utf-8") as handle:  # a profile no one may add
        handle.write('\n[responder]\nvalidity = "90d"\nkey_usage = ["digital_signature"]\n')
        handle.write('extended_key_usage = ["ocsp_signing"]\n')
    clock.advance(minutes=1)
    schedule.run_due()
    assert len(events(home, "config.changed")) == 2
    failed = [e for e in events(home, "job.failed") if e["job"] == "config-watch"]
    assert len(failed) == 1 and "carries the ocsp_signing EKU" in str(failed[0]["error"])


def test_the_schedule_outlives_a_store_that_cannot_record(officer: Kinko, schedule: Schedule, clock) -> None:
    """A full disk fails the job and then the record of its failure (a raw sqlite3 error): the
    schedule says so and goes on, and the next run after space is back succeeds."""
    import sqlite3

    real = schedule.kinko.home.store.transaction

    def full(*_args: object, **_kwargs: object) -> object:
        raise sqlite3.OperationalError("database or disk is full")

    schedule.kinko.home.store.transaction = full  # type: ignore[method-assign]
    try:
        clock.advance(hours=24)
        schedule.run_due()  # every job that writes fails, and so does each record of it
    finally:
        schedule.kinko.home.store.transaction = real  # type: ignore[method-assign]
    assert "database or disk is full" in (status(schedule, "crl-republish").last_error or "")
    clock.advance(hours=24)
    schedule.run_due()
    assert status(schedule, "crl-republish").last_error is None


def test_progress_stops_after_a_client_that_cannot_keep_up() -> None:
    from kinko.ca.service.server import Streamed

    sent: list[object] = []

    def stream(frame: dict[str, object]) -> None:
        sent.append(frame)
        raise BlockingIOError("the client reads its progress too slowly")

    progress = Streamed("certificates", stream)
    for done in range(1, 4):
        progress.step(done, 3)
    assert len(sent) == 1  # after the first failure, nothing more is tried


def test_the_schedule_and_the_service_run_under_a_configuration_root_edited(home: Home, clock: FixedClock) -> None:
    """A session keeps the configuration it began with: once the files change, the schedule's
    next run (and the service's next request) runs under the new ones; a file that does not load
    leaves the one in force."""
    schedule = Schedule(Kinko(home, clock=clock, actor="kinko-service"), clock, jobs(FULL_CRL_SECONDS))
    schedule.run_due()
    assert schedule.kinko.session.config.ocsp.next_update_days == 4
    text = home.config_file.read_text("utf-8")
    home.config_file.write_text(text.replace("\nnext_update_days = 4", "\nnext_update_days = 3"), "utf-8")
    clock.advance(minutes=1)
    schedule.run_due()
    assert schedule.kinko.session.config.ocsp.next_update_days == 3
    recorded = home.store.last_event("config.changed")
    assert recorded is not None and json.loads(recorded.details)["changed"] == ["kinko.toml"]

    home.config_file.write_text(text.replace("\nnext_update_days = 4", "\nnext_update_days = -5"), "utf-8")
    assert home.refresh_config() is False  # does not load: the one in force stays
    assert home.config.ocsp.next_update_days == 3
    home.config_file.write_bytes(b"\xff\xfe not UTF-8")
    assert home.refresh_config() is False and home.config.ocsp.next_update_days == 3
    clock.advance(minutes=1)
    schedule.run_due()  # the schedule goes on; config-watch reports the file
    watch = next(job for job in schedule.status() if job.name == "config-watch")
    assert watch.last_error is not None and "not UTF-8" in watch.last_error
