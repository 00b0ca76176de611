"""Kinko in Japanese: help, refusals and Click's own texts under LANG=ja_JP.UTF-8 (or KINKO_LANG=ja),
one line with the same exit code as in English, and `--json` byte-identical in both languages."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po

from kinko.ca.clock import FixedClock
from kinko.ca.commands import INDEX
from kinko.ca.commands.click_app import first_sentence
from kinko.ca.commands.registry import module_groups, module_operations
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from kinko.ca.officers import current_login
from tests.conftest import ROOT, database_cli, make_csr, make_key, row_counts, unguard

# Empty LC_ALL and KINKO_LANG count as unset: the run's own environment cannot decide for the test.
JA = {"LANG": "ja_JP.UTF-8", "LC_ALL": "", "LC_MESSAGES": "", "KINKO_LANG": ""}
EN = {"LANG": "C.UTF-8", "LC_ALL": "", "LC_MESSAGES": "", "KINKO_LANG": ""}


def japanese() -> dict[str, str]:
    with (ROOT / "ca" / "locale" / "ja" / "LC_MESSAGES" / "kinko.po").open("rb") as handle:
        # A plural message by its singular source, with its one Japanese form.
        return {
            str(m.id[0] if isinstance(m.id, tuple) else m.id): str(
                m.string[0] if isinstance(m.string, tuple) else m.string
            )
            for m in read_po(handle)
            if m.id
        }


def squeezed(text: str) -> str:
    """Text without its white space: Click wraps help lines (and breaks after a hyphen)."""
    return "".join(text.split())


def is_japanese(text: str) -> bool:
    return any("\u3040" <= ch <= "\u9fff" for ch in text)


def test_every_command_group_s_help_is_japanese(run_cli: Any) -> None:
    catalogue = japanese()
    top = run_cli("--help", env=JA)
    assert top.exit_code == 0 and top.output.startswith("使い方: ")
    assert catalogue["Kinko: a private CA for client-certificate login."] in top.output
    assert catalogue["Show this message and exit."] in top.output
    for name, module in sorted(INDEX.items()):
        operations = [op for op in module_operations(module) if op.path.split()[0] == name and not op.hidden]
        if not operations:
            continue
        source = module_groups(module).get(name) or operations[0].help
        shown = run_cli(name, "--help", env=JA)
        assert shown.exit_code == 0, (name, shown.output)
        summary = first_sentence(catalogue[source])
        assert summary and is_japanese(summary) and squeezed(summary) in squeezed(shown.output), (name, shown.output)
        english = run_cli(name, "--help", env=EN)
        assert squeezed(first_sentence(source) or "") in squeezed(english.output)


def test_kinko_lang_overrides_the_locale(run_cli: Any) -> None:
    english = run_cli("--help", env={**JA, "KINKO_LANG": "en"}).output
    assert english.startswith("Usage: ") and not any("\u3040" <= ch <= "\u9fff" for ch in english), english
    assert run_cli("--help", env={**EN, "KINKO_LANG": "ja"}).output.startswith("使い方: ")


@pytest.mark.parametrize("case", ["rsa-1024", "renewal-not-open", "usage", "choice"])
def test_a_refusal_is_one_japanese_line_with_the_english_exit_code(
    home: Home, tmp_path: Path, run_cli: Any, clock: FixedClock, case: str
) -> None:
    catalogue = japanese()
    if case == "rsa-1024":
        csr = tmp_path / "weak.csr"
        csr.write_bytes(make_csr(make_key("rsa-1024")))
        args = ["--home", str(home.path), "issue", "--csr", str(csr), "--name", "山田 太郎"]
        expected = [
            catalogue["RSA {bits}-bit keys are not accepted; use {minimum} or more"].format(bits=1024, minimum=2048)
        ]
    elif case == "renewal-not-open":
        # A holder's certificate, acquired today: its renewal opens 30 days before it ends.
        kinko = Kinko(home, clock=clock, actor=current_login())
        kinko.add_customer("C0001", "株式会社テスト")
        enrolled = kinko.enroll_administrator("C0001", "山田 太郎", "C0001-A1")
        serial = kinko.acquire(enrolled.code, make_csr()).record.serial
        csr = tmp_path / "new.csr"
        csr.write_bytes(make_csr())
        args = ["--home", str(home.path), "renew", "--serial", serial, "--csr", str(csr)]
        template = catalogue["renewal of {serial} opens at {opens} ({days} days before it expires)"]
        # The whole message, its serial and days as this run made them, its time any time.
        expected = template.format(serial=serial, opens="\0", days=30).split("\0")
    elif case == "choice":
        # Click's own plural message (ngettext): Japanese has one form, for one choice or many.
        args = ["--home", str(home.path), "cert", "list", "--status", "bogus"]
        choices = "'valid', 'held', 'revoked', 'expired'"
        expected = [catalogue["{value!r} is not {choice}."].format(value="bogus", choices=choices).rstrip("。")]
    else:
        args = ["--home", str(home.path), "status", "--bogus"]
        expected = [catalogue["No such option {name!r}."].format(name="--bogus").rstrip("。")]
    before = row_counts(home)
    english, shown = run_cli(*args, env=EN), run_cli(*args, env=JA)
    assert shown.exit_code == english.exit_code != 0
    lines = shown.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(catalogue["kinko: error: {message}"].split("{")[0]), shown.stderr
    assert all(part in lines[0] for part in expected) and is_japanese(lines[0]), (lines[0], expected)
    assert shown.stdout == "" and row_counts(home) == before


@pytest.mark.parametrize("command", [["ca", "show"], ["cert", "list"], ["ledger", "verify"]])
def test_json_output_is_the_same_bytes_in_both_languages(home: Home, run_cli: Any, command: list[str]) -> None:
    args = ["--home", str(home.path), "--json", *command]
    english, shown = run_cli(*args, env=EN), run_cli(*args, env=JA)
    assert english.exit_code == shown.exit_code == 0
    assert shown.stdout == english.stdout and shown.stdout.startswith(("{", "["))


def test_labels_headings_and_states_are_japanese_and_aligned_by_display_width(
    home: Home, tmp_path: Path, run_cli: Any
) -> None:
    from kinko.ca.commands.render import display_width

    csr = tmp_path / "taro.csr"
    csr.write_bytes(make_csr())
    issued = run_cli("--home", str(home.path), "--json", "issue", "--csr", str(csr), "--name", "山田 太郎", env=EN)
    serial = json.loads(issued.stdout)["serial"]
    listed = run_cli("--home", str(home.path), "cert", "list", env=JA).stdout.splitlines()
    english = run_cli("--home", str(home.path), "cert", "list", env=EN).stdout.splitlines()
    assert english[0].split() == ["SERIAL", "STATUS", "PROFILE", "NOT_AFTER", "SUBJECT"]
    assert listed[0].split()[:2] == ["シリアル番号", "状態"]
    row = next(line for line in listed if line.startswith(serial))
    assert row.split()[1] == "有効"
    # Each column starts at the same display column in the heading and in the row (wide characters count two).
    for heading_word, cell in zip(listed[0].split()[1:3], row.split()[1:3], strict=True):
        assert display_width(listed[0][: listed[0].index(heading_word)]) == display_width(row[: row.index(cell)])
    shown = run_cli("--home", str(home.path), "cert", "show", serial, env=JA).stdout.splitlines()
    values = {line.split("  ")[0].strip(): line.split("  ", 1)[1].strip() for line in shown}
    assert values["シリアル番号"] == serial and values["状態"] == "有効"
    assert len({display_width(line) - display_width(line.split("  ", 1)[1].lstrip()) for line in shown}) == 1


@pytest.mark.parametrize("case", ["customer-exists", "config-refused", "unknown-profile"])
def test_a_store_or_configuration_refusal_is_one_japanese_line_with_the_english_exit_code(
    home: Home, tmp_path: Path, run_cli: Any, clock: FixedClock, case: str
) -> None:
    """Messages once written as f-strings, now templates: the store's Conflict, the configuration's
    ConfigError (also inside the refusal of `config apply` that wraps it), reached through the CLI, in
    Japanese with their values and the English exit code."""
    catalogue = japanese()
    if case == "customer-exists":
        Kinko(home, clock=clock, actor=current_login()).add_customer("C0001", "株式会社テスト")
        args = ["--home", str(home.path), "customer", "add", "C0001", "--name", "株式会社テスト"]
        expected = [catalogue["customer {customer} already exists"].format(customer="C0001")]
    elif case == "config-refused":
        profiles = tmp_path / "profiles.toml"
        extra = '\n[short]\nvalidity = "2w"\nkey_usage = ["digital_signature"]\n'
        profiles.write_bytes((home.path / "profiles.toml").read_bytes() + extra.encode())
        args = ["--home", str(home.path), "config", "apply", "--profiles", str(profiles)]
        validity = catalogue["profile {name!r}: validity {text!r} must look like 1y or 90d"]
        inner = validity.format(name="short", text="2w")
        expected = [catalogue["the new configuration is refused: {reason}"].format(reason=inner)]
    else:
        csr = tmp_path / "new.csr"
        csr.write_bytes(make_csr())
        args = ["--home", str(home.path), "issue", "--csr", str(csr), "--name", "山田 太郎", "--profile", "bogus"]
        template = catalogue["unknown profile {name!r}; profiles are: {known}"]
        expected = [template.split("{known}")[0].format(name="bogus")]
    before = row_counts(home)
    english, shown = run_cli(*args, env=EN), run_cli(*args, env=JA)
    assert shown.exit_code == english.exit_code != 0
    assert not is_japanese(english.stderr), english.stderr
    lines = shown.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(catalogue["kinko: error: {message}"].split("{")[0]), shown.stderr
    assert all(part in lines[0] for part in expected) and is_japanese(lines[0]), (lines[0], expected)
    assert shown.stdout == "" and row_counts(home) == before


def test_ledger_verify_says_its_findings_in_japanese_and_its_json_in_english(
    home: Home, tmp_path: Path, run_cli: Any
) -> None:
    """The notes of an offline verification, and the finding a broken ledger is refused with, are
    said in the reader's language (the signing time as people read it); `--json` keeps English."""
    catalogue = japanese()
    out = tmp_path / "ledger.csv"
    exported = run_cli("--home", str(home.path), "ledger", "export", "--format", "csv", "--out", str(out))
    assert exported.exit_code == 0, exported.output
    verify = ["ledger", "verify", "--export", str(out), "--ca-file", str(home.public_dir / "ca" / "root.pem")]
    shown, machine = run_cli(*verify, env=JA), run_cli("--json", *verify, env=JA)
    assert shown.exit_code == machine.exit_code == 0, shown.output
    notes = json.loads(machine.stdout)["notes"]
    assert notes[0].startswith("signed by ") and notes[1].startswith("head seq "), notes
    lines = shown.stdout.splitlines()
    signed, sealed = (
        catalogue["signed by {signer} at {time}"],
        catalogue["head seq {seq} sealed by the same signer ({file})"],
    )
    # Offline there is no home, so no bank's zone: the time is shown in UTC, with its offset.
    assert lines[1].endswith(signed.split("}")[-1]) and re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+00:00 ", lines[1])
    assert lines[2].startswith(sealed.split("{")[0]) and lines[2].endswith(f"（{out.name}.head.json）"), lines
    assert all(is_japanese(line) for line in lines), lines
    # A row edited behind Kinko's back: the refusal names the finding in Japanese, on one line.
    edited = database_cli(home, unguard(home) + " UPDATE ledger SET actor = 'mallory' WHERE seq = 2;")  # noqa: S608 - the attacker's edit
    assert edited.returncode == 0, edited.stderr
    english = run_cli("--home", str(home.path), "ledger", "verify", env=EN)
    refused = run_cli("--home", str(home.path), "ledger", "verify", env=JA)
    assert refused.exit_code == english.exit_code != 0
    assert "edited: the event's fields do not match its hash" in english.stderr, english.stderr
    finding = catalogue["edited: the event's fields do not match its hash"]
    expected = catalogue["seq {seq}: {problem}"].format(seq=2, problem=finding)
    assert refused.stderr.splitlines() == [catalogue["kinko: error: {message}"].format(message=expected)], (
        refused.stderr
    )
