"""The bank's certificate lifecycle: customers, enrollments, acquire, renew, re-acquire, reissue,
incidents, suspension, termination, status and reports, against real SQLite with an injected clock.

Every boundary is exact to the second and inclusive; every refusal is shown to change nothing
(the rows of every table are compared before and after), except a wrong, used or expired
enrollment code, which by design records one `enrollment.code-refused` event and the
subscriber's failed-attempt count for rate limiting.
"""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from kinko.ca import enrollments, windows
from kinko.ca.clock import FixedClock, from_text, to_text
from kinko.ca.errors import Conflict, KinkoError, NotFound, PolicyError
from kinko.ca.home import Home
from kinko.ca.ledger import verify_chain
from kinko.ca.lifecycle import Kinko
from kinko.ca.officers import current_login
from kinko.ca.store import CertificateRecord
from tests.conftest import make_csr, make_key, people_time, raw_execute, table_rows

CUSTOMER = "C0001"
CUSTOMER_NAME = "株式会社興産テスト"
OTHER = "C0002"
OTHER_NAME = "有限会社みなと商会"
ADMIN_NAME = "山田 太郎"
USER_NAME = "佐藤 花子"
SYMBOL = "[0-9A-HJKMNP-TV-Z]"  # Crockford base32: no I, L, O, U
CODE_FORMAT = re.compile(rf"^{SYMBOL}{{4}}(?:-{SYMBOL}{{4}}){{6}}$")
TABLES = ("customers", "subscribers", "enrollments", "certificates", "incidents", "ledger", "crls", "ocsp_responses")
JST = dt.timezone(dt.timedelta(hours=9))


# ---------------------------------------------------------------- helpers


def counts(home: Home) -> dict[str, int]:
    """Rows per table, straight from the SQLite file."""
    return {t: raw_execute(home, f"SELECT COUNT(*) FROM {t}")[0][0] for t in TABLES}  # noqa: S608


def snapshot(home: Home) -> dict[str, list[dict[str, Any]]]:
    """Every row of every lifecycle table, straight from the SQLite file, in rowid order."""
    return {t: table_rows(home, t) for t in TABLES}


def assert_unchanged(home: Home, before: dict[str, list[dict[str, Any]]]) -> None:
    """A refusal: no row of any table was added, removed or changed (so no ledger row either)."""
    assert counts(home) == {t: len(rows) for t, rows in before.items()}
    after = snapshot(home)
    for table in TABLES:
        assert after[table] == before[table], f"table {table} changed"


def assert_only_code_refusal(
    home: Home,
    before: dict[str, list[dict[str, Any]]],
    subscriber_id: str,
    attempts: int,
    action: str = "enrollment.code-refused",
) -> dict[str, Any]:
    """The one allowed change on a refusal: one enrollment.code-refused event (which the rate
    limit counts, per client); returns its details."""
    after = snapshot(home)
    for table in TABLES:
        if table != "ledger":
            assert after[table] == before[table], f"table {table} changed"
    assert after["ledger"][: len(before["ledger"])] == before["ledger"]
    added = after["ledger"][len(before["ledger"]) :]
    assert [(e["action"], e["subscriber"]) for e in added] == [(action, subscriber_id)]
    details = json.loads(added[0]["details"])
    assert details["attempts"] == attempts
    assert added[0]["actor"] == current_login()
    return details


def refuse(call: Callable[[], Any], error: type[KinkoError], message: str) -> str:
    """Runs a refused call; checks the error type and that its message contains `message`."""
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value), str(info.value)
    return str(info.value)


def at(text: str) -> dt.datetime:
    value = from_text(text)
    assert value is not None
    return value


def one_year_later(start: dt.datetime) -> dt.datetime:
    """The same instant one calendar year later (Feb 29 -> Feb 28), minus one second."""
    day = min(start.day, calendar.monthrange(start.year + 1, start.month)[1])
    return start.replace(year=start.year + 1, day=day) - dt.timedelta(seconds=1)


def wrong_code(code: str) -> str:
    """The same enrollment (its public first group) with one secret character changed."""
    last = code[-1]
    return code[:-1] + ("X" if last != "X" else "Y")


def crl_entry(home: Home, serial: str) -> x509.RevokedCertificate | None:
    crl = x509.load_der_x509_crl((home.public_dir / "crl" / "issuing.crl").read_bytes())
    return crl.get_revoked_certificate_by_serial_number(int(serial, 16))


def crl_reason(entry: x509.RevokedCertificate) -> x509.ReasonFlags:
    return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason


def active(home: Home, subscriber_id: str, now: dt.datetime) -> list[str]:
    """Serials of the subscriber's certificates that are neither expired nor revoked at `now`."""
    return [
        r.serial
        for r in home.store.subscriber_certificates(subscriber_id)
        if r.status in ("valid", "held") and r.not_after >= to_text(now)
    ]


@dataclass
class Holder:
    """A subscriber with the key on their PC and their current certificate."""

    id: str
    key: Any
    record: CertificateRecord
    pem: str


def add_customers(kinko: Kinko) -> None:
    kinko.add_customer(CUSTOMER, CUSTOMER_NAME)
    kinko.add_customer(OTHER, OTHER_NAME)


def admin_holder(kinko: Kinko, customer: str = CUSTOMER, subscriber_id: str | None = None) -> Holder:
    enrolled = kinko.enroll_administrator(customer, ADMIN_NAME, subscriber_id)
    key = make_key()
    issued = kinko.acquire(enrolled.code, make_csr(key))
    return Holder(enrolled.subscriber_id, key, issued.record, issued.pem)


def user_holder(kinko: Kinko, admin: str, customer: str = CUSTOMER, name: str = USER_NAME) -> Holder:
    enrolled = kinko.enroll_user(customer, name, admin)
    key = make_key()
    issued = kinko.acquire(enrolled.code, make_csr(key))
    return Holder(enrolled.subscriber_id, key, issued.record, issued.pem)


@pytest.fixture
def bank(kinko: Kinko) -> Kinko:
    """The CA with customers C0001 and C0002 registered."""
    add_customers(kinko)
    return kinko


@pytest.fixture
def kcli(home: Home, run_cli) -> Callable[..., Any]:
    """`kinko --home HOME ARGS` in-process with the injected clock."""

    def run(*args: Any) -> Any:
        return run_cli("--home", home.path, *args)

    return run


def ok(result: Any) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def ok_json(result: Any) -> Any:
    return json.loads(ok(result))


