"""The ledger is the truth: tables edited behind Kinko's back are found by replaying it.

Each attack is done as someone with write access to kinko.db would do it: straight in SQLite,
with the append-only triggers dropped and the ledger left as it was. `kinko ledger verify`
must exit 1 and name the table, the key and the event the row contradicts.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from kinko import cli
from kinko.ca import enrollments
from kinko.ca.clock import FixedClock
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from kinko.ca.store.reads import ALL_TABLES
from kinko.ocsp.source import DatabaseSource
from tests.conftest import make_csr, raw_database, raw_execute, table_rows, unguard

# Every table Kinko keeps, compared before and after a verification.
TABLES = (*ALL_TABLES, "change_counter", "meta")

OTHER_LOGIN = "daemon"  # an account every Debian system has


def sql(home: Home, *statements: str, params: tuple[Any, ...] = ()) -> None:
    """Runs statements on the database as an attacker: the append-only triggers dropped first."""
    conn = raw_database(home)
    try:
        conn.executescript(unguard(home))
        for statement in statements:
            conn.execute(statement, params if "?" in statement else ())
        conn.commit()
    finally:
        conn.close()


def scalar(home: Home, query: str, params: tuple[Any, ...] = ()) -> Any:
    rows = raw_execute(home, query, params)
    return rows[0][0] if rows else None


def event_seq(home: Home, action: str, serial: str = "") -> int:
    where = "action = ?" + (" AND serial = ?" if serial else "")
    params = (action, serial) if serial else (action,)
    return int(scalar(home, f"SELECT MAX(seq) FROM ledger WHERE {where}", params))  # noqa: S608


@pytest.fixture
def history(home: Home, kinko: Kinko, clock: FixedClock) -> dict[str, Any]:
    """A CA with a valid, a revoked and a held certificate, a customer whose administrator
    acquired, an open enrollment, a second officer and published CRLs."""
    valid = kinko.issue(make_csr(), name="山田 太郎").record.serial
    clock.advance(minutes=1)
    revoked = kinko.issue(make_csr(), name="佐藤 花子").record.serial
    good_response = scalar(home, "SELECT der FROM ocsp_responses WHERE serial = ?", (revoked,))
    kinko.revoke(revoked, "key-compromise")
    held = kinko.issue(make_csr(), name="鈴木 一郎").record.serial
    kinko.hold(held)
    kinko.add_customer("C001", "株式会社テスト")
    admin = kinko.enroll_administrator("C001", "管理者 一郎", "ADM1")
    clock.advance(minutes=1)
    acquired = kinko.acquire(admin.code, make_csr()).record.serial
    kinko.enroll_administrator("C001", "管理者 二郎", "ADM2")  # left open
    from kinko.ca.officers import add_officer

    add_officer(home, OTHER_LOGIN, "auditor", kinko.actor, kinko.session.text(clock.now()))
    kinko.publish_crl()
    return {
        "valid": valid,
        "revoked": revoked,
        "held": held,
        "acquired": acquired,
        "good_response": good_response,
    }


def verify(run_cli: Callable[..., Any], home: Home) -> Any:
    return run_cli("--home", home.path, "ledger", "verify")


def test_an_untouched_ledger_replays_to_the_tables(run_cli, home: Home, history: dict[str, Any]) -> None:
    result = verify(run_cli, home)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ledger OK:")


def refused(result: Any, expected: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("kinko: error: seq "), result.stderr
    assert expected in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def test_a_revoked_certificate_made_valid_again(run_cli, home: Home, history: dict[str, Any]) -> None:
    serial = history["revoked"]
    sql(
        home,
        "UPDATE certificates SET status = 'valid', revoked_at = NULL, revocation_reason = NULL WHERE serial = ?",
        params=(serial,),
    )
    seq = event_seq(home, "certificate.revoked", serial)
    refused(
        verify(run_cli, home),
        f"certificates {serial}: status is 'valid', but seq {seq} (certificate.revoked) says 'revoked'",
    )


def test_an_earlier_good_response_written_back(run_cli, home: Home, history: dict[str, Any]) -> None:
    serial = history["revoked"]
    sql(home, "UPDATE ocsp_responses SET der = ? WHERE serial = ?", params=(history["good_response"], serial))
    seq = event_seq(home, "certificate.revoked", serial)
    refused(
        verify(run_cli, home),
        f"ocsp_responses {serial}/sha1: the stored response says good, "
        f"but seq {seq} (certificate.revoked) says revoked",
    )


def test_an_auditor_made_admin(run_cli, home: Home, history: dict[str, Any]) -> None:
    sql(home, f"UPDATE officers SET role = 'admin' WHERE login = '{OTHER_LOGIN}'")  # noqa: S608
    seq = event_seq(home, "officer.added")
    refused(
        verify(run_cli, home), f"officers {OTHER_LOGIN}: role is 'admin', but seq {seq} (officer.added) says 'auditor'"
    )


def test_a_redeemed_enrollment_made_redeemable_again(run_cli, home: Home, history: dict[str, Any]) -> None:
    enrollment = scalar(home, "SELECT id FROM enrollments WHERE redeemed_serial = ?", (history["acquired"],))
    sql(home, f"UPDATE enrollments SET redeemed_at = NULL, redeemed_serial = NULL WHERE id = {enrollment}")  # noqa: S608
    seq = event_seq(home, "enrollment.redeemed", history["acquired"])
    refused(
        verify(run_cli, home), f"enrollments {enrollment}: redeemed_at is None, but seq {seq} (enrollment.redeemed)"
    )


def test_an_open_code_hash_swapped_for_a_known_code(run_cli, home: Home, history: dict[str, Any]) -> None:
    # The attacker makes a code of their own and puts its hash on ADM2's open enrollment.
    known = enrollments.normalize(enrollments.new_code())
    assert known is not None
    enrollment = scalar(home, "SELECT id FROM enrollments WHERE subscriber_id = 'ADM2'")
    sql(
        home,
        "UPDATE enrollments SET code_hash = ? WHERE subscriber_id = 'ADM2'",
        params=(enrollments.code_hash(known),),
    )
    refused(verify(run_cli, home), f"enrollments {enrollment}: code hash is not the one seq")


def test_a_crl_number_used_twice(run_cli, home: Home, history: dict[str, Any]) -> None:
    number, sha256 = 5, hashlib.sha256(b"another CRL").hexdigest()
    existing = scalar(home, "SELECT COUNT(*) FROM crls WHERE issuer = 'issuing' AND number = ?", (number,))
    assert existing == 1
    sql(
        home,
        "DROP INDEX IF EXISTS idx_crls_issuer_number",
        "INSERT INTO crls (issuer, number, kind, state, entries, sha256) "
        "VALUES ('issuing', 5, 'full', 'published', 0, ?)",
        params=(sha256,),
    )
    refused(verify(run_cli, home), "crls issuing#5: a second row carries this key")


def test_a_key_reference_pointed_out_of_the_home(run_cli, home: Home, history: dict[str, Any]) -> None:
    recorded = scalar(home, "SELECT key_file FROM authorities WHERE role = 'ocsp:issuing'")
    sql(home, "UPDATE authorities SET key_file = '../../etc/passwd' WHERE role = 'ocsp:issuing'")
    refused(
        verify(run_cli, home),
        f"authorities ocsp:issuing: key_file is '../../etc/passwd', but seq {event_seq(home, 'ocsp.signer-issued')} "
        f"(ocsp.signer-issued) says {recorded!r}",
    )


def test_a_key_reference_out_of_the_home_is_never_read(run_cli, home: Home, history: dict[str, Any]) -> None:
    # Even before anyone runs `ledger verify`: the signing path refuses to follow it.
    sql(home, "UPDATE authorities SET key_file = '../../pass.txt' WHERE role = 'issuing'")
    result = run_cli("--home", home.path, "hold", history["valid"])
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"kinko: error: the key reference of issuing is not a file name in {home.keys_dir}: '../../pass.txt'\n"
    )
    assert scalar(home, "SELECT status FROM certificates WHERE serial = ?", (history["valid"],)) == "valid"


def test_a_certificate_replaced_by_another_der(run_cli, home: Home, history: dict[str, Any]) -> None:
    other = scalar(home, "SELECT der FROM certificates WHERE serial = ?", (history["valid"],))
    sql(home, "UPDATE certificates SET der = ? WHERE serial = ?", params=(other, history["acquired"]))
    refused(verify(run_cli, home), f"certificates {history['acquired']}: the stored DER does not match its fingerprint")


def test_a_rollback_to_an_earlier_checkpoint(run_cli, home: Home, history: dict[str, Any]) -> None:
    # Events and checkpoints after the hold are deleted: the chain left is whole and signed,
    # but the rows made later (the customer, its holders, their certificate) have no events.
    cut = event_seq(home, "certificate.held", history["held"])
    sql(home, f"DELETE FROM ledger WHERE seq > {cut}", f"DELETE FROM checkpoints WHERE seq > {cut}")  # noqa: S608
    refused(verify(run_cli, home), f"certificates {history['acquired']}: no ledger event made this row")


def test_verification_changes_nothing(run_cli, home: Home, history: dict[str, Any]) -> None:
    sql(home, f"UPDATE officers SET role = 'admin' WHERE login = '{OTHER_LOGIN}'")  # noqa: S608
    before = {table: table_rows(home, table) for table in TABLES}
    assert verify(run_cli, home).exit_code == 1
    assert {table: table_rows(home, table) for table in TABLES} == before


# ---------------------------------------------------------------- nothing is signed over a tampered state


def make_valid_again(home: Home, serial: str) -> None:
    sql(
        home,
        "UPDATE certificates SET status = 'valid', revoked_at = NULL, revocation_reason = NULL WHERE serial = ?",
        params=(serial,),
    )


def crl_rows(home: Home) -> list[tuple[Any, ...]]:
    return [
        tuple(row)
        for row in raw_execute(home, "SELECT issuer, number, state, sha256 FROM crls ORDER BY issuer, number")
    ]


def last_event(home: Home) -> tuple[str, dict[str, Any]]:
    action, details = raw_execute(home, "SELECT action, details FROM ledger ORDER BY seq DESC LIMIT 1")[0]
    return action, json.loads(details)


def test_crl_publish_refuses_a_revoked_certificate_made_valid(run_cli, home: Home, history: dict[str, Any]) -> None:
    serial = history["revoked"]
    make_valid_again(home, serial)
    before, files = crl_rows(home), {p.name: p.read_bytes() for p in (home.public_dir / "crl").iterdir()}
    result = run_cli("--home", home.path, "crl", "publish")
    seq = event_seq(home, "certificate.revoked", serial)
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"kinko: error: refused to sign the full CRL of issuing: certificates {serial}: status is 'valid', "
        f"but seq {seq} (certificate.revoked) says 'revoked'; nothing was signed: run `kinko ledger verify`\n"
    )
    assert crl_rows(home) == before  # not even a number reserved
    assert {p.name: p.read_bytes() for p in (home.public_dir / "crl").iterdir()} == files
    action, details = last_event(home)
    assert action == "integrity.refused"
    assert details == {
        "signing": "full CRL of issuing",
        "table": "certificates",
        "key": serial,
        "what": f"status is 'valid', but seq {seq} (certificate.revoked) says 'revoked'",
    }


def test_ocsp_refresh_refuses_to_re_sign_a_tampered_row(
    run_cli, home: Home, history: dict[str, Any], clock: FixedClock
) -> None:
    serial = history["revoked"]
    make_valid_again(home, serial)
    stored = scalar(home, "SELECT der FROM ocsp_responses WHERE serial = ?", (serial,))
    clock.advance(days=3)  # past half the responses' 4-day life: refresh re-signs every one
    result = run_cli("--home", home.path, "ocsp", "refresh")
    assert result.exit_code == 1, result.output
    assert f"refused to sign the OCSP response for {serial}: certificates {serial}: status is 'valid'" in result.stderr
    assert scalar(home, "SELECT der FROM ocsp_responses WHERE serial = ?", (serial,)) == stored
    assert last_event(home)[0] == "integrity.refused"


def ask(home: Home, clock: FixedClock, serial: str, nonce: bool = False) -> Any:
    """The responder's answer (a real DatabaseSource on the real file) for one certificate."""
    der = scalar(home, "SELECT der FROM certificates WHERE serial = ?", (serial,))
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        x509.load_der_x509_certificate(der),
        home.ca_certificate("issuing"),
        hashes.SHA1(),  # noqa: S303 - RFC 5019
    )
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
    request = builder.build().public_bytes(serialization.Encoding.DER)
    return ocsp.load_der_ocsp_response(DatabaseSource(home.path, clock=clock).response(request).body)


