"""Client certificates name their holder in a subjectAltName, which strict verifiers require:
`cryptography`'s client verifier (as webpki-based stacks) refuses a certificate without one
("missing required extension 2.5.29.17"). The holder's e-mail address when it was recorded at
enrollment, else a URI naming the subscriber; pkilint stays clean on both.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from kinko.ca.audit import verify_database
from kinko.ca.clock import FixedClock
from kinko.ca.errors import InputError
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from tests.conftest import make_csr, make_key, raw_execute, row_counts
from tests.interop.tools import run, tool

CUSTOMER = "C0001"
EMAIL = "yamada.taro@example.co.jp"


def san(pem: str) -> list[x509.GeneralName]:
    certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
    extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert not extension.critical  # the subject DN is not empty
    return list(extension.value)


def client_verify(home: Home, pem: str, when: dt.datetime) -> list[x509.Certificate]:
    """`cryptography`'s client verifier (RFC 5280 and CA/B-style checks), as webpki-based stacks do."""
    root = home.ca_certificate("root")
    issuing = home.ca_certificate("issuing")
    verifier = PolicyBuilder().store(Store([root])).time(when).build_client_verifier()
    verified = verifier.verify(x509.load_pem_x509_certificate(pem.encode("ascii")), [issuing])
    return list(verified.chain)


def pkilint_clean(pem: str, path: Path) -> None:
    path.write_text(pem, encoding="ascii")
    result = run(tool("lint_pkix_cert"), "lint", "-s", "ERROR", path)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout.decode()


@pytest.fixture
def bank(kinko: Kinko) -> Kinko:
    kinko.add_customer(CUSTOMER, "株式会社テスト")
    return kinko


def test_an_acquired_certificate_names_the_recorded_e_mail_and_strict_verifiers_accept_it(
    home: Home, bank: Kinko, clock: FixedClock, tmp_path: Path
) -> None:
    enrolled = bank.enroll_administrator(CUSTOMER, "山田 太郎", email=EMAIL)
    issued = bank.acquire(enrolled.code, make_csr())
    assert san(issued.pem) == [x509.RFC822Name(EMAIL)]
    chain = client_verify(home, issued.pem, clock.now())
    expected = [home.ca_certificate(role).subject for role in ("issuing", "root")]
    assert [c.subject for c in chain][1:] == expected
    pkilint_clean(issued.pem, tmp_path / "acquired.pem")
    assert home.store.subscriber(enrolled.subscriber_id).email == EMAIL


def test_without_an_e_mail_the_certificate_names_the_subscriber_by_uri(
    home: Home, bank: Kinko, clock: FixedClock, tmp_path: Path
) -> None:
    admin = bank.enroll_administrator(CUSTOMER, "山田 太郎", "ADM1")
    bank.acquire(admin.code, make_csr())
    user = bank.enroll_user(CUSTOMER, "佐藤 花子", "ADM1", "USR1")
    issued = bank.acquire(user.code, make_csr())
    base = home.config.ca.base_url
    assert san(issued.pem) == [x509.UniformResourceIdentifier(f"{base}/subscribers/USR1")]
    client_verify(home, issued.pem, clock.now())
    pkilint_clean(issued.pem, tmp_path / "user.pem")


def test_an_officer_s_certificate_without_subscriber_names_a_holder_uri_or_the_given_e_mail(
    home: Home, kinko: Kinko, clock: FixedClock, tmp_path: Path
) -> None:
    plain = kinko.issue(make_csr(), name="山田 太郎", organization="株式会社テスト")
    (name,) = san(plain.pem)
    assert isinstance(name, x509.UniformResourceIdentifier)
    assert name.value.startswith(f"{home.config.ca.base_url}/holders/")
    other = kinko.issue(make_csr(), name="山田 太郎")
    assert san(other.pem) != [name]  # each holder its own
    mailed = kinko.issue(make_csr(), name="山田 太郎", email=EMAIL)
    assert san(mailed.pem) == [x509.RFC822Name(EMAIL)]
    for pem in (plain.pem, mailed.pem):
        client_verify(home, pem, clock.now())
    pkilint_clean(plain.pem, tmp_path / "plain.pem")


