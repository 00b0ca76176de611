"""Kinko's CRLs in Java: the JDK's PKIX CertPathValidator, OCSP off, CRLs fetched over HTTP from
the certificates' CRL distribution points (tests/fixtures/java/PkixCrlCheck.java).

The JDK never fetches a delta CRL. Once Kinko's full CRL is large, a revocation goes first into
the delta; the CA service's schedule then puts it into a new full CRL (within [service]
full_crl_seconds), which is what Java sees. The schedule is driven here on the injected clock.
`java` and `javac` come from Debian's default-jdk-headless.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kinko.ca.clock import FixedClock
from kinko.ca.config import set_value
from kinko.ca.hierarchy import InitOptions, create_home
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from kinko.ca.officers import current_login
from kinko.ca.service.jobs import Schedule, jobs
from tests.conftest import ORG, RunningResponder, free_port, make_csr
from tests.interop.tools import output, run, tool

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "java" / "PkixCrlCheck.java"
START = dt.timedelta(minutes=3)  # how far in the past the CA is made: every CRL stays in Java's past


@pytest.fixture(scope="module")
def checker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PkixCrlCheck compiled once for the module; returns its class directory."""
    classes = tmp_path_factory.mktemp("java")
    shutil.copy(FIXTURE, classes / FIXTURE.name)
    result = run(tool("javac"), "-d", classes, classes / FIXTURE.name)
    assert result.returncode == 0, output(result)
    return classes


class Java:
    """Runs the PKIX check of a certificate against a home's published chain."""

    def __init__(self, classes: Path, home: Home, work: Path) -> None:
        self.classes, self.home, self.work = classes, home, work

    def check(self, name: str, pem: str) -> str:
        client = self.work / f"{name}.pem"
        client.write_text(pem, encoding="ascii")
        ca = self.home.public_dir / "ca"
        result = run(
            tool("java"),
            "-Dcom.sun.security.enableCRLDP=true",
            "-cp",
            self.classes,
            "PkixCrlCheck",
            ca / "root.pem",
            ca / "issuing.pem",
            client,
        )
        said = output(result).strip()
        assert result.returncode in (0, 1), said
        return said


@pytest.fixture
def published(tmp_path: Path, passphrase_file: Path) -> Iterator[tuple[Home, FixedClock]]:
    """A home whose CRL distribution points name a running responder; revocations go only into
    the delta once the full CRL holds one entry."""
    port = free_port()
    clock = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0) - START)
    options = InitOptions(organization=ORG, passphrase_file=passphrase_file, base_url=f"http://127.0.0.1:{port}")
    home = create_home(tmp_path / "home", options, clock, current_login())
    text = set_value(home.config_file.read_text(encoding="utf-8"), "delta_after_entries", 1)
    home.config_file.write_text(text, encoding="utf-8")
    responder = RunningResponder(home, port=port)
    try:
        yield Home(home.path), clock
    finally:
        responder.stop()


def test_java_sees_a_revocation_once_the_schedule_puts_it_into_the_full_crl(
    checker: Path, published: tuple[Home, FixedClock], tmp_path: Path
) -> None:
    home, clock = published
    officer = Kinko(home, clock=clock)
    issued = {
        name: officer.issue(make_csr(), name="山田 太郎", organization="株式会社テスト")
        for name in ("good", "first", "second", "held")
    }
    assert [c.kind for c in officer.revoke(issued["first"].record.serial, reason="key-compromise").crls] == [
        "full",
        "delta",
    ]
    clock.advance(minutes=1)
    assert [c.kind for c in officer.revoke(issued["second"].record.serial, reason="key-compromise").crls] == ["delta"]
    assert [c.kind for c in officer.hold(issued["held"].record.serial).crls] == ["delta"]

    java = Java(checker, home, tmp_path)
    assert java.check("good", issued["good"].pem) == "VALID"
    assert java.check("first", issued["first"].pem).startswith("INVALID REVOKED")
    # Only in the delta: Java, which never fetches it, still accepts them.
    assert java.check("second", issued["second"].pem) == "VALID"
    assert java.check("held", issued["held"].pem) == "VALID"

    clock.set(dt.datetime.now(dt.UTC).replace(microsecond=0))
    schedule = Schedule(Kinko(Home(home.path), clock=clock, actor="kinko-service"), clock, jobs(20))
    assert "crl-current" in schedule.run_due()

    assert java.check("good", issued["good"].pem) == "VALID"
    for name in ("first", "second", "held"):
        said = java.check(name, issued[name].pem)
        assert said.startswith("INVALID REVOKED"), f"{name}: {said}"
    assert "reason: CERTIFICATE_HOLD" in java.check("held", issued["held"].pem)