@pytest.mark.parametrize("nonce", [False, True], ids=["pre-signed path", "on-demand path"])
def test_the_responder_never_says_good_for_a_revoked_certificate_made_valid(
    home: Home, history: dict[str, Any], clock: FixedClock, capfd: pytest.CaptureFixture[str], nonce: bool
) -> None:
    serial = history["revoked"]
    assert ask(home, clock, serial, nonce).certificate_status == ocsp.OCSPCertStatus.REVOKED
    make_valid_again(home, serial)
    answer = ask(home, clock, serial, nonce)
    assert answer.response_status == ocsp.OCSPResponseStatus.TRY_LATER
    assert f"refused to sign: certificates {serial}: status is 'valid'" in capfd.readouterr().err


def test_the_responder_ignores_an_earlier_good_response_written_back(
    home: Home, history: dict[str, Any], clock: FixedClock
) -> None:
    serial = history["revoked"]
    sql(home, "UPDATE ocsp_responses SET der = ? WHERE serial = ?", params=(history["good_response"], serial))
    answer = ask(home, clock, serial)
    # The stored bytes say good while the row says revoked: answered as if there were none.
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED


CRL_TAMPERS = {
    # name: (SQL over the history's serials, the refusal's words)
    "revoked made valid": (
        "UPDATE certificates SET status = 'valid', revoked_at = NULL, revocation_reason = NULL "
        "WHERE serial = '{revoked}'",
        "{revoked}: status is 'valid'",
    ),
    "valid made revoked": (
        "UPDATE certificates SET status = 'revoked', revoked_at = '2020-01-01T00:00:00Z', "
        "revocation_reason = 'unspecified' WHERE serial = '{valid}'",
        "{valid}: status is 'revoked', but seq",
    ),
    "reason changed": (
        "UPDATE certificates SET revocation_reason = 'superseded' WHERE serial = '{revoked}'",
        "{revoked}: revocation_reason is 'superseded', but seq",
    ),
    "revocation time moved": (
        "UPDATE certificates SET revoked_at = '2030-01-01T00:00:00Z' WHERE serial = '{revoked}'",
        "{revoked}: revoked_at is '2030-01-01T00:00:00Z', but seq",
    ),
    "hold lifted in place": (
        "UPDATE certificates SET status = 'valid', revoked_at = NULL, revocation_reason = NULL, hold_origin = NULL "
        "WHERE serial = '{held}'",
        "{held}: status is 'valid', but seq",
    ),
    "row with no event": (
        "INSERT INTO certificates (serial, issuer, profile, subject, not_before, not_after, status, spki_sha256, "
        "fingerprint_sha256) SELECT 'ABCDEF0123456789ABCDEF0123456789', issuer, profile, subject, not_before, "
        "not_after, 'revoked', 'x', 'y' FROM certificates WHERE serial = '{valid}'",
        "ABCDEF0123456789ABCDEF0123456789: no ledger event issued this certificate",
    ),
}