def test_renewal_keeps_naming_the_recorded_e_mail(home: Home, bank: Kinko, clock: FixedClock) -> None:
    enrolled = bank.enroll_administrator(CUSTOMER, "山田 太郎", email=EMAIL)
    key = make_key()
    first = bank.acquire(enrolled.code, make_csr(key))
    clock.set(dt.datetime.fromisoformat(first.record.not_after.replace("Z", "+00:00")) - dt.timedelta(days=10))
    renewed = bank.renew(first.record.serial, make_csr())
    assert san(renewed.pem) == [x509.RFC822Name(EMAIL)]


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("山田@example.jp", "is not ASCII: a certificate's rfc822Name holds ASCII addresses only"),
        ("yamada", "is not of the form name@domain.example"),
        ("yamada@localhost", "is not of the form name@domain.example"),
        ("a..b@example.jp", "is not of the form name@domain.example"),
        ("a b@example.jp", "is not of the form name@domain.example"),
        ("x" * 250 + "@example.jp", "at most 254"),
    ],
)
def test_a_bad_e_mail_is_refused_in_one_line_and_changes_nothing(
    home: Home, bank: Kinko, run_cli, email: str, message: str
) -> None:
    before = row_counts(home)
    result = run_cli(
        "--home", home.path, "enroll", "administrator", "--customer", CUSTOMER, "--name", "山田 太郎", "--email", email
    )
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("kinko: error: e-mail address") and line.endswith(message), line
    assert row_counts(home) == before


def test_an_officer_may_not_give_a_subscriber_s_certificate_another_e_mail(home: Home, bank: Kinko) -> None:
    enrolled = bank.enroll_administrator(CUSTOMER, "山田 太郎", "ADM1", email=EMAIL)
    del enrolled
    before = row_counts(home)
    with pytest.raises(InputError, match="recorded at its enrollment"):
        bank.issue(make_csr(), name="山田 太郎", subscriber_id="ADM1", email="other@example.jp")
    assert row_counts(home) == before


def test_an_e_mail_changed_behind_kinko_s_back_is_found(home: Home, bank: Kinko) -> None:
    bank.enroll_administrator(CUSTOMER, "山田 太郎", "ADM1", email=EMAIL)
    assert verify_database(Home(home.path)).ok
    raw_execute(home, "UPDATE subscribers SET email = 'attacker@example.net' WHERE id = 'ADM1'")
    report = verify_database(Home(home.path))
    assert not report.ok
    assert "subscribers" in str(report.problem) and "ADM1" in str(report.problem), report


def test_the_ledger_records_the_e_mail_with_the_subscriber(home: Home, bank: Kinko) -> None:
    bank.enroll_administrator(CUSTOMER, "山田 太郎", "ADM1", email=EMAIL)
    added = [e for e in home.store.ledger_events() if e.action == "subscriber.added"]
    assert json.loads(added[-1].details)["email"] == EMAIL


@pytest.mark.parametrize(
    ("column", "value"),
    [("email", "attacker@example.net"), ("name", "偽 太郎"), ("customer_id", "C0002")],
)
def test_a_holder_edited_behind_kinko_s_back_gets_no_certificate(
    home: Home, bank: Kinko, clock: FixedClock, column: str, value: str
) -> None:
    """What a certificate says of its holder comes from the row only as the ledger recorded it."""
    from kinko.ca.errors import IntegrityError

    bank.add_customer("C0002", "株式会社別会社")
    enrolled = bank.enroll_administrator(CUSTOMER, "山田 太郎", "ADM1", email=EMAIL)
    raw_execute(home, f"UPDATE subscribers SET {column} = ? WHERE id = 'ADM1'", (value,))  # noqa: S608 - a test
    before = row_counts(home)
    with pytest.raises(IntegrityError, match="refused to sign the certificate for subscriber ADM1"):
        bank.acquire(enrolled.code, make_csr())
    after = row_counts(home)
    assert after["certificates"] == before["certificates"]