def cli_refused(result: Any, message: str) -> str:
    """Exit 1 and exactly one line, `kinko: error: ...message...`."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kinko: error: "), result.output
    assert message in lines[0], lines[0]
    return lines[0]


def csr_file(tmp_path: Path, key: Any = None, name: str = "req") -> Path:
    path = tmp_path / f"{name}-{len(list(tmp_path.glob(name + '-*.csr')))}.csr"
    path.write_bytes(make_csr(key))
    return path


# ---------------------------------------------------------------- customers and enrollments


def test_customer_add_list_show(home: Home, kcli, clock: FixedClock) -> None:
    added = ok_json(kcli("--json", "customer", "add", CUSTOMER, "--name", CUSTOMER_NAME))
    assert added["id"] == CUSTOMER and added["name"] == CUSTOMER_NAME and added["status"] == "active"
    assert added["created_at"] == to_text(clock.now())
    ok(kcli("customer", "add", OTHER, "--name", OTHER_NAME))
    listed = ok_json(kcli("--json", "customer", "list"))
    assert [(c["id"], c["name"], c["status"]) for c in listed] == [
        (CUSTOMER, CUSTOMER_NAME, "active"),
        (OTHER, OTHER_NAME, "active"),
    ]
    human = ok(kcli("customer", "list"))
    assert CUSTOMER_NAME in human and OTHER_NAME in human

    enrolled = ok_json(kcli("--json", "enroll", "administrator", "--customer", CUSTOMER, "--name", ADMIN_NAME))
    shown = ok_json(kcli("--json", "customer", "show", CUSTOMER))
    assert shown["id"] == CUSTOMER and shown["status"] == "active"
    assert [(s["id"], s["role"], s["name"], s["state"]) for s in shown["subscribers"]] == [
        (enrolled["subscriber_id"], "administrator", ADMIN_NAME, "pending")
    ]
    assert enrolled["code"] not in json.dumps(shown)
    assert ADMIN_NAME in ok(kcli("customer", "show", CUSTOMER))

    before = snapshot(home)
    cli_refused(kcli("customer", "add", CUSTOMER, "--name", "別の会社"), f"customer {CUSTOMER} already exists")
    cli_refused(kcli("customer", "show", "C9999"), "no customer C9999")
    assert_unchanged(home, before)


def test_enroll_administrator_prints_id_code_and_expiry(home: Home, kcli, clock: FixedClock) -> None:
    ok(kcli("customer", "add", CUSTOMER, "--name", CUSTOMER_NAME))
    expiry = to_text(clock.now() + dt.timedelta(days=80))
    human = ok(kcli("enroll", "administrator", "--customer", CUSTOMER, "--name", ADMIN_NAME, "--id", "ADM-1"))
    fields = dict(re.findall(r"^(subscriber|code|expires at)\s+(\S.*)$", human, re.MULTILINE))
    assert fields["subscriber"] == "ADM-1"
    assert CODE_FORMAT.match(fields["code"]), fields["code"]
    assert fields["expires at"] == people_time(expiry)  # in the bank's zone, with its offset
    assert "shown once" in human

    data = ok_json(kcli("--json", "enroll", "administrator", "--customer", CUSTOMER, "--name", "高橋 次郎"))
    assert re.fullmatch(r"S[0-9A-HJKMNP-TV-Z]{8}", data["subscriber_id"]), data["subscriber_id"]
    assert data["role"] == "administrator" and data["customer_id"] == CUSTOMER and data["expires_at"] == expiry
    assert CODE_FORMAT.match(data["code"]) and data["code"] != fields["code"]

    before = snapshot(home)
    cli_refused(
        kcli("enroll", "administrator", "--customer", CUSTOMER, "--name", "重複", "--id", "ADM-1"),
        "subscriber ADM-1 already exists",
    )
    cli_refused(kcli("enroll", "administrator", "--customer", "C9999", "--name", ADMIN_NAME), "no customer C9999")
    assert_unchanged(home, before)


def test_codes_are_typable_high_entropy_and_never_stored_in_clear(
    home: Home, bank: Kinko, kcli, backend: str, request: pytest.FixtureRequest
) -> None:
    assert enrollments.SECRET_BITS >= 100
    codes = [bank.enroll_administrator(CUSTOMER, f"管理者 {i}").code for i in range(20)]
    printed = ok_json(kcli("--json", "enroll", "administrator", "--customer", CUSTOMER, "--name", ADMIN_NAME))
    codes.append(printed["code"])
    assert len(set(codes)) == len(codes)
    for code in codes:
        assert CODE_FORMAT.match(code), code
        groups = code.split("-")
        secret_symbols = sum(len(g) for g in groups[enrollments.LOOKUP_GROUPS :])
        assert secret_symbols * 5 >= 100  # 32 symbols = 5 bits each, beyond the public lookup group

    # Nowhere in the CA home (database, WAL, config, public files) or the database server's
    # files (its tables and WAL, flushed), in any typed form.
    blobs = {p: p.read_bytes() for p in home.path.rglob("*") if p.is_file()}
    if backend == "sqlite":
        assert any(p.name.startswith("kinko.db") for p in blobs)
    else:
        raw_execute(home, "CHECKPOINT")
        data = request.getfixturevalue("postgres").primary.data
        blobs.update({p: p.read_bytes() for p in data.rglob("*") if p.is_file()})
        assert any(p.parent.name == "pg_wal" for p in blobs)
    for code in codes:
        normalized = enrollments.normalize(code)
        assert normalized is not None
        secret = normalized[enrollments.LOOKUP_GROUPS * enrollments.GROUP_SIZE :]
        for form in {code, normalized, code.lower(), normalized.lower(), code.replace("-", " "), secret}:
            for path, data in blobs.items():
                assert form.encode("ascii") not in data, f"{form} found in {path}"

    # The holder may type it in lower case, with spaces instead of hyphens.
    typed = printed["code"].lower().replace("-", " ")
    issued = bank.acquire(typed, make_csr())
    assert issued.record.subscriber_id == printed["subscriber_id"]


def test_acquire_gives_a_one_year_certificate_naming_holder_customer_and_subscriber(
    home: Home, bank: Kinko, kcli, tmp_path: Path, clock: FixedClock
) -> None:
    enrolled = bank.enroll_administrator(CUSTOMER, ADMIN_NAME, "ADM-1")
    clock.advance(days=3, hours=5)
    out = tmp_path / "client.pem"
    data = ok_json(kcli("--json", "acquire", "--code", enrolled.code, "--csr", csr_file(tmp_path), "--out", out))
    certificate = x509.load_pem_x509_certificate(out.read_bytes())
    subject = certificate.subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == ADMIN_NAME
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == CUSTOMER_NAME
    assert subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "ADM-1"
    assert certificate.not_valid_before_utc == clock.now()
    assert certificate.not_valid_after_utc == one_year_later(clock.now())
    assert data["subscriber_id"] == "ADM-1" and data["status"] == "valid"
    record = home.store.certificate(data["serial"])
    assert record is not None and record.not_after == to_text(one_year_later(clock.now()))
    (enrollment,) = home.store.enrollments("ADM-1")
    assert enrollment.redeemed_at == to_text(clock.now()) and enrollment.redeemed_serial == data["serial"]
    events = [e for e in home.store.ledger_events() if e.serial == data["serial"]]
    assert [e.action for e in events] == ["enrollment.redeemed", "certificate.issued"]


def test_enrollment_is_usable_at_creation_plus_80_days(home: Home, bank: Kinko, clock: FixedClock) -> None:
    enrolled = bank.enroll_administrator(CUSTOMER, ADMIN_NAME)
    created = clock.now()
    assert enrolled.expires_at == to_text(created + dt.timedelta(days=80))
    clock.set(created + dt.timedelta(days=80))
    issued = bank.acquire(enrolled.code, make_csr())
    assert issued.record.status == "valid" and issued.record.not_before == enrolled.expires_at


def test_enrollment_is_refused_one_second_after_80_days(home: Home, bank: Kinko, clock: FixedClock) -> None:
    enrolled = bank.enroll_administrator(CUSTOMER, ADMIN_NAME)
    clock.set(clock.now() + dt.timedelta(days=80, seconds=1))
    before = snapshot(home)
    refuse(lambda: bank.acquire(enrolled.code, make_csr()), PolicyError, windows.BAD_CODE)
    assert_unchanged(home, before)  # a code once right is no guess: nothing is counted or recorded


# ---------------------------------------------------------------- wrong, used and expired codes


def test_wrong_code_records_only_a_failed_attempt(home: Home, bank: Kinko) -> None:
    enrolled = bank.enroll_administrator(CUSTOMER, ADMIN_NAME)
    before = snapshot(home)
    refuse(lambda: bank.acquire(wrong_code(enrolled.code), make_csr()), PolicyError, windows.BAD_CODE)
    assert_only_code_refusal(home, before, enrolled.subscriber_id, 1)


def test_used_code_changes_nothing_and_is_not_counted(home: Home, bank: Kinko) -> None:
    enrolled = bank.enroll_administrator(CUSTOMER, ADMIN_NAME)
    bank.acquire(enrolled.code, make_csr())
    before = snapshot(home)
    refuse(lambda: bank.acquire(enrolled.code, make_csr()), PolicyError, windows.BAD_CODE)
    assert_unchanged(home, before)


def test_replaying_a_used_code_never_locks_the_holder_out_of_a_new_one(
    home: Home, bank: Kinko, clock: FixedClock
) -> None:
    """Five replays of an old code from shell history once locked the holder out of the reissue
    code the bank had just sent: whoever types a code that was once right is not guessing."""
    enrolled = bank.enroll_administrator(CUSTOMER, ADMIN_NAME, "ADM-9")
    first = bank.acquire(enrolled.code, make_csr()).record
    bank.revoke(first.serial, "key-compromise")
    reissued = bank.reissue("ADM-9")
    for _ in range(6):
        refuse(lambda: bank.acquire(enrolled.code, make_csr()), PolicyError, windows.BAD_CODE)
        clock.advance(seconds=5)
    assert bank.acquire(reissued.code, make_csr()).record.subscriber_id == "ADM-9"


def test_code_of_no_enrollment_is_counted_like_a_wrong_one(home: Home, bank: Kinko) -> None:
    # It once changed nothing and so answered sooner than a wrong code of a real enrollment.
    bank.enroll_administrator(CUSTOMER, ADMIN_NAME)
    before = snapshot(home)
    refuse(lambda: bank.acquire("0000-0000-0000-0000-0000-0000-0000", make_csr()), PolicyError, windows.BAD_CODE)
    assert assert_only_code_refusal(home, before, "", 1)["client"] == f"cli:{current_login()}"
    before = snapshot(home)
    refuse(lambda: bank.acquire("not a code", make_csr()), PolicyError, windows.BAD_CODE)
    assert_only_code_refusal(home, before, "", 2)


def test_wrong_used_expired_and_unknown_codes_get_the_same_message(
    home: Home, bank: Kinko, kcli, tmp_path: Path, clock: FixedClock
) -> None:
    expired = bank.enroll_administrator(CUSTOMER, "期限 切れ")
    clock.advance(days=80, seconds=1)
    used = bank.enroll_administrator(CUSTOMER, "使用 済み")
    bank.acquire(used.code, make_csr())
    waiting = bank.enroll_administrator(CUSTOMER, "未使用")
    unknown = "ZZZZ-" + waiting.code[5:] if not waiting.code.startswith("ZZZZ") else "YYYY-" + waiting.code[5:]
    lines = {
        label: cli_refused(kcli("acquire", "--code", code, "--csr", csr_file(tmp_path)), windows.BAD_CODE)
        for label, code in (
            ("wrong", wrong_code(waiting.code)),
            ("used", used.code),
            ("expired", expired.code),
            ("unknown", unknown),
        )
    }
    assert len(set(lines.values())) == 1, lines
    assert lines["wrong"] == f"kinko: error: {windows.BAD_CODE}"


def test_five_wrong_codes_lock_the_client_for_15_minutes(home: Home, bank: Kinko, clock: FixedClock) -> None:
    enrolled = bank.enroll_administrator(CUSTOMER, ADMIN_NAME)
    for attempt in range(1, 5):
        before = snapshot(home)
        refuse(lambda: bank.acquire(wrong_code(enrolled.code), make_csr()), PolicyError, windows.BAD_CODE)
        assert assert_only_code_refusal(home, before, enrolled.subscriber_id, attempt)["locked_until"] is None
        clock.advance(seconds=10)
    before = snapshot(home)
    refuse(lambda: bank.acquire(wrong_code(enrolled.code), make_csr()), PolicyError, windows.BAD_CODE)
    locked_at = clock.now()
    details = assert_only_code_refusal(home, before, enrolled.subscriber_id, 5)
    assert details["locked_until"] == to_text(locked_at + dt.timedelta(minutes=15))

    # Locked: even the right code is refused, and the refusal changes nothing.
    clock.set(locked_at + dt.timedelta(minutes=15, seconds=-1))
    before = snapshot(home)
    refuse(lambda: bank.acquire(enrolled.code, make_csr()), PolicyError, "too many wrong codes")
    refuse(lambda: bank.acquire(wrong_code(enrolled.code), make_csr()), PolicyError, "too many wrong codes")
    assert_unchanged(home, before)

    clock.set(locked_at + dt.timedelta(minutes=15))
    issued = bank.acquire(enrolled.code, make_csr())
    assert issued.record.subscriber_id == enrolled.subscriber_id


def test_status_shows_a_lockout_and_an_officer_clears_it(home: Home, bank: Kinko, kcli, clock: FixedClock) -> None:
    enrolled = bank.enroll_administrator(CUSTOMER, ADMIN_NAME, "ADM-7")
    client = "api:192.0.2.7"
    for _ in range(5):
        refuse(
            lambda: bank.acquire(wrong_code(enrolled.code), make_csr(), client=client), PolicyError, windows.BAD_CODE
        )
    data = ok_json(kcli("--json", "status", "--subscriber", "ADM-7"))
    until = to_text(clock.now() + dt.timedelta(minutes=15))
    assert data["locked_out"] == [{"client": client, "until": until}]
    human = ok(kcli("status", "--subscriber", "ADM-7"))
    assert f"locked out: {client} may not try codes until {people_time(until)}" in human
    assert ok_json(kcli("--json", "enroll", "locks")) == [{"client": client, "subscriber": "ADM-7", "until": until}]
    refuse(lambda: bank.acquire(enrolled.code, make_csr(), client=client), PolicyError, "too many wrong codes")

    cleared = ok_json(kcli("--json", "enroll", "unlock", client))
    assert cleared == {"client": client, "was_locked_until": until}
    event = [e for e in home.store.ledger_events() if e.action == "enrollment.lock-cleared"]
    assert len(event) == 1 and json.loads(event[0].details)["client"] == client
    assert "locked_out" not in ok_json(kcli("--json", "status", "--subscriber", "ADM-7"))
    cli_refused(kcli("enroll", "unlock", client), "is not locked out")
    # The refusals before the clearing were forgiven with it: four more wrong codes do not lock again.
    for _ in range(4):
        refuse(
            lambda: bank.acquire(wrong_code(enrolled.code), make_csr(), client=client), PolicyError, windows.BAD_CODE
        )
    assert bank.acquire(enrolled.code, make_csr(), client=client).record.subscriber_id == "ADM-7"


def test_four_wrong_codes_do_not_lock(home: Home, bank: Kinko) -> None:
    enrolled = bank.enroll_administrator(CUSTOMER, ADMIN_NAME)
    for _ in range(4):
        refuse(lambda: bank.acquire(wrong_code(enrolled.code), make_csr()), PolicyError, windows.BAD_CODE)
    assert bank.acquire(enrolled.code, make_csr()).record.status == "valid"


# ---------------------------------------------------------------- users: enrolled by their administrator


def test_administrator_enrolls_a_user_who_acquires(home: Home, bank: Kinko, kcli, tmp_path: Path) -> None:
    admin = admin_holder(bank, subscriber_id="ADM-1")
    data = ok_json(kcli("--json", "enroll", "user", "--customer", CUSTOMER, "--name", USER_NAME, "--by", admin.id))
    assert data["role"] == "user" and data["customer_id"] == CUSTOMER and CODE_FORMAT.match(data["code"])
    subscriber = home.store.subscriber(data["subscriber_id"])
    assert subscriber is not None and subscriber.created_by == admin.id
    created = [e for e in home.store.ledger_events() if e.action == "enrollment.created"][-1]
    assert json.loads(created.details)["on_behalf_of"] == admin.id
    issued = ok_json(kcli("--json", "acquire", "--code", data["code"], "--csr", csr_file(tmp_path)))
    certificate = x509.load_pem_x509_certificate(issued["pem"].encode("ascii"))
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == USER_NAME
    assert certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == data["subscriber_id"]


@pytest.mark.parametrize(
    ("acting", "message"),
    [
        ("other-admin", "belongs to another customer"),
        ("user", "is not an administrator"),
        ("admin-without-certificate", "holds no valid certificate"),
        ("admin-with-revoked-certificate", "holds no valid certificate"),
        ("nobody", "no subscriber NO-SUCH-ONE: --by names the customer's administrator"),
    ],
)
def test_only_the_customers_administrator_with_a_certificate_enrolls_users(
    home: Home, bank: Kinko, kcli, acting: str, message: str
) -> None:
    admin = admin_holder(bank, subscriber_id="ADM-1")
    if acting == "other-admin":
        by = admin_holder(bank, OTHER, "ADM-OTHER").id
    elif acting == "user":
        by = user_holder(bank, admin.id).id
    elif acting == "admin-without-certificate":
        by = bank.enroll_administrator(CUSTOMER, "証明書 なし").subscriber_id
    elif acting == "admin-with-revoked-certificate":
        bank.revoke(admin.record.serial, "privilege-withdrawn")
        by = admin.id
    else:
        by = "NO-SUCH-ONE"
    before = snapshot(home)
    cli_refused(kcli("enroll", "user", "--customer", CUSTOMER, "--name", "新人", "--by", by), message)
    refuse(lambda: bank.enroll_user(CUSTOMER, "新人", by), NotFound if acting == "nobody" else PolicyError, message)
    assert_unchanged(home, before)


# ---------------------------------------------------------------- suspended and terminated customers


def test_suspended_customer_refuses_enrollments_and_acquisitions(home: Home, bank: Kinko, kcli, tmp_path: Path) -> None:
    admin = admin_holder(bank, subscriber_id="ADM-1")
    pending = bank.enroll_user(CUSTOMER, USER_NAME, admin.id)
    ok(kcli("customer", "suspend", CUSTOMER))
    before = snapshot(home)
    message = f"customer {CUSTOMER}'s service is suspended"
    cli_refused(kcli("enroll", "administrator", "--customer", CUSTOMER, "--name", "停止中"), message)
    cli_refused(kcli("enroll", "user", "--customer", CUSTOMER, "--name", "停止中", "--by", admin.id), message)
    cli_refused(kcli("acquire", "--code", pending.code, "--csr", csr_file(tmp_path)), message)
    cli_refused(kcli("reissue", "--subscriber", admin.id), message)
    cli_refused(kcli("renew", "--serial", admin.record.serial, "--csr", csr_file(tmp_path)), "is held")
    cli_refused(kcli("customer", "suspend", CUSTOMER), "is suspended, not active")
    assert_unchanged(home, before)
    # The refused acquisition did not spend the code: after resume it works.
    ok(kcli("customer", "resume", CUSTOMER))
    assert bank.acquire(pending.code, make_csr()).record.subscriber_id == pending.subscriber_id


def test_terminated_customer_is_closed_for_good(home: Home, bank: Kinko, kcli, tmp_path: Path) -> None:
    admin = admin_holder(bank, subscriber_id="ADM-1")
    user = user_holder(bank, admin.id)
    pending = bank.enroll_user(CUSTOMER, "未取得", admin.id)
    ok(kcli("customer", "terminate", CUSTOMER, "--yes"))
    before = snapshot(home)
    message = f"customer {CUSTOMER}'s service is terminated"
    cli_refused(kcli("enroll", "administrator", "--customer", CUSTOMER, "--name", "解約後"), message)
    cli_refused(kcli("enroll", "user", "--customer", CUSTOMER, "--name", "解約後", "--by", admin.id), message)
    cli_refused(kcli("reissue", "--subscriber", admin.id), message)
    cli_refused(kcli("reissue", "--subscriber", user.id, "--by", admin.id), message)
    cli_refused(kcli("renew", "--serial", admin.record.serial, "--csr", csr_file(tmp_path)), "is revoked")
    cli_refused(kcli("reacquire", "--subscriber", user.id, "--csr", csr_file(tmp_path)), "was revoked")
    cli_refused(kcli("customer", "resume", CUSTOMER), "is terminated, not suspended")
    cli_refused(kcli("customer", "suspend", CUSTOMER), "is terminated, not active")
    cli_refused(kcli("customer", "terminate", CUSTOMER, "--yes"), f"customer {CUSTOMER} was terminated")
    assert_unchanged(home, before)
    # The code handed out before the end is dead: refused like any dead code. Kinko refuses it as a
    # wrong/used/expired code would (the enrollment was closed), so the one allowed record may appear.
    with pytest.raises(PolicyError) as info:
        bank.acquire(pending.code, make_csr())
    assert str(info.value) in (windows.BAD_CODE, message + ": no enrollments or acquisitions")
    assert_unchanged(home, before)  # a voided code, once right: no guess, nothing recorded


def test_officer_cannot_issue_to_a_terminated_customers_subscriber(home: Home, bank: Kinko, kcli, tmp_path) -> None:
    admin = admin_holder(bank, subscriber_id="ADM-1")
    ok(kcli("customer", "terminate", CUSTOMER, "--yes"))
    before = snapshot(home)
    result = kcli(
        "issue", "--csr", csr_file(tmp_path), "--name", ADMIN_NAME, "--org", CUSTOMER_NAME, "--subscriber", admin.id
    )
    assert result.exit_code != 0, (
        f"`kinko issue --subscriber {admin.id}` issued a certificate to a subscriber of terminated customer {CUSTOMER}"
    )
    cli_refused(result, CUSTOMER)
    assert_unchanged(home, before)


# ---------------------------------------------------------------- one active certificate per subscriber


def test_issue_with_subscriber_binds_and_follows_the_one_active_rule(
    home: Home, bank: Kinko, kcli, tmp_path: Path
) -> None:
    enrolled = bank.enroll_administrator(CUSTOMER, ADMIN_NAME, "ADM-1")
    data = ok_json(
        kcli(
            "--json",
            "issue",
            "--csr",
            csr_file(tmp_path),
            "--name",
            ADMIN_NAME,
            "--org",
            CUSTOMER_NAME,
            "--subscriber",
            "ADM-1",
        )
    )
    certificate = x509.load_pem_x509_certificate(data["pem"].encode("ascii"))
    assert certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "ADM-1"
    assert data["subscriber_id"] == "ADM-1"
    issued_event = next(e for e in home.store.ledger_events() if e.serial == data["serial"])
    assert (issued_event.action, issued_event.subscriber, issued_event.customer) == (
        "certificate.issued",
        "ADM-1",
        CUSTOMER,
    )

    before = snapshot(home)
    again = kcli("issue", "--csr", csr_file(tmp_path), "--name", ADMIN_NAME, "--subscriber", "ADM-1")
    cli_refused(again, "one active certificate per subscriber")
    # A second acquisition while a certificate is active: refused, and the code is not spent.
    cli_refused(
        kcli("acquire", "--code", enrolled.code, "--csr", csr_file(tmp_path)),
        f"subscriber ADM-1 already has an active certificate ({data['serial']})",
    )
    assert_unchanged(home, before)
    assert active(home, "ADM-1", bank.clock.now()) == [data["serial"]]


def test_acquire_refuses_a_key_revoked_for_key_compromise(home: Home, bank: Kinko, clock: FixedClock) -> None:
    # "Key fresh": after a lost PC the old key is compromised; the reissued enrollment must not
    # certify it again (the CSR proves possession of that very key, which a thief also has).
    admin = admin_holder(bank)
    user = user_holder(bank, admin.id)
    bank.report_incident(user.id, "lost", received_at=clock.now())
    enrolled = bank.reissue(user.id, admin.id)
    before = snapshot(home)
    try:
        issued = bank.acquire(enrolled.code, make_csr(user.key))
    except KinkoError:
        assert_unchanged(home, before)
    else:
        pytest.fail(
            f"the key revoked for key-compromise in {user.record.serial} was certified again: {issued.record.serial}"
        )


def test_acquire_refuses_a_key_already_in_an_active_certificate(home: Home, bank: Kinko) -> None:
    admin = admin_holder(bank)
    enrolled = bank.enroll_user(CUSTOMER, USER_NAME, admin.id)
    before = snapshot(home)
    refuse(lambda: bank.acquire(enrolled.code, make_csr(admin.key)), Conflict, "generate a new key pair")
    assert_unchanged(home, before)


# ---------------------------------------------------------------- renewal: notAfter - 30 d .. notAfter


def renew_at(bank: Kinko, clock: FixedClock, offset: dt.timedelta) -> tuple[Holder, dt.datetime]:
    holder = admin_holder(bank)
    clock.set(at(holder.record.not_after) + offset)
    return holder, clock.now()


def assert_renewed(home: Home, old: CertificateRecord, new: CertificateRecord, now: dt.datetime) -> None:
    assert new.not_before == to_text(now) and new.not_after == to_text(one_year_later(now))
    assert new.subscriber_id == old.subscriber_id
    previous = home.store.certificate(old.serial)
    assert previous is not None
    assert (previous.status, previous.revocation_reason, previous.revoked_at) == ("revoked", "superseded", to_text(now))
    events = list(home.store.ledger_events())
    renewed = next(e for e in events if e.action == "certificate.renewed" and e.serial == new.serial)
    revoked = next(e for e in events if e.action == "certificate.revoked" and e.serial == old.serial)
    # One transaction: consecutive events, same time, the revocation naming its successor.
    assert revoked.seq == renewed.seq + 1 and revoked.time == renewed.time == to_text(now)
    assert json.loads(revoked.details)["superseded_by"] == new.serial
    assert json.loads(renewed.details)["replaces"] == old.serial
    entry = crl_entry(home, old.serial)
    assert entry is not None and crl_reason(entry) == x509.ReasonFlags.superseded
    assert active(home, old.subscriber_id or "", now) == [new.serial]


def test_renewal_refused_one_second_before_the_window(home: Home, bank: Kinko, clock: FixedClock) -> None:
    holder, _ = renew_at(bank, clock, -dt.timedelta(days=30, seconds=1))
    before = snapshot(home)
    opens = to_text(at(holder.record.not_after) - dt.timedelta(days=30))
    refuse(lambda: bank.renew(holder.record.serial, make_csr()), PolicyError, f"opens at {opens}")
    assert_unchanged(home, before)


def test_renewal_allowed_when_the_window_opens(home: Home, bank: Kinko, clock: FixedClock) -> None:
    holder, now = renew_at(bank, clock, -dt.timedelta(days=30))
    assert_renewed(home, holder.record, bank.renew(holder.record.serial, make_csr()).record, now)


def test_renewal_allowed_at_not_after(home: Home, bank: Kinko, clock: FixedClock) -> None:
    holder, now = renew_at(bank, clock, dt.timedelta(0))
    assert_renewed(home, holder.record, bank.renew(holder.record.serial, make_csr()).record, now)


def test_renewal_refused_one_second_after_not_after(home: Home, bank: Kinko, clock: FixedClock) -> None:
    holder, _ = renew_at(bank, clock, dt.timedelta(seconds=1))
    before = snapshot(home)
    refuse(lambda: bank.renew(holder.record.serial, make_csr()), PolicyError, "renewal is closed, re-acquire it")
    assert_unchanged(home, before)


def test_renewal_with_the_same_key_is_refused(home: Home, kcli, bank: Kinko, clock: FixedClock, tmp_path) -> None:
    holder, _ = renew_at(bank, clock, -dt.timedelta(days=10))
    before = snapshot(home)
    cli_refused(
        kcli("renew", "--serial", holder.record.serial, "--csr", csr_file(tmp_path, holder.key)),
        "renewal needs a new key pair",
    )
    assert_unchanged(home, before)


def test_renewal_through_the_cli(home: Home, kcli, bank: Kinko, clock: FixedClock, tmp_path: Path) -> None:
    holder, now = renew_at(bank, clock, -dt.timedelta(days=12))
    status = ok_json(kcli("--json", "status", holder.record.serial))
    assert status["state"] == "renewal-open" and status["days_left"] == 12
    out = tmp_path / "renewed.pem"
    data = ok_json(kcli("--json", "renew", "--serial", holder.record.serial, "--csr", csr_file(tmp_path), "--out", out))
    new = home.store.certificate(data["serial"])
    assert new is not None and out.read_text(encoding="ascii").startswith("-----BEGIN CERTIFICATE-----")
    assert_renewed(home, holder.record, new, now)
    assert ok(kcli("status", holder.record.serial)).strip() == "revoked (superseded)"


# ---------------------------------------------------------------- re-acquisition: notAfter .. notAfter + 90 d


def test_reacquire_allowed_at_the_end_of_grace(home: Home, bank: Kinko, kcli, clock, tmp_path) -> None:
    holder = admin_holder(bank)
    clock.set(at(holder.record.not_after) + dt.timedelta(days=90))
    status = ok_json(kcli("--json", "status", "--subscriber", holder.id))
    assert status["state"] == "expired-reacquirable" and status["days_left"] == 0
    data = ok_json(kcli("--json", "reacquire", "--subscriber", holder.id, "--csr", csr_file(tmp_path)))
    assert data["subscriber_id"] == holder.id and data["not_before"] == to_text(clock.now())
    assert data["not_after"] == to_text(one_year_later(clock.now()))
    event = next(e for e in home.store.ledger_events() if e.serial == data["serial"])
    assert event.action == "certificate.reacquired" and json.loads(event.details)["previous"] == holder.record.serial
    assert active(home, holder.id, clock.now()) == [data["serial"]]


@pytest.mark.parametrize(
    ("role", "who"),
    [
        ("administrator", "an administrator applies to the bank for a reissue"),
        ("user", "a user asks their administrator for a reissue"),
    ],
)
def test_reacquire_refused_one_second_after_grace(
    home: Home, bank: Kinko, kcli, clock: FixedClock, tmp_path: Path, role: str, who: str
) -> None:
    admin = admin_holder(bank)
    holder = admin if role == "administrator" else user_holder(bank, admin.id)
    clock.set(at(holder.record.not_after) + dt.timedelta(days=90, seconds=1))
    before = snapshot(home)
    line = cli_refused(kcli("reacquire", "--subscriber", holder.id, "--csr", csr_file(tmp_path)), "reissue is needed")
    assert who in line
    refuse(lambda: bank.reacquire(holder.id, make_csr()), PolicyError, who)
    assert_unchanged(home, before)
    status = ok_json(kcli("--json", "status", "--subscriber", holder.id))
    assert status["state"] == "reissue-required" and who in status["reissue"]


def test_reacquire_of_a_revoked_certificate_is_refused(home: Home, bank: Kinko, clock: FixedClock) -> None:
    holder = admin_holder(bank)
    bank.revoke(holder.record.serial, "key-compromise")
    clock.set(at(holder.record.not_after) + dt.timedelta(days=1))
    before = snapshot(home)
    refuse(lambda: bank.reacquire(holder.id, make_csr()), PolicyError, "a revoked certificate cannot be re-acquired")
    assert_unchanged(home, before)


def test_reacquire_before_expiry_is_refused(home: Home, bank: Kinko, clock: FixedClock) -> None:
    holder = admin_holder(bank)
    before = snapshot(home)
    # Early in its life the advice names the day renewal opens; inside the window, now.
    opens = to_text(at(holder.record.not_after) - dt.timedelta(days=30))
    refuse(lambda: bank.reacquire(holder.id, make_csr()), PolicyError, f"renew it from {opens} (kinko renew)")
    clock.set(at(holder.record.not_after) - dt.timedelta(seconds=1))
    refuse(lambda: bank.reacquire(holder.id, make_csr()), PolicyError, "only for an expired one: renew it now (kinko")
    assert_unchanged(home, before)


def test_reacquire_at_not_after_keeps_one_active_certificate(home: Home, bank: Kinko, clock: FixedClock) -> None:
    # At notAfter the old certificate is still valid (X.509 validity is inclusive; `status`
    # says renewal-open): re-acquiring must not leave the subscriber with two active ones.
    holder = admin_holder(bank)
    clock.set(at(holder.record.not_after))
    try:
        bank.reacquire(holder.id, make_csr())
    except PolicyError:
        return
    serials = active(home, holder.id, clock.now())
    assert len(serials) == 1, f"reacquire at notAfter left subscriber {holder.id} two active certificates: {serials}"


# ---------------------------------------------------------------- reissue


def test_administrator_reissue_by_the_bank_supersedes_on_acquisition(
    home: Home, bank: Kinko, kcli, clock: FixedClock
) -> None:
    admin = admin_holder(bank)
    first = bank.enroll_administrator(CUSTOMER, "別の管理者")  # an unrelated open code stays open
    before = snapshot(home)
    cli_refused(kcli("reissue", "--subscriber", admin.id, "--by", admin.id), "without --by")
    assert_unchanged(home, before)
    clock.advance(days=40)
    data = ok_json(kcli("--json", "reissue", "--subscriber", admin.id))
    assert data["kind"] == "reissue" and data["expires_at"] == to_text(clock.now() + dt.timedelta(days=80))
    # Until the new code is used the current certificate keeps working.
    assert home.store.certificate(admin.record.serial).status == "valid"
    assert ok_json(kcli("--json", "status", "--subscriber", admin.id))["state"] == "valid"
    clock.advance(days=2)
    issued = bank.acquire(data["code"], make_csr())
    old = home.store.certificate(admin.record.serial)
    assert old is not None and (old.status, old.revocation_reason) == ("revoked", "superseded")
    assert active(home, admin.id, clock.now()) == [issued.record.serial]
    actions = [e.action for e in home.store.ledger_events() if e.subscriber == admin.id][-4:]
    assert actions == ["enrollment.created", "enrollment.redeemed", "certificate.reissued", "certificate.revoked"]
    assert bank.acquire(first.code, make_csr()).record.status == "valid"


def test_user_reissue_is_made_by_their_administrator(home: Home, bank: Kinko, kcli) -> None:
    admin = admin_holder(bank, subscriber_id="ADM-1")
    other = admin_holder(bank, OTHER, "ADM-OTHER")
    user = user_holder(bank, admin.id)
    old_code = bank.reissue(user.id, admin.id).code
    before = snapshot(home)
    cli_refused(kcli("reissue", "--subscriber", user.id), "give --by ADMIN")
    cli_refused(kcli("reissue", "--subscriber", user.id, "--by", other.id), "belongs to another customer")
    cli_refused(kcli("reissue", "--subscriber", user.id, "--by", user.id), "is not an administrator")
    cli_refused(kcli("reissue", "--subscriber", "NO-SUCH-ONE"), "no subscriber NO-SUCH-ONE")
    assert_unchanged(home, before)
    data = ok_json(kcli("--json", "reissue", "--subscriber", user.id, "--by", admin.id))
    assert data["kind"] == "reissue" and data["role"] == "user"
    # The new enrollment replaces the earlier open one.
    refuse(lambda: bank.acquire(old_code, make_csr()), PolicyError, windows.BAD_CODE)
    assert bank.acquire(data["code"], make_csr()).record.subscriber_id == user.id


# ---------------------------------------------------------------- incidents


def test_incident_revokes_for_key_compromise_and_the_ledger_shows_the_procedure(
    home: Home, bank: Kinko, kcli, clock: FixedClock
) -> None:
    admin = admin_holder(bank)
    user = user_holder(bank, admin.id)
    clock.advance(days=100)
    received = (clock.now() - dt.timedelta(hours=3)).astimezone(JST)
    suspected = (clock.now() - dt.timedelta(days=2)).astimezone(JST)
    data = ok_json(
        kcli(
            "--json",
            "incident",
            "report",
            "--subscriber",
            user.id,
            "--kind",
            "lost",
            "--received-at",
            received.isoformat(),
            "--suspected-since",
            suspected.isoformat(),
            "--note",
            "ノートPCを電車に置き忘れ",
        )
    )
    now = to_text(clock.now())
    assert data["serial"] == user.record.serial and data["kind"] == "lost" and data["reason"] == "key-compromise"
    assert data["received_at"] == to_text(received) and data["suspected_since"] == to_text(suspected)
    assert data["officer"] == current_login() and data["revoked_at"] == now
    record = home.store.certificate(user.record.serial)
    assert record is not None
    assert (record.status, record.revocation_reason, record.revoked_at) == ("revoked", "key-compromise", now)
    assert record.invalidity_date == to_text(suspected) and record.reported_at == to_text(received)
    entry = crl_entry(home, user.record.serial)
    assert entry is not None and crl_reason(entry) == x509.ReasonFlags.key_compromise
    assert entry.revocation_date_utc == clock.now()
    assert entry.extensions.get_extension_for_class(x509.InvalidityDate).value.invalidity_date_utc == suspected

    events = [e for e in home.store.ledger_events() if e.subscriber == user.id][-2:]
    assert [e.action for e in events] == ["certificate.revoked", "incident.recorded"]
    assert all(e.actor == current_login() and e.time == now and e.customer == CUSTOMER for e in events)
    details = json.loads(events[1].details)
    assert details["received_at"] == to_text(received) and details["suspected_since"] == to_text(suspected)
    assert details["revoked_at"] == now and details["kind"] == "lost"
    revoked = json.loads(events[0].details)
    assert revoked["invalidity_date"] == to_text(suspected) and revoked["reported_at"] == to_text(received)

    listed = ok_json(kcli("--json", "incident", "list"))
    assert [(i["subscriber_id"], i["kind"], i["officer"], i["serial"]) for i in listed] == [
        (user.id, "lost", current_login(), user.record.serial)
    ]
    human = ok(kcli("incident", "list"))
    assert user.id in human and current_login() in human
    assert ok(kcli("status", "--subscriber", user.id)).strip() == "revoked (key-compromise)"
    assert home.store.certificate(admin.record.serial).status == "valid"
    assert home.store.customer(CUSTOMER).status == "active"


@pytest.mark.parametrize("kind", ["disposed-without-deletion", "stolen", "compromised"])
def test_every_incident_kind_revokes_for_key_compromise(home: Home, bank: Kinko, clock, kind: str) -> None:
    admin = admin_holder(bank)
    clock.advance(days=2)  # a compromise before the certificate's notBefore is refused
    incident = bank.report_incident(
        admin.id, kind, received_at=clock.now(), suspected_since=clock.now() - dt.timedelta(days=1)
    )
    assert incident.record.kind == kind and incident.record.reason == "key-compromise"
    entry = crl_entry(home, admin.record.serial)
    assert entry is not None and crl_reason(entry) == x509.ReasonFlags.key_compromise


def test_a_lost_pc_voids_the_codes_sent_before_it_unless_the_officer_keeps_them(
    home: Home, bank: Kinko, kcli, clock: FixedClock
) -> None:
    """A reissue code made before a lost-PC report once still redeemed a certificate after it: the
    letter may be in the same bag as the PC. The incident voids it (recorded, replayed)."""
    from kinko.ca.audit import verify_database

    admin = admin_holder(bank, subscriber_id="ADM-1")
    clock.advance(days=2)
    early = bank.reissue("ADM-1")

    def report(kind: str, *extra: str) -> dict[str, Any]:
        args = ("--subscriber", "ADM-1", "--kind", kind, "--received-at", to_text(clock.now()) or "", *extra)
        return ok_json(kcli("--json", "incident", "report", *args))

    data = report("lost")
    assert data["voided_enrollments"] == 1
    event = [e for e in home.store.ledger_events() if e.action == "incident.recorded"][-1]
    assert json.loads(event.details)["voided_enrollments"] == 1
    refuse(lambda: bank.acquire(early.code, make_csr()), PolicyError, windows.BAD_CODE)
    assert home.store.certificate(admin.record.serial).status == "revoked"
    assert verify_database(home).ok  # the replay closes the code as the incident did

    # The officer may say otherwise: the holder has the new code in hand, on another PC.
    later = bank.reissue("ADM-1")
    fresh = bank.acquire(later.code, make_csr()).record
    kept = bank.reissue("ADM-1")
    clock.advance(minutes=5)
    data = report("stolen", "--keep-enrollments")
    assert data["voided_enrollments"] == 0
    assert home.store.certificate(fresh.serial).status == "revoked"
    assert bank.acquire(kept.code, make_csr()).record.subscriber_id == "ADM-1"
    assert verify_database(home).ok


def test_incident_can_suspend_the_customer(home: Home, bank: Kinko, kcli, clock: FixedClock) -> None:
    admin = admin_holder(bank)
    user = user_holder(bank, admin.id)
    result = kcli(
        "incident",
        "report",
        "--subscriber",
        user.id,
        "--kind",
        "stolen",
        "--received-at",
        to_text(clock.now()),
        "--suspend-customer",
    )
    ok(result)
    assert home.store.customer(CUSTOMER).status == "suspended"
    assert home.store.certificate(user.record.serial).revocation_reason == "key-compromise"
    held = home.store.certificate(admin.record.serial)
    assert held is not None and held.status == "held" and held.hold_origin == f"suspension:{CUSTOMER}"
    ok(kcli("customer", "resume", CUSTOMER))
    assert home.store.certificate(admin.record.serial).status == "valid"
    assert home.store.certificate(user.record.serial).status == "revoked"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--kind", "misplaced", "--received-at", "{now}"], "unknown incident kind 'misplaced'"),
        (["--kind", "lost", "--received-at", "{future}"], "received-at"),  # the option's own name
        (["--kind", "lost", "--received-at", "{past}", "--suspected-since", "{now}"], "after the report was received"),
        (["--kind", "lost", "--received-at", "2026-01-01T00:00:00"], "has no time zone"),
        (["--kind", "lost", "--received-at", "{now}", "--reason", "superseded"], "revoked for key-compromise"),
    ],
)
def test_bad_incident_reports_change_nothing(home: Home, bank: Kinko, kcli, clock, args, error) -> None:
    admin = admin_holder(bank)
    values = {
        "now": to_text(clock.now()),
        "past": to_text(clock.now() - dt.timedelta(hours=1)),
        "future": to_text(clock.now() + dt.timedelta(minutes=5)),
    }
    before = snapshot(home)
    cli_refused(kcli("incident", "report", "--subscriber", admin.id, *(a.format(**values) for a in args)), error)
    assert_unchanged(home, before)


# ---------------------------------------------------------------- suspension, resumption, termination


def test_suspend_holds_and_resume_releases_exactly_the_suspensions_holds(
    home: Home, bank: Kinko, kcli, clock: FixedClock
) -> None:
    admin = admin_holder(bank)
    users = [user_holder(bank, admin.id, name=f"利用者 {i}") for i in range(3)]
    other = admin_holder(bank, OTHER)
    bank.hold(users[0].record.serial, note="officer's own hold before the suspension")
    clock.advance(hours=1)
    data = ok_json(kcli("--json", "customer", "suspend", CUSTOMER))
    assert sorted(data["certificates"]) == sorted([admin.record.serial, users[1].record.serial, users[2].record.serial])
    assert home.store.customer(CUSTOMER).status == "suspended"
    for holder in (admin, users[1], users[2]):
        entry = crl_entry(home, holder.record.serial)
        assert entry is not None and crl_reason(entry) == x509.ReasonFlags.certificate_hold
        assert ok(kcli("status", "--subscriber", holder.id)).strip() == "on-hold"
    assert home.store.certificate(other.record.serial).status == "valid"
    # During the suspension one holder reports a stolen PC: that certificate is revoked for good.
    bank.report_incident(users[2].id, "stolen", received_at=clock.now())
    clock.advance(days=3)
    data = ok_json(kcli("--json", "customer", "resume", CUSTOMER))
    assert sorted(data["certificates"]) == sorted([admin.record.serial, users[1].record.serial])
    assert home.store.customer(CUSTOMER).status == "active"
    states = {h.id: home.store.certificate(h.record.serial) for h in (admin, *users)}
    assert states[admin.id].status == "valid" and states[users[1].id].status == "valid"
    assert states[users[0].id].status == "held" and states[users[0].id].hold_origin == "officer"
    assert states[users[2].id].status == "revoked"
    assert crl_entry(home, admin.record.serial) is None
    assert crl_reason(crl_entry(home, users[0].record.serial)) == x509.ReasonFlags.certificate_hold
    released = [e for e in home.store.ledger_events() if e.action == "certificate.released"]
    assert sorted(e.serial for e in released) == sorted([admin.record.serial, users[1].record.serial])


def test_terminate_now_revokes_everything_for_cessation_of_operation(
    home: Home, bank: Kinko, kcli, clock: FixedClock
) -> None:
    admin = admin_holder(bank)
    user = user_holder(bank, admin.id)
    held = user_holder(bank, admin.id, name="保留中")
    other = admin_holder(bank, OTHER)
    bank.hold(held.record.serial)
    pending = bank.enroll_user(CUSTOMER, "未取得", admin.id)
    clock.advance(days=5)
    data = ok_json(kcli("--json", "customer", "terminate", CUSTOMER, "--yes"))
    assert data["status"] == "terminated"
    assert sorted(data["certificates"]) == sorted(h.record.serial for h in (admin, user, held))
    for holder in (admin, user, held):
        record = home.store.certificate(holder.record.serial)
        assert record is not None and (record.status, record.revocation_reason, record.revoked_at) == (
            "revoked",
            "cessation-of-operation",
            to_text(clock.now()),
        )
        assert crl_reason(crl_entry(home, holder.record.serial)) == x509.ReasonFlags.cessation_of_operation
        assert ok(kcli("status", "--subscriber", holder.id)).strip() == "revoked (cessation-of-operation)"
    assert home.store.certificate(other.record.serial).status == "valid"
    customer = home.store.customer(CUSTOMER)
    assert customer is not None and customer.status == "terminated"
    assert all(e.closed_at == to_text(clock.now()) for e in home.store.enrollments(pending.subscriber_id))


def test_termination_is_confirmed_and_a_scheduled_date_moves_only_when_asked(
    home: Home, bank: Kinko, kcli, clock: FixedClock
) -> None:
    admin = admin_holder(bank)
    before = snapshot(home)
    # Off a terminal, without --yes: refused, nothing done.
    cli_refused(kcli("customer", "terminate", CUSTOMER), "confirm with --yes")
    assert_unchanged(home, before)

    effective = (clock.now() + dt.timedelta(days=10)).astimezone(JST)
    ok(kcli("customer", "terminate", CUSTOMER, "--effective", effective.isoformat(), "--yes"))
    shown = ok(kcli("customer", "show", CUSTOMER))
    assert f"active, terminating at {people_time(effective)}" in shown
    assert ok_json(kcli("--json", "customer", "show", CUSTOMER))["status"] == "active"  # the JSON keeps its values

    # Running it again without a date once moved the end to now, silently.
    before = snapshot(home)
    cli_refused(
        kcli("customer", "terminate", CUSTOMER, "--yes"),
        f"termination is scheduled for {people_time(effective)}: "
        f"to end it at {people_time(clock.now())} instead, add --reschedule",
    )
    cli_refused(
        kcli("customer", "terminate", CUSTOMER, "--effective", effective.isoformat(), "--yes"),
        f"already scheduled for {people_time(effective)}",
    )
    assert_unchanged(home, before)
    assert home.store.certificate(admin.record.serial).status == "valid"
    data = ok_json(kcli("--json", "customer", "terminate", CUSTOMER, "--reschedule", "--yes"))
    assert data["status"] == "terminated" and data["certificates"] == [admin.record.serial]


def test_termination_asks_on_a_terminal(home: Home, bank: Kinko, tmp_path: Path) -> None:
    """On a terminal `customer terminate` asks first; "n" does nothing, "y" goes on."""
    import os
    import pty
    import subprocess
    import sys

    admin_holder(bank)
    home.store.close()

    def run(answer: bytes) -> tuple[int, bytes]:
        leader, follower = pty.openpty()
        process = subprocess.Popen(
            [sys.executable, "-m", "kinko.cli", "--home", str(home.path), "customer", "terminate", CUSTOMER],
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=follower,
        )
        os.close(follower)
        seen = b""
        while b"[y/N]" not in seen:
            chunk = os.read(leader, 1024)
            assert chunk, seen
            seen += chunk
        os.write(leader, answer + b"\n")
        process.wait(timeout=60)
        try:
            while chunk := os.read(leader, 1024):
                seen += chunk
        except OSError:
            pass
        os.close(leader)
        return process.returncode, seen

    code, seen = run(b"n")
    assert code == 1 and b"Terminate customer " + CUSTOMER.encode() in seen and b"not confirmed" in seen
    assert Home(home.path).store.customer(CUSTOMER).status == "active"
    code, seen = run(b"y")
    assert code == 0, seen
    assert Home(home.path).store.customer(CUSTOMER).status == "terminated"


@pytest.mark.parametrize("upkeep", [("crl", "publish"), ("ocsp", "refresh")])
def test_future_termination_is_applied_by_the_next_upkeep(
    home: Home, bank: Kinko, kcli, clock: FixedClock, upkeep: tuple[str, str]
) -> None:
    admin = admin_holder(bank)
    user = user_holder(bank, admin.id)
    effective = (clock.now() + dt.timedelta(days=10)).astimezone(JST)
    data = ok_json(kcli("--json", "customer", "terminate", CUSTOMER, "--effective", effective.isoformat(), "--yes"))
    assert data["terminate_at"] == to_text(effective) and data["certificates"] == []
    customer = home.store.customer(CUSTOMER)
    assert customer is not None and customer.terminate_at == to_text(effective)
    assert home.store.certificate(admin.record.serial).status == "valid"
    # No new certificates once the end is scheduled.
    before = snapshot(home)
    refuse(lambda: bank.enroll_user(CUSTOMER, "新人", admin.id), PolicyError, f"service ends at {to_text(effective)}")
    assert_unchanged(home, before)

    clock.set(effective - dt.timedelta(seconds=1))
    ok(kcli(*upkeep))
    assert home.store.certificate(admin.record.serial).status == "valid"
    assert home.store.customer(CUSTOMER).status == "active"

    clock.set(effective + dt.timedelta(hours=2))
    ok(kcli(*upkeep))
    for holder in (admin, user):
        record = home.store.certificate(holder.record.serial)
        assert record is not None
        assert (record.status, record.revocation_reason) == ("revoked", "cessation-of-operation")
        assert record.revoked_at == to_text(effective)
        entry = crl_entry(home, holder.record.serial)
        assert entry is not None and entry.revocation_date_utc == effective.astimezone(dt.UTC)
        assert crl_reason(entry) == x509.ReasonFlags.cessation_of_operation
    assert home.store.customer(CUSTOMER).status == "terminated"
    ended = [e for e in home.store.ledger_events() if e.action == "customer.terminated"]
    assert len(ended) == 1 and json.loads(ended[0].details)["effective"] == to_text(effective)


# ---------------------------------------------------------------- status and reports


def test_status_walks_through_every_state(home: Home, bank: Kinko, kcli, clock: FixedClock) -> None:
    enrolled = bank.enroll_administrator(CUSTOMER, ADMIN_NAME, "ADM-1")

    def state(*args: str) -> tuple[str, dict[str, Any]]:
        return ok(kcli("status", *args)).strip(), ok_json(kcli("--json", "status", *args))

    human, data = state("--subscriber", "ADM-1")
    assert human == "pending" and data["state"] == "pending"
    assert data["enrollment_expires_at"] == enrolled.expires_at and data["role"] == "administrator"

    record = bank.acquire(enrolled.code, make_csr()).record
    not_after = at(record.not_after)
    days = (not_after - clock.now()).days + 1  # a year minus one second, rounded up
    human, data = state("--subscriber", "ADM-1")
    assert human == f"valid ({days} days left)" and data["serial"] == record.serial
    assert data["not_after"] == record.not_after
    assert data["opens_at"] == to_text(not_after - dt.timedelta(days=30)) and data["closes_at"] == record.not_after
    by_serial, by_serial_data = state(record.serial)
    assert by_serial == human and by_serial_data["subscriber"] == "ADM-1" and by_serial_data["days_left"] == days

    clock.set(not_after - dt.timedelta(days=30, seconds=1))
    assert state("--subscriber", "ADM-1")[1]["state"] == "valid"
    clock.set(not_after - dt.timedelta(days=30))
    human, data = state("--subscriber", "ADM-1")
    assert human == "renewal-open (30 days left)" and data["days_left"] == 30
    clock.set(not_after)
    assert state("--subscriber", "ADM-1")[1]["state"] == "renewal-open"

    clock.set(not_after + dt.timedelta(seconds=1))
    human, data = state("--subscriber", "ADM-1")
    assert human == "expired-reacquirable (90 days left)" and data["days_left"] == 90
    assert data["opens_at"] == record.not_after
    assert data["closes_at"] == to_text(not_after + dt.timedelta(days=90))
    clock.set(not_after + dt.timedelta(days=10))
    assert state("--subscriber", "ADM-1")[0] == "expired-reacquirable (80 days left)"

    clock.set(not_after + dt.timedelta(days=90, seconds=1))
    human, data = state("--subscriber", "ADM-1")
    assert human == "reissue-required" and "applies to the bank" in data["reissue"]
    assert state(record.serial)[1]["state"] == "reissue-required"

    reissued = bank.reissue("ADM-1")
    human, data = state("--subscriber", "ADM-1")
    assert human == "pending" and data["enrollment_expires_at"] == reissued.expires_at

    current = bank.acquire(reissued.code, make_csr()).record
    bank.hold(current.serial)
    assert state("--subscriber", "ADM-1")[0] == "on-hold"
    assert state(current.serial)[0] == "on-hold"
    bank.revoke(current.serial, "privilege-withdrawn")
    human, data = state("--subscriber", "ADM-1")
    assert human == "revoked (privilege-withdrawn)" and data["reason"] == "privilege-withdrawn"

    # An open enrollment (a reissue's code) does not hide why the certificate does not work.
    again = bank.reissue("ADM-1")
    human, data = state("--subscriber", "ADM-1")
    assert human.startswith("revoked (privilege-withdrawn)") and data["state"] == "revoked"
    assert data["reason"] == "privilege-withdrawn" and data["enrollment_expires_at"] == again.expires_at
    held = bank.acquire(again.code, make_csr()).record
    bank.hold(held.serial)
    bank.reissue("ADM-1")
    human, data = state("--subscriber", "ADM-1")
    assert human == "on-hold" and data["state"] == "on-hold" and data["enrollment_expires_at"] is not None

    before = snapshot(home)
    assert kcli("status").exit_code == 2
    cli_refused(kcli("status", "--subscriber", "NO-SUCH-ONE"), "no subscriber NO-SUCH-ONE")
    assert_unchanged(home, before)


def test_report_expiring_within_30_days(home: Home, bank: Kinko, kcli, clock: FixedClock) -> None:
    soon = admin_holder(bank, subscriber_id="ADM-1")
    clock.advance(days=10)
    later = admin_holder(bank, OTHER, "ADM-2")
    revoked = user_holder(bank, soon.id)
    bank.revoke(revoked.record.serial, "superseded")
    clock.set(at(soon.record.not_after) - dt.timedelta(days=30))
    rows = ok_json(kcli("--json", "report", "expiring", "--within", "30d"))
    assert rows == [
        {
            "customer": CUSTOMER,
            "subscriber": "ADM-1",
            "role": "administrator",
            "name": ADMIN_NAME,
            "serial": soon.record.serial,
            "not_after": soon.record.not_after,
            "days_left": 30,
        }
    ]
    parsed = list(csv.DictReader(io.StringIO(ok(kcli("report", "expiring", "--within", "30d", "--csv")))))
    assert parsed == [{k: str(v) for k, v in rows[0].items()}]
    assert "ADM-1" in ok(kcli("report", "expiring", "--within", "30d"))
    clock.set(at(later.record.not_after) - dt.timedelta(days=30))
    rows = ok_json(kcli("--json", "report", "expiring", "--within", "30d"))
    assert [r["subscriber"] for r in rows] == ["ADM-1", "ADM-2"]
    assert [r["days_left"] for r in rows] == [20, 30]


def test_report_enrollments_expiring_within_14_days(home: Home, bank: Kinko, kcli, clock: FixedClock) -> None:
    first = bank.enroll_administrator(CUSTOMER, ADMIN_NAME, "ADM-1")
    clock.advance(days=5)
    bank.enroll_administrator(OTHER, "後日 登録", "ADM-2")
    used = bank.enroll_administrator(OTHER, "取得 済み", "ADM-3")
    bank.acquire(used.code, make_csr())
    clock.set(at(first.expires_at) - dt.timedelta(days=14, seconds=1))
    assert ok_json(kcli("--json", "report", "enrollments", "--within", "14d")) == []
    clock.set(at(first.expires_at) - dt.timedelta(days=14))
    rows = ok_json(kcli("--json", "report", "enrollments", "--within", "14d"))
    assert rows == [
        {
            "customer": CUSTOMER,
            "subscriber": "ADM-1",
            "role": "administrator",
            "name": ADMIN_NAME,
            "kind": "new",
            "expires_at": first.expires_at,
            "days_left": 14,
        }
    ]
    parsed = list(csv.DictReader(io.StringIO(ok(kcli("report", "enrollments", "--within", "14d", "--csv")))))
    assert parsed == [{k: str(v) for k, v in rows[0].items()}]
    # For Excel: the same CSV behind a UTF-8 byte order mark, or the Japanese names are garbled.
    excel = ok(kcli("report", "enrollments", "--within", "14d", "--excel"))
    assert excel.startswith("\ufeff") and list(csv.DictReader(io.StringIO(excel[1:]))) == parsed
    assert excel.encode("utf-8").startswith(b"\xef\xbb\xbf")
    clock.set(at(first.expires_at) + dt.timedelta(seconds=1))
    rows = ok_json(kcli("--json", "report", "enrollments", "--within", "14d"))
    assert [r["subscriber"] for r in rows] == ["ADM-2"]


# ---------------------------------------------------------------- a year in one customer's life


def test_the_ledger_tells_a_year_of_one_customers_story(
    home: Home, kcli, clock: FixedClock, tmp_path: Path, kinko: Kinko
) -> None:
    start = clock.now()
    ok(kcli("customer", "add", CUSTOMER, "--name", CUSTOMER_NAME))
    ok(kcli("customer", "add", OTHER, "--name", OTHER_NAME))  # a neighbour whose events must not mix in
    admin = ok_json(kcli("--json", "enroll", "administrator", "--customer", CUSTOMER, "--name", ADMIN_NAME))
    clock.advance(days=2)
    admin_cert = ok_json(kcli("--json", "acquire", "--code", admin["code"], "--csr", csr_file(tmp_path)))
    clock.advance(days=1)
    users = [
        ok_json(kcli("--json", "enroll", "user", "--customer", CUSTOMER, "--name", n, "--by", admin["subscriber_id"]))
        for n in (USER_NAME, "鈴木 一郎")
    ]
    clock.advance(days=4)
    user_certs = [ok_json(kcli("--json", "acquire", "--code", u["code"], "--csr", csr_file(tmp_path))) for u in users]
    kinko.enroll_administrator(OTHER, "隣の 管理者")

    # ~11 months later the administrator renews inside the window.
    clock.set(at(admin_cert["not_after"]) - dt.timedelta(days=28))
    assert ok(kcli("status", "--subscriber", admin["subscriber_id"])).strip() == "renewal-open (28 days left)"
    renewed = ok_json(kcli("--json", "renew", "--serial", admin_cert["serial"], "--csr", csr_file(tmp_path)))

    # The first user's PC is lost; the administrator has it reissued and the user acquires anew.
    clock.advance(days=1)
    lost = users[0]["subscriber_id"]
    ok(
        kcli(
            "incident",
            "report",
            "--subscriber",
            lost,
            "--kind",
            "lost",
            "--received-at",
            to_text(clock.now() - dt.timedelta(hours=2)),
            "--suspected-since",
            to_text(clock.now() - dt.timedelta(days=1)),
        )
    )
    clock.advance(hours=4)
    reissue = ok_json(kcli("--json", "reissue", "--subscriber", lost, "--by", admin["subscriber_id"]))
    clock.advance(days=1)
    again = ok_json(kcli("--json", "acquire", "--code", reissue["code"], "--csr", csr_file(tmp_path)))

    # Service suspended for unpaid fees, then resumed; finally terminated while every
    # certificate is still unexpired (the users' first ones end five days after the administrator's).
    clock.advance(days=2)
    ok(kcli("customer", "suspend", CUSTOMER))
    clock.advance(days=3)
    ok(kcli("customer", "resume", CUSTOMER))
    clock.advance(days=5)
    ok(kcli("customer", "terminate", CUSTOMER, "--yes"))
    assert clock.now() - start > dt.timedelta(days=350)
    assert clock.now() < at(user_certs[1]["not_after"])

    ids = {admin["subscriber_id"], *(u["subscriber_id"] for u in users)}
    events = list(home.store.ledger_events())
    assert verify_chain(events) is None
    story = [e for e in events if e.customer == CUSTOMER]
    assert story == [e for e in events if e.customer == CUSTOMER or e.subscriber in ids]
    assert [e.action for e in story] == [
        "customer.added",
        "subscriber.added",  # administrator
        "enrollment.created",
        "enrollment.redeemed",
        "certificate.issued",
        "subscriber.added",  # two users, by the administrator
        "enrollment.created",
        "subscriber.added",
        "enrollment.created",
        "enrollment.redeemed",
        "certificate.issued",
        "enrollment.redeemed",
        "certificate.issued",
        "certificate.renewed",  # the administrator, in the renewal window
        "certificate.revoked",  # ...superseding the old certificate
        "certificate.revoked",  # the lost PC
        "incident.recorded",
        "enrollment.created",  # the reissue
        "enrollment.redeemed",
        "certificate.reissued",
        "certificate.held",  # suspension
        "certificate.held",
        "certificate.held",
        "customer.suspended",
        "certificate.released",  # resumption
        "certificate.released",
        "certificate.released",
        "customer.resumed",
        "certificate.revoked",  # termination
        "certificate.revoked",
        "certificate.revoked",
        "customer.terminated",
    ]
    assert {e.actor for e in story} == {current_login()}
    assert [e.time for e in story] == sorted(e.time for e in story)
    by_action = [(e.action, e.subscriber, e.serial) for e in story]
    assert by_action[3:5] == [
        ("enrollment.redeemed", admin["subscriber_id"], admin_cert["serial"]),
        ("certificate.issued", admin["subscriber_id"], admin_cert["serial"]),
    ]
    assert by_action[13:15] == [
        ("certificate.renewed", admin["subscriber_id"], renewed["serial"]),
        ("certificate.revoked", admin["subscriber_id"], admin_cert["serial"]),
    ]
    assert by_action[15] == ("certificate.revoked", lost, user_certs[0]["serial"])
    assert by_action[19] == ("certificate.reissued", lost, again["serial"])
    finals = {renewed["serial"], again["serial"], user_certs[1]["serial"]}
    assert {s for a, _, s in by_action[20:23]} == finals
    assert {s for a, _, s in by_action[24:27]} == finals
    assert {s for a, _, s in by_action[28:31]} == finals
    reasons = [json.loads(e.details)["reason"] for e in story if e.action == "certificate.revoked"]
    assert reasons == ["superseded", "key-compromise", *["cessation-of-operation"] * 3]