@pytest.mark.parametrize("tamper", sorted(CRL_TAMPERS))
def test_crl_publish_refuses_every_kind_of_edited_row(
    run_cli, home: Home, history: dict[str, Any], tamper: str
) -> None:
    statement, words = CRL_TAMPERS[tamper]
    sql(home, statement.format(**history))
    before = crl_rows(home)
    result = run_cli("--home", home.path, "crl", "publish")
    assert result.exit_code == 1, result.output
    assert "refused to sign the full CRL of issuing: certificates " + words.format(**history) in result.stderr
    assert crl_rows(home) == before


# ---------------------------------------------------------------- decisions are made from what the ledger says


def run_cli_as(clock: FixedClock, actor: str, *args: Any) -> Any:
    return CliRunner().invoke(cli.cli, [str(a) for a in args], obj={"clock": clock, "actor": actor})


def test_an_auditor_made_admin_in_the_table_gets_no_admin_power(
    home: Home, history: dict[str, Any], clock: FixedClock
) -> None:
    sql(home, f"UPDATE officers SET role = 'admin' WHERE login = '{OTHER_LOGIN}'")  # noqa: S608
    before = scalar(home, "SELECT COUNT(*) FROM officers")
    result = run_cli_as(clock, OTHER_LOGIN, "--home", home.path, "officer", "add", "nobody", "--role", "admin")
    seq = event_seq(home, "officer.added")
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"kinko: error: refused to run `kinko officer add`: officers {OTHER_LOGIN}: role is 'admin', "
        f"but seq {seq} (officer.added) says 'auditor'; nothing was done: run `kinko ledger verify`\n"
    )
    assert scalar(home, "SELECT COUNT(*) FROM officers") == before
    action, details = last_event(home)
    assert action == "integrity.refused" and details["table"] == "officers"


