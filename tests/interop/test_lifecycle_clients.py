"""After a customer's suspension, resumption, termination and a holder's incident, what real
clients see agrees with `kinko status`: `openssl ocsp` against the running responder, and
`openssl verify -crl_check` against the published CRL.

    kinko status        openssl ocsp                          openssl verify -crl_check / CRL reason
    valid (...)         good                                  OK
    on-hold             revoked, Reason: certificateHold      certificate revoked / Certificate Hold
    revoked (REASON)    revoked, Reason: keyCompromise ...    certificate revoked / Key Compromise ...

Everything runs on the real clock (the responder and openssl use it): the injected clock stands
at the real second the test started and is never moved.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from kinko.ca.clock import FixedClock, to_text
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from tests.conftest import RunningResponder, make_csr, run_kinko

CUSTOMER = "C0001"
CUSTOMER_NAME = "株式会社興産テスト"
TIMEOUT = 60
SETTLE_SECONDS = 0.1  # responder workers look for commits every 0.05 s

# kinko status -> (openssl ocsp status, OCSP reason, CRL reason as `openssl crl -text` prints it)
EXPECTED = {
    "valid": ("good", None, None),
    "on-hold": ("revoked", "certificateHold", "Certificate Hold"),
    "revoked (key-compromise)": ("revoked", "keyCompromise", "Key Compromise"),
    "revoked (cessation-of-operation)": ("revoked", "cessationOfOperation", "Cessation Of Operation"),
}


def openssl(*args: str | Path) -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.fail("openssl is not on PATH; install OpenSSL")
    result = subprocess.run([path, *map(str, args)], capture_output=True, timeout=TIMEOUT, check=False, text=True)
    return f"exit {result.returncode}\n{result.stdout}{result.stderr}"


@dataclass
class Client:
    """A holder's certificate as their PC has it."""

    subscriber: str
    serial: str
    pem: Path


@dataclass
class Bank:
    home: Home
    kinko: Kinko
    clock: FixedClock
    responder: RunningResponder
    dir: Path
    issuing: Path
    chain: Path
    crl: Path

    def acquire(self, code: str, name: str) -> Client:
        issued = self.kinko.acquire(code, make_csr())
        path = self.dir / f"{name}.pem"
        path.write_text(issued.pem, encoding="ascii")
        assert issued.record.subscriber_id is not None
        return Client(issued.record.subscriber_id, issued.record.serial, path)

    def ocsp(self, client: Client) -> tuple[str, str | None, str]:
        """(status, reason, all output) from `openssl ocsp` asking the running responder."""
        text = openssl(
            "ocsp",
            "-issuer",
            self.issuing,
            "-cert",
            client.pem,
            "-url",
            self.responder.url,
            "-CAfile",
            self.chain,
            "-no_nonce",
        )
        assert text.startswith("exit 0\n") and "Response verify OK" in text, text
        status = re.search(rf"^{re.escape(str(client.pem))}: (\w+)$", text, re.MULTILINE)
        assert status is not None, text
        reason = re.search(r"^\s*Reason: (\w+)$", text, re.MULTILINE)
        return status.group(1), reason.group(1) if reason else None, text

    def verify(self, client: Client) -> str:
        """`openssl verify -crl_check` against the published CRL: 'OK' or 'revoked'."""
        text = openssl("verify", "-crl_check", "-CAfile", self.chain, "-CRLfile", self.crl, client.pem)
        if text.startswith("exit 0\n") and f"{client.pem}: OK" in text:
            return "OK"
        assert "certificate revoked" in text, text
        return "revoked"

    def crl_reason(self, client: Client) -> str | None:
        """The reason the published CRL gives for a serial, as `openssl crl -text` prints it."""
        text = openssl("crl", "-in", self.crl, "-noout", "-text")
        assert text.startswith("exit 0\n"), text
        entries = re.split(r"\n\s*Serial Number: ", text)[1:]
        for entry in entries:
            if entry.split("\n", 1)[0].strip().upper() == client.serial.upper():
                reason = re.search(r"CRL Reason Code:\s*\n\s*(.+)", entry)
                return reason.group(1).strip() if reason else "(no reason)"
        return None

    def status(self, client: Client) -> str:
        """`kinko status --subscriber` in a real process, on the real clock."""
        result = run_kinko("--home", self.home.path, "status", "--subscriber", client.subscriber)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def assert_agree(self, client: Client, expected: str) -> None:
        time.sleep(SETTLE_SECONDS)
        said = self.status(client)
        state = "valid" if said.startswith("valid (") else said
        assert state == expected, said
        ocsp_status, ocsp_reason, text = self.ocsp(client)
        crl_reason = self.crl_reason(client)
        want_status, want_reason, want_crl_reason = EXPECTED[expected]
        assert (ocsp_status, ocsp_reason) == (want_status, want_reason), text
        assert self.verify(client) == ("OK" if want_status == "good" else "revoked")
        assert crl_reason == want_crl_reason


