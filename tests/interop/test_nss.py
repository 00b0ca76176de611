"""Kinko's CRLs in NSS, the library of Firefox and of Chromium on Linux: `crlutil` and `vfychain`.

NSS refuses to import a CRL with a critical extension it does not know, and it does not know the
IssuingDistributionPoint; nor does it fetch delta CRLs. So the full CRLs must import, and with
CRL checking required, `vfychain` must accept a good client certificate and reject revoked and
held ones. `crlutil`, `certutil` and `vfychain` come from Debian's libnss3-tools.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kinko.ca.clock import FixedClock
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from kinko.crl.publisher import crl_paths
from tests.conftest import make_csr
from tests.interop.tools import output, run, tool

REVOKED = "-8180"  # SEC_ERROR_REVOKED_CERTIFICATE, as vfychain prints it


class NSSDatabase:
    """A fresh NSS certificate database trusting the home's root for client authentication."""

    def __init__(self, path: Path, home: Home) -> None:
        path.mkdir()
        self.spec = f"sql:{path}"
        self.home = home
        self._ok(tool("certutil"), "-N", "-d", self.spec, "--empty-password")
        ca_dir = home.public_dir / "ca"
        self._ok(tool("certutil"), "-A", "-d", self.spec, "-n", "root", "-t", "CT,,", "-i", ca_dir / "root.pem")
        self._ok(tool("certutil"), "-A", "-d", self.spec, "-n", "issuing", "-t", ",,", "-i", ca_dir / "issuing.pem")

    def _ok(self, *args: str | Path) -> str:
        result = run(*args)
        assert result.returncode == 0, output(result)
        return output(result)

    def import_crl(self, path: Path) -> tuple[int, str]:
        result = run(tool("crlutil"), "-I", "-d", self.spec, "-t", "1", "-i", path)
        return result.returncode, output(result)

    def import_full_crls(self) -> None:
        for issuer in ("root", "issuing"):
            code, said = self.import_crl(crl_paths(self.home, issuer, "full")[0])
            assert code == 0, f"crlutil refused the {issuer} CRL: {said}"

    def verify(self, certificate: str, out: Path) -> tuple[int, str]:
        """vfychain with the PKIX library, CRLs required for the leaf and the whole chain."""
        out.write_bytes(x509.load_pem_x509_certificate(certificate.encode()).public_bytes(serialization.Encoding.DER))
        revocation = ("-h", "requireFreshInfo", "-m", "crl", "-s", "failIfNoInfo")
        result = run(
            tool("vfychain"),
            "-d",
            self.spec,
            "-pp",
            "-u",
            "0",
            "-g",
            "leaf",
            *revocation,
            "-g",
            "chain",
            *revocation,
            out,
        )
        return result.returncode, output(result)


@pytest.fixture
def nss(tmp_path: Path, home: Home) -> NSSDatabase:
    return NSSDatabase(tmp_path / "nssdb", home)


def issue(kinko: Kinko) -> tuple[str, str]:
    issued = kinko.issue(make_csr(), name="山田 太郎", organization="株式会社テスト")
    return issued.record.serial, issued.pem


def test_full_crls_import_into_nss(nss: NSSDatabase, home: Home, kinko: Kinko) -> None:
    serial, _ = issue(kinko)
    kinko.revoke(serial, reason="key-compromise")
    nss.import_full_crls()
    listed = run(tool("crlutil"), "-L", "-d", nss.spec)
    assert listed.returncode == 0
    names = [line.split()[0] for line in output(listed).splitlines() if line.strip() and "CRL names" not in line]
    assert sorted(names) == ["issuing", "root"]


def test_vfychain_with_crls_required_accepts_good_and_rejects_revoked_and_held(
    nss: NSSDatabase, kinko: Kinko, tmp_path: Path
) -> None:
    _, good = issue(kinko)
    revoked_serial, revoked = issue(kinko)
    held_serial, held = issue(kinko)
    kinko.revoke(revoked_serial, reason="key-compromise")
    kinko.hold(held_serial)
    nss.import_full_crls()

    code, said = nss.verify(good, tmp_path / "good.der")
    assert code == 0 and "Chain is good!" in said, said
    for name, certificate in (("revoked", revoked), ("held", held)):
        code, said = nss.verify(certificate, tmp_path / f"{name}.der")
        assert code != 0 and REVOKED in said, f"{name}: {said}"


def test_a_released_hold_verifies_again_once_the_new_full_crl_is_imported(
    nss: NSSDatabase, kinko: Kinko, clock: FixedClock, tmp_path: Path
) -> None:
    serial, certificate = issue(kinko)
    kinko.hold(serial)
    nss.import_full_crls()
    assert REVOKED in nss.verify(certificate, tmp_path / "held.der")[1]
    clock.advance(seconds=1)  # NSS takes a CRL only over one with an earlier thisUpdate
    kinko.release(serial)
    nss.import_full_crls()  # NSS replaces a CRL by a newer one of the same issuer
    code, said = nss.verify(certificate, tmp_path / "released.der")
    assert code == 0 and "Chain is good!" in said, said


def test_without_crls_nss_cannot_vouch_for_the_chain(nss: NSSDatabase, kinko: Kinko, tmp_path: Path) -> None:
    """The check above is real: with CRLs required and none imported, NSS accepts nothing."""
    _, good = issue(kinko)
    code, said = nss.verify(good, tmp_path / "good.der")
    assert code != 0, said