def test_a_redeemed_code_made_redeemable_again_issues_nothing(
    run_cli, home: Home, kinko: Kinko, history: dict[str, Any], clock: FixedClock
) -> None:
    admin = kinko.enroll_administrator("C001", "管理者 三郎", "ADM3")
    clock.advance(minutes=1)
    first = kinko.acquire(admin.code, make_csr()).record.serial
    kinko.revoke(first, "superseded")  # so that one-active-certificate is not what refuses
    enrollment = scalar(home, "SELECT id FROM enrollments WHERE redeemed_serial = ?", (first,))
    sql(home, f"UPDATE enrollments SET redeemed_at = NULL, redeemed_serial = NULL WHERE id = {enrollment}")  # noqa: S608
    certificates = scalar(home, "SELECT COUNT(*) FROM certificates")
    csr = home.path.parent / "again.csr"
    csr.write_bytes(make_csr())
    result = run_cli("--home", home.path, "acquire", "--code", admin.code, "--csr", csr)
    assert result.exit_code == 1, result.output
    words = f"refused to issue a certificate for enrollment {enrollment}: enrollments {enrollment}: redeemed_at is None"
    assert words in result.stderr
    assert scalar(home, "SELECT COUNT(*) FROM certificates") == certificates


def test_an_open_code_with_a_swapped_hash_issues_nothing(run_cli, home: Home, history: dict[str, Any]) -> None:
    normalized = enrollments.normalize(enrollments.new_code())
    assert normalized is not None
    lookup = scalar(home, "SELECT lookup FROM enrollments WHERE subscriber_id = 'ADM2'")
    # The attacker's own code under ADM2's lookup: the row now matches a code they know.
    forged = lookup + normalized[len(lookup) :]
    sql(
        home,
        "UPDATE enrollments SET code_hash = ? WHERE subscriber_id = 'ADM2'",
        params=(enrollments.code_hash(forged),),
    )
    certificates = scalar(home, "SELECT COUNT(*) FROM certificates")
    csr = home.path.parent / "forged.csr"
    csr.write_bytes(make_csr())
    result = run_cli("--home", home.path, "acquire", "--code", forged, "--csr", csr)
    assert result.exit_code == 1, result.output
    assert "code hash is not the one seq" in result.stderr
    assert scalar(home, "SELECT COUNT(*) FROM certificates") == certificates