@pytest.fixture
def bank(tmp_path: Path, home: Home, kinko: Kinko, clock: FixedClock, responder: RunningResponder) -> Bank:
    ca = home.public_dir / "ca"
    chain = tmp_path / "chain.pem"
    chain.write_bytes((ca / "issuing.pem").read_bytes() + (ca / "root.pem").read_bytes())
    work = tmp_path / "pcs"
    work.mkdir()
    return Bank(home, kinko, clock, responder, work, ca / "issuing.pem", chain, home.public_dir / "crl" / "issuing.pem")


def customer_with_holders(bank: Bank) -> tuple[Client, Client]:
    """C0001 with an administrator and one user, each holding a certificate; the CRL is current."""
    bank.kinko.add_customer(CUSTOMER, CUSTOMER_NAME)
    admin = bank.acquire(bank.kinko.enroll_administrator(CUSTOMER, "山田 太郎").code, "admin")
    user = bank.acquire(bank.kinko.enroll_user(CUSTOMER, "佐藤 花子", admin.subscriber).code, "user")
    bank.kinko.publish_crl()
    return admin, user


def test_suspension_and_resumption_agree(bank: Bank) -> None:
    admin, user = customer_with_holders(bank)
    bank.assert_agree(admin, "valid")
    bank.assert_agree(user, "valid")

    bank.kinko.suspend_customer(CUSTOMER)
    bank.assert_agree(admin, "on-hold")
    bank.assert_agree(user, "on-hold")

    bank.kinko.resume_customer(CUSTOMER)
    bank.assert_agree(admin, "valid")
    bank.assert_agree(user, "valid")
    assert bank.responder.alive()


def test_incident_agrees(bank: Bank) -> None:
    admin, user = customer_with_holders(bank)
    now = bank.clock.now()
    # Since the certificate was issued: a compromise before its notBefore is refused.
    suspected = now
    bank.kinko.report_incident(user.subscriber, "lost", received_at=now, suspected_since=suspected)
    bank.assert_agree(user, "revoked (key-compromise)")
    bank.assert_agree(admin, "valid")
    _, _, text = bank.ocsp(user)
    revoked_at = f"{now:%b} {now.day:2d} {now:%H:%M:%S %Y} GMT"
    assert f"Revocation Time: {revoked_at}" in text, text
    crl_text = openssl("crl", "-in", bank.crl, "-noout", "-text")
    assert "Invalidity Date" in crl_text and f"{suspected:%b} {suspected.day:2d} {suspected:%H:%M:%S %Y}" in crl_text


def test_incident_that_suspends_the_customer_agrees(bank: Bank) -> None:
    admin, user = customer_with_holders(bank)
    bank.kinko.report_incident(user.subscriber, "stolen", received_at=bank.clock.now(), suspend_customer=True)
    bank.assert_agree(user, "revoked (key-compromise)")
    bank.assert_agree(admin, "on-hold")


def test_termination_agrees(bank: Bank) -> None:
    admin, user = customer_with_holders(bank)
    bank.kinko.hold(user.serial)  # held certificates are revoked too when the service ends
    bank.assert_agree(user, "on-hold")
    bank.kinko.terminate_customer(CUSTOMER)
    bank.assert_agree(admin, "revoked (cessation-of-operation)")
    bank.assert_agree(user, "revoked (cessation-of-operation)")
    record = bank.home.store.certificate(admin.serial)
    assert record is not None and record.revoked_at == to_text(bank.clock.now())
