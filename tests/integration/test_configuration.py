"""`kinko config show` and `config apply`: a new configuration is checked whole, written by Kinko,
recorded in the ledger with who changed it, and in force for the next operation; anything it
refuses changes no file and records nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from kinko.ca.home import Home
from kinko.ca.officers import current_login
from tests.conftest import make_csr, raw_execute, row_counts

CLIENT_30D = """
[client-30d]
validity = "30d"
key_usage = ["digital_signature"]
extended_key_usage = ["client_auth"]
"""


def files_of(home: Home) -> dict[str, bytes]:
    return {name: (home.path / name).read_bytes() for name in ("kinko.toml", "profiles.toml")}


def test_a_new_profile_is_recorded_and_in_force_at_once(
    home: Home, tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    new = tmp_path / "profiles.toml"
    new.write_bytes((home.path / "profiles.toml").read_bytes() + CLIENT_30D.encode())
    result = run_cli("--home", home.path, "--json", "config", "apply", "--profiles", new)
    assert result.exit_code == 0, result.output
    applied = json.loads(result.stdout)
    assert applied["changed"] == ["profiles.toml"]
    assert applied["sha256"]["profiles.toml"] == hashlib.sha256(new.read_bytes()).hexdigest()
    assert (home.path / "profiles.toml").read_bytes() == new.read_bytes()
    assert (home.path / "profiles.toml").stat().st_mode & 0o007 == 0  # never for others
    event = home.store.last_event("config.changed")
    assert event is not None and event.seq == applied["seq"] and event.actor == current_login()
    assert json.loads(event.details)["sha256"] == applied["sha256"]

    csr = tmp_path / "r.csr"
    csr.write_bytes(make_csr())
    out = tmp_path / "c.pem"
    result = run_cli("--home", home.path, "issue", "--csr", csr, "--name", "T", "--profile", "client-30d", "--out", out)
    assert result.exit_code == 0, result.output
    cert = x509.load_pem_x509_certificate(out.read_bytes())
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=30, seconds=-1)

    shown = json.loads(run_cli("--home", home.path, "--json", "config", "show").stdout)
    assert {row["file"]: row["recorded"] for row in shown} == {"kinko.toml": True, "profiles.toml": True}
    text = run_cli("--home", home.path, "config", "show", "profiles.toml").stdout
    assert "[client-30d]" in text

    # The same files again: nothing to change, no event, exit 0.
    before = row_counts(home)["ledger"]
    result = run_cli("--home", home.path, "config", "apply", "--profiles", new)
    assert result.exit_code == 0 and "nothing changed" in result.stdout
    assert row_counts(home)["ledger"] == before


def _profiles_with(home: Home, extra: str) -> bytes:
    return (home.path / "profiles.toml").read_bytes() + extra.encode()


def _config_with(home: Home, old: str, new: str) -> bytes:
    text = (home.path / "kinko.toml").read_text("utf-8")
    assert old in text
    return text.replace(old, new, 1).encode()


def _without_profile(home: Home, name: str) -> bytes:
    text = (home.path / "profiles.toml").read_text("utf-8")
    start = text.index(f"[{name}]")
    end = text.find("\n[", start + 1)
    return (text[:start] + (text[end + 1 :] if end >= 0 else "")).encode()


BAD: dict[str, tuple[str, Callable[[Home], bytes], str]] = {
    "responder-eku": (
        "--profiles",
        lambda h: _profiles_with(
            h,
            '\n[fake-responder]\nvalidity = "1y"\nkey_usage = ["digital_signature"]\n'
            'extended_key_usage = ["ocsp_signing"]\n',
        ),
        "carries the ocsp_signing EKU, which only the CA's own profiles may",
    ),
    "ca-true": (
        "--profiles",
        lambda h: _profiles_with(
            h, '\n[sub-ca]\nvalidity = "1y"\nkey_usage = ["key_cert_sign"]\nbasic_constraints = { ca = true }\n'
        ),
        "carries CA:TRUE",
    ),
    "no-check": (
        "--profiles",
        lambda h: _profiles_with(
            h, '\n[quiet]\nvalidity = "1y"\nkey_usage = ["digital_signature"]\nocsp_no_check = true\n'
        ),
        "carries ocsp_no_check",
    ),
    "own-profile-removed": (
        "--profiles",
        lambda h: _without_profile(h, "ocsp-signer"),
        "ocsp-signer cannot be removed",
    ),
    "not-toml": ("--profiles", lambda h: b"[client\nvalidity=", "profiles.toml is not valid TOML"),
    "not-utf8": ("--config", lambda h: b"\xff\xfe[ca]\n", "kinko.toml is not UTF-8 text"),
    "ca-section": (
        "--config",
        lambda h: _config_with(h, 'country = "JP"', 'country = "US"'),
        "the [ca] section is fixed",
    ),
    "token-file": (
        "--config",
        lambda h: _config_with(h, 'token_file = ""', 'token_file = "/etc/shadow"'),
        "[api] token_file names a file the API opens",
    ),
    "retention": (
        "--config",
        lambda h: _config_with(h, "retention_days = 0", "retention_days = 30"),
        "[crl] retention_days is fixed",
    ),
    "bad-value": (
        "--config",
        lambda h: _config_with(h, "next_update_hours = 48", "next_update_hours = -1"),
        "the new configuration is refused: next_update_hours must be between 0 and 1000000",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_refused_configuration_changes_nothing(
    case: str, home: Home, tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    flag, make, message = BAD[case]
    new = tmp_path / "new.toml"
    new.write_bytes(make(home))
    before, counts = files_of(home), row_counts(home)
    result = run_cli("--home", home.path, "config", "apply", flag, new)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert files_of(home) == before and row_counts(home) == counts


def test_apply_needs_a_file_it_can_read(home: Home, tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    result = run_cli("--home", home.path, "config", "apply")
    assert result.exit_code == 1 and "give the new file(s) with --config and/or --profiles" in result.stderr
    missing = run_cli("--home", home.path, "config", "apply", "--profiles", tmp_path / "absent.toml")
    assert missing.exit_code == 1 and "absent.toml" in missing.stderr


def test_a_change_the_ledger_refuses_to_record_leaves_the_files_as_they_were(
    home: Home, tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    """The files are written inside the transaction: when its commit is refused (here the audit
    signer may not seal), the event rolls back and so do the files."""

    new = tmp_path / "profiles.toml"
    new.write_bytes((home.path / "profiles.toml").read_bytes() + CLIENT_30D.encode())
    before = files_of(home)
    # The audit signer retired behind Kinko's back: sealing refuses.
    raw_execute(home, "UPDATE authorities SET serial = 'FFFF' WHERE role = 'audit'")
    result = run_cli("--home", home.path, "config", "apply", "--profiles", new)
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert files_of(home) == before
    assert home.store.last_event("config.changed") is None
