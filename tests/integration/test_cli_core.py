"""The officer's core commands through the CLI, against a real SQLite home."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from kinko.ca.home import Home
from tests.conftest import ORG, make_csr, make_key, row_counts, run_kinko


def test_init_creates_a_complete_home(tmp_path: Path, passphrase_file: Path, run_cli) -> None:
    target = tmp_path / "srv" / "kinko"
    result = run_cli(
        "--home",
        target,
        "init",
        "--org",
        ORG,
        "--passphrase-file",
        passphrase_file,
        "--base-url",
        "http://127.0.0.1:8080",
    )
    assert result.exit_code == 0, result.output
    assert f"CN={ORG} Root CA" in result.output
    home = Home(target)
    assert stat.S_IMODE((target / "keys").stat().st_mode) == 0o700
    for key_file in (target / "keys").iterdir():
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert b"ENCRYPTED" in key_file.read_bytes() or key_file.name.startswith(("ocsp-", "audit-"))
    assert (target / "public" / "ca" / "root.cer").read_bytes()[:1] == b"\x30"  # DER
    assert (target / "public" / "ca" / "issuing.cer").exists()
    assert home.config.ca.passphrase_file == str(passphrase_file.resolve())
    assert home.db_file.exists()
    journal = home.store._conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"
    counts = row_counts(home)
    assert counts["certificates"] == 5  # root, issuing, an OCSP signer under each, the audit signer
    assert counts["officers"] == 1
    actions = [e.action for e in home.store.ledger_events()]
    assert actions == [
        "ca.created",
        "ca.created",
        "ocsp.signer-issued",  # under the root
        "ocsp.signer-issued",  # under the issuing CA
        "audit.signer-issued",
        "officer.added",
        "crl.published",
        "crl.published",
        "crl.published",  # issuing full + delta, root ARL
    ]
    assert (target / "public" / "crl" / "issuing.crl").exists() and (target / "public" / "crl" / "root.crl").exists()


def test_init_never_prints_key_material(tmp_path: Path, passphrase_file: Path, run_cli) -> None:
    result = run_cli("--home", tmp_path / "h", "init", "--org", ORG, "--passphrase-file", passphrase_file)
    assert result.exit_code == 0
    assert "PRIVATE KEY" not in result.output
    assert "correct horse" not in result.output


def test_init_refuses_an_existing_home(home: Home, passphrase_file: Path, run_cli) -> None:
    before = (home.path / "kinko.toml").read_bytes(), row_counts(home)
    result = run_cli("--home", home.path, "init", "--org", "Other", "--passphrase-file", passphrase_file)
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert ((home.path / "kinko.toml").read_bytes(), row_counts(home)) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--org", ""], "--org must name the organisation"),
        (["--org", "   "], "--org must name the organisation"),
        (["--org", " 興産信用金庫"], "must not start or end with spaces"),
        (["--org", "興産\n信用金庫"], "control characters"),
        (["--org", "信" * 17], "--org is 51 bytes in UTF-8; at most 49 fit the CAs' names"),
        (["--org", "x" * 50], "--org is 50 bytes in UTF-8; at most 49"),
        (["--org", ORG, "--country", "JPN"], "two-letter ISO 3166 code"),
        (["--org", ORG, "--country", "日本"], "two-letter ISO 3166 code"),
    ],
)
def test_init_refuses_names_no_ca_should_carry(
    tmp_path: Path, passphrase_file: Path, run_cli, args: list[str], message: str
) -> None:
    """`init --org ""` once made CN=Root CA,C=JP: the names go into every CA certificate."""
    result = run_cli("--home", tmp_path / "h", "init", *args, "--passphrase-file", passphrase_file)
    assert result.exit_code == 1, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "h").exists()


def test_init_refuses_without_passphrase_non_interactively(tmp_path: Path) -> None:
    result = run_kinko("--home", tmp_path / "h", "init", "--org", ORG)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("kinko: error:")
    assert "--passphrase-file" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "h").exists()


def test_init_refuses_an_empty_passphrase_file(tmp_path: Path, run_cli) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    empty.chmod(0o600)
    result = run_cli("--home", tmp_path / "h", "init", "--org", ORG, "--passphrase-file", empty)
    assert result.exit_code == 1 and "is empty" in result.output
    assert not (tmp_path / "h").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["empty.txt"]  # no staging left behind


@pytest.mark.parametrize("key_type", ["ec-p384", "rsa-2048"])
def test_init_key_types_and_single_tier(tmp_path: Path, passphrase_file: Path, run_cli, key_type: str) -> None:
    result = run_cli(
        "--json",
        "--home",
        tmp_path / "h",
        "init",
        "--org",
        ORG,
        "--passphrase-file",
        passphrase_file,
        "--key-type",
        key_type,
        "--single-tier",
    )
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    roles = [c["role"] for c in info["certificates"]]
    assert roles == ["root", "ocsp:root", "audit"]
    expected = {"ec-p384": "EC P-384", "rsa-2048": "RSA 2048"}[key_type]
    assert info["certificates"][0]["key"] == expected
    assert info["urls"]["crl"].endswith("/crl/root.crl")


def test_issue_writes_certificate_and_registry_and_ledger(home: Home, tmp_path: Path, run_cli) -> None:
    csr = tmp_path / "taro.csr"
    csr.write_bytes(make_csr())
    out = tmp_path / "taro.pem"
    result = run_cli(
        "--home", home.path, "issue", "--csr", csr, "--name", "山田 太郎", "--org", "株式会社テスト", "--out", out
    )
    assert result.exit_code == 0, result.output
    cert = x509.load_pem_x509_certificate(out.read_bytes())
    serial = f"{cert.serial_number:X}".zfill(32 if cert.serial_number.bit_length() > 124 else 0)
    assert serial in result.output or f"{cert.serial_number:X}" in result.output
    record = home.store.certificate(result.output.split("serial", 1)[1].split()[0])
    assert record is not None and record.der == cert.public_bytes(
        __import__("cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.DER
    )
    assert record.status == "valid" and record.profile == "client"
    last = list(home.store.ledger_events())[-1]
    assert last.action == "certificate.issued" and last.serial == record.serial
    assert json.loads(last.details)["fingerprint_sha256"] == record.fingerprint_sha256


def test_issue_without_out_prints_pem(home: Home, tmp_path: Path, run_cli) -> None:
    csr = tmp_path / "a.csr"
    csr.write_bytes(make_csr(der=True))
    result = run_cli("--home", home.path, "issue", "--csr", csr, "--name", "Taro")
    assert result.exit_code == 0
    assert result.output.startswith("-----BEGIN CERTIFICATE-----")


def test_cert_show_list_and_pem(home: Home, tmp_path: Path, run_cli) -> None:
    csr = tmp_path / "a.csr"
    csr.write_bytes(make_csr())
    issued = json.loads(run_cli("--json", "--home", home.path, "issue", "--csr", csr, "--name", "花子").output)
    serial = issued["serial"]
    typed = ":".join(serial[i : i + 2] for i in range(0, len(serial), 2)).lower()
    shown = json.loads(run_cli("--json", "--home", home.path, "cert", "show", typed).output)
    assert shown["serial"] == serial and shown["status"] == "valid" and "der" not in shown
    pem = run_cli("--home", home.path, "cert", "show", serial, "--pem").output
    assert pem == issued["pem"]
    listed = json.loads(run_cli("--json", "--home", home.path, "cert", "list", "--limit", "2").output)
    assert len(listed) == 2 and serial in [row["serial"] for row in listed]
    human = run_cli("--home", home.path, "cert", "list").output
    assert "SERIAL" in human and serial in human and "花子" in human
    assert json.loads(run_cli("--json", "--home", home.path, "cert", "list", "--status", "revoked").output) == []


def test_cert_show_unknown_serial(home: Home, run_cli) -> None:
    result = run_cli("--home", home.path, "cert", "show", "DEADBEEF")
    assert result.exit_code == 1
    assert result.output.strip() == "kinko: error: no certificate with serial DEADBEEF in this CA's registry"
    # The serial is named as typed: leading zeros kept, colons and 0x dropped.
    for typed in ("0011ab", "00:11:AB", "0x0011AB"):
        result = run_cli("--home", home.path, "cert", "show", typed)
        assert result.exit_code == 1
        assert result.output.strip() == "kinko: error: no certificate with serial 0011AB in this CA's registry"


def test_ca_chain_and_show(home: Home, tmp_path: Path, run_cli) -> None:
    out = tmp_path / "chain.pem"
    result = run_cli("--home", home.path, "ca", "chain", "--out", out)
    assert result.exit_code == 0
    chain = x509.load_pem_x509_certificates(out.read_bytes())
    assert [c.subject.rfc4514_string() for c in chain] == [
        f"CN={ORG} Issuing CA,O={ORG},C=JP",
        f"CN={ORG} Root CA,O={ORG},C=JP",
    ]
    shown = run_cli("--home", home.path, "ca", "show").output
    for needle in ("[root]", "[issuing]", "[ocsp:issuing]", "EC P-256", "http://127.0.0.1:8080/crl/issuing.crl"):
        assert needle in shown


def test_missing_home_is_a_clear_error(tmp_path: Path, run_cli) -> None:
    result = run_cli("--home", tmp_path / "nowhere", "cert", "list")
    assert result.exit_code == 1
    assert "is not a Kinko home" in result.output


def test_usage_error_exits_2(home: Home, run_cli) -> None:
    result = run_cli("--home", home.path, "issue", "--name", "x")
    assert result.exit_code == 2


# -- bad input: exit 1, one clear line, no new registry or ledger row ---------------------------


def _garbage(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.csr"
    path.write_bytes(os.urandom(300))
    return path


def _truncated(tmp_path: Path) -> Path:
    path = tmp_path / "truncated.csr"
    path.write_bytes(make_csr()[:200])
    return path


def _broken_signature(tmp_path: Path) -> Path:
    der = bytearray(make_csr(der=True))
    der[-3] ^= 0x40
    path = tmp_path / "broken.csr"
    path.write_bytes(bytes(der))
    return path


def _key(key_type: str):
    def make(tmp_path: Path) -> Path:
        path = tmp_path / f"{key_type}.csr"
        path.write_bytes(make_csr(make_key(key_type)))
        return path

    return make


BAD_CSRS = {
    "garbage": (_garbage, "not a valid certificate signing request"),
    "truncated PEM": (_truncated, "truncated"),
    "broken signature": (_broken_signature, "signature does not verify"),
    "RSA-1024": (_key("rsa-1024"), "RSA 1024-bit keys are not accepted; use 2048 or more"),
    "secp256k1": (_key("ec-secp256k1"), "EC curve secp256k1 is not accepted"),
    "P-192": (_key("ec-p192"), "EC curve secp192r1 is not accepted"),
    "missing file": (lambda tmp_path: tmp_path / "nope.csr", "does not exist"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSRS))
def test_bad_csr_is_refused_without_change(home: Home, tmp_path: Path, case: str) -> None:
    make, message = BAD_CSRS[case]
    path = make(tmp_path)
    before = row_counts(home)
    result = run_kinko("--home", home.path, "issue", "--csr", path, "--name", "Taro")
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kinko: error:"), result.stderr
    assert message in lines[0]
    assert result.stdout == ""
    assert row_counts(home) == before


def test_duplicate_public_key_is_refused(home: Home, tmp_path: Path) -> None:
    key = make_key()
    first, second = tmp_path / "1.csr", tmp_path / "2.csr"
    first.write_bytes(make_csr(key))
    second.write_bytes(make_csr(key))
    assert run_kinko("--home", home.path, "issue", "--csr", first, "--name", "A").returncode == 0
    before = row_counts(home)
    result = run_kinko("--home", home.path, "issue", "--csr", second, "--name", "B")
    assert result.returncode == 1
    assert "already in active certificate" in result.stderr and "generate a new key" in result.stderr
    assert row_counts(home) == before


def test_missing_passphrase_is_refused(home: Home, tmp_path: Path) -> None:
    config = home.config_file.read_text(encoding="utf-8")
    home.config_file.write_text(
        "\n".join(
            'passphrase_file = ""' if line.startswith("passphrase_file") else line for line in config.splitlines()
        ),
        encoding="utf-8",
    )
    csr = tmp_path / "a.csr"
    csr.write_bytes(make_csr())
    before = row_counts(home)
    result = run_kinko("--home", home.path, "issue", "--csr", csr, "--name", "A", env={"KINKO_PASSPHRASE_FILE": ""})
    assert result.returncode == 1
    assert "no passphrase" in result.stderr and "KINKO_PASSPHRASE_FILE" in result.stderr
    assert "Traceback" not in result.stderr
    assert row_counts(home) == before


def test_wrong_passphrase_is_refused(home: Home, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not the passphrase\n")
    wrong.chmod(0o600)
    csr = tmp_path / "a.csr"
    csr.write_bytes(make_csr())
    before = row_counts(home)
    result = run_kinko(
        "--home", home.path, "issue", "--csr", csr, "--name", "A", env={"KINKO_PASSPHRASE_FILE": str(wrong)}
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "kinko: error: wrong passphrase for issuing.key"
    assert row_counts(home) == before


def test_passphrase_env_overrides_config(home: Home, tmp_path: Path, passphrase_file: Path) -> None:
    moved = tmp_path / "elsewhere.txt"
    moved.write_bytes(passphrase_file.read_bytes())
    moved.chmod(0o600)
    passphrase_file.unlink()
    csr = tmp_path / "a.csr"
    csr.write_bytes(make_csr())
    assert run_kinko("--home", home.path, "issue", "--csr", csr, "--name", "A").returncode == 1
    result = run_kinko(
        "--home", home.path, "issue", "--csr", csr, "--name", "A", env={"KINKO_PASSPHRASE_FILE": str(moved)}
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("extra", "carries"),
    [
        ('extended_key_usage = ["ocsp_signing"]\nbasic_constraints = { ca = false }\n', "the ocsp_signing EKU"),
        ("basic_constraints = { ca = true }\n", "CA:TRUE"),
        ("basic_constraints = { ca = false }\nocsp_no_check = true\n", "ocsp_no_check"),
    ],
    ids=["ocsp-signing", "ca", "no-check"],
)
def test_a_profile_beside_the_ca_s_own_cannot_carry_their_powers(
    home: Home, tmp_path: Path, run_cli, extra: str, carries: str
) -> None:
    """A profile added beside the CA's own, carrying id-kp-OCSPSigning (its certificate would sign
    OCSP answers clients accept for every certificate of the CA), CA:TRUE or no-check: the home
    refuses to load, so nothing is issued under it."""
    with (home.path / "profiles.toml").open("a", encoding="utf-8") as profiles:
        profiles.write('\n[responder]\nvalidity = "90d"\nkey_usage = ["digital_signature"]\n' + extra)
    csr = tmp_path / "a.csr"
    csr.write_bytes(make_csr())
    before = row_counts(home)
    result = run_cli("--home", home.path, "issue", "--csr", csr, "--name", "A", "--profile", "responder")
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"kinko: error: profile 'responder' carries {carries}, which only the CA's own profiles may"
    )
    assert row_counts(home) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", ""], "name must not be empty"),
        (["--name", "あ" * 65], "at most 64"),
        (["--name", "A", "--profile", "issuing-ca"], "is for the CA's own certificates"),
        (["--name", "A", "--profile", "nosuch"], "unknown profile"),
    ],
)
def test_bad_issue_arguments(home: Home, tmp_path: Path, run_cli, args: list[str], message: str) -> None:
    csr = tmp_path / "a.csr"
    csr.write_bytes(make_csr())
    before = row_counts(home)
    result = run_cli("--home", home.path, "issue", "--csr", csr, *args)
    assert result.exit_code == 1
    assert message in result.output
    assert row_counts(home) == before


def test_hold_says_held_at_and_counts_crl_entries_in_words(home: Home, tmp_path: Path, run_cli) -> None:
    """A hold once printed "revoked at", and a CRL of one entry "(1 entries)"."""
    csr = tmp_path / "r.csr"
    csr.write_bytes(make_csr())
    issued = run_cli("--home", home.path, "--json", "issue", "--csr", csr, "--name", "保留 確認")
    serial = json.loads(issued.stdout)["serial"]
    held = run_cli("--home", home.path, "hold", serial)
    assert held.exit_code == 0, held.output
    assert "held at" in held.stdout and "revoked at" not in held.stdout
    assert "(1 entry)" in held.stdout and "(1 entries)" not in held.stdout
    released = run_cli("--home", home.path, "release", serial)
    assert "(0 entries)" in released.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["status", "--bogus"], "kinko: error: No such option '--bogus'; see `kinko status --help`"),
        (["cert", "show"], "kinko: error: Missing argument 'SERIAL'; see `kinko cert show --help`"),
        (["nosuch"], "kinko: error: No such command 'nosuch'; see `kinko --help`"),
        # Click lists the choices on lines of their own.
        (
            ["ledger", "export", "--out", "x.csv"],
            "kinko: error: Missing option '--format'. Choose from: csv, jsonl; see `kinko ledger export --help`",
        ),
    ],
)
def test_a_usage_error_is_one_line_with_exit_2(home: Home, args: list[str], message: str) -> None:
    result = run_kinko("--home", home.path, *args)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == message + "\n"


def test_help_lists_each_command_s_first_sentence_whole() -> None:
    result = run_kinko("--help")
    assert result.returncode == 0
    # Click wraps the summaries; what matters is that none is cut.
    words = " ".join(result.stdout.split("Commands:", 1)[1].split())
    assert "Redeem an enrollment code: a one-year certificate for its holder." in words
    assert "Issue a certificate from a CSR; the subject comes from --name/--org only." in words
    assert "..." not in words


@pytest.mark.parametrize("org", ["x" * 49, "信" * 16])
def test_init_takes_the_longest_organisation_that_fits(
    tmp_path: Path, passphrase_file: Path, run_cli, org: str
) -> None:
    result = run_cli("--home", tmp_path / "h", "init", "--org", org, "--passphrase-file", passphrase_file)
    assert result.exit_code == 0, result.output


def test_cert_show_names_serial_number_and_prints_the_fingerprint_as_ca_show_does(
    home: Home, kinko: Any, run_cli
) -> None:
    kinko.add_customer("C0001", "株式会社テスト")
    enrolled = kinko.enroll_administrator("C0001", "山田 太郎", "C0001-A1")
    serial = kinko.acquire(enrolled.code, make_csr()).record.serial
    shown = run_cli("--home", home.path, "cert", "show", serial).stdout
    assert "serialNumber=C0001-A1" in shown and "2.5.4.5=" not in shown
    data = json.loads(run_cli("--home", home.path, "--json", "cert", "show", serial).stdout)
    colons = ":".join(data["fingerprint_sha256"][i : i + 2] for i in range(0, 64, 2)).upper()
    assert f"sha256 fingerprint  {colons}" in shown
    assert data["subject"] == data["subject"].strip() and "C0001-A1" in data["subject"]  # JSON keeps its value
    ca = run_cli("--home", home.path, "ca", "show").stdout
    assert "sha256 fingerprint  " in ca and ca.split("sha256 fingerprint  ")[1][2] == ":"
    listed = run_cli("--home", home.path, "cert", "list").stdout
    assert "serialNumber=C0001-A1,CN=山田 太郎" in listed and "2.5.4.5=" not in listed
    rows = json.loads(run_cli("--home", home.path, "--json", "cert", "list").stdout)
    assert data["subject"] in [row["subject"] for row in rows]


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (["revoke"], "--invalidity-date"),
        (["revoke"], "--reported-at"),
        (["incident", "report"], "--received-at"),
        (["ledger", "export"], "--since"),
        (["customer", "terminate"], "--effective"),
    ],
)
def test_time_options_say_a_zone_is_required(command: list[str], option: str) -> None:
    helped = " ".join(run_kinko(*command, "--help").stdout.split())
    described = helped.split(option, 1)[1].split(" --", 1)[0]
    assert "ISO 8601 with its zone" in described, described


def test_a_typed_home_is_direct_mode_whatever_kinko_socket_says(home: Home, tmp_path: Path) -> None:
    """An officer with KINKO_SOCKET exported who types --home means that home (README: a home of
    another account is refused as such); a --socket typed beside it is a usage error."""
    nowhere = {"KINKO_SOCKET": str(tmp_path / "no-service.sock")}
    for args in (["--home", str(home.path), "cert", "list"], ["cert", "list", "--home", str(home.path)]):
        result = run_kinko(*args, env=nowhere)
        assert result.returncode == 0 and result.stdout.startswith("SERIAL"), (args, result.stderr)
    # Without --home, the exported socket is used (and here no service listens on it).
    result = run_kinko("cert", "list", env={**nowhere, "KINKO_HOME": str(home.path)})
    assert result.returncode == 3 and "no socket at" in result.stderr
    both = run_kinko("--home", home.path, "--socket", tmp_path / "s.sock", "cert", "list")
    assert both.returncode == 2
    assert both.stderr == (
        "kinko: error: give --home (direct mode) or --socket (the CA service), not both; see `kinko --help`\n"
    )
