"""The Japanese catalogue: complete, not fuzzy, its placeholders those of its sources, compiled as
shipped, and extracted from today's sources (ca/locale/update.sh --check)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from kinko.ca.clock import showing_times_in, zone_named
from kinko.ca.i18n import N_, _, fill, language_from, render, speaking
from tests.conftest import ROOT

LOCALE = ROOT / "ca" / "locale"
PO = LOCALE / "ja" / "LC_MESSAGES" / "kinko.po"
MO = LOCALE / "ja" / "LC_MESSAGES" / "kinko.mo"
PLACEHOLDER = re.compile(r"\{[^{}]*\}|%\([a-z_]+\)[sd]|%[sd]")


def forms(path: Path) -> dict[tuple[str, ...], tuple[str, ...]]:
    """Each message's source forms (a plural's singular and plural) and its translated forms."""
    with path.open("rb") as handle:
        read = read_mo(handle) if path.suffix == ".mo" else read_po(handle)
    as_tuple = lambda value: tuple(map(str, value)) if isinstance(value, list | tuple) else (str(value),)  # noqa: E731
    return {as_tuple(m.id): as_tuple(m.string) for m in read if m.id}


def catalogue(path: Path) -> dict[str, str]:
    """Each source text (a plural's singular) and its translation (Japanese has one plural form)."""
    return {source[0]: text[0] for source, text in forms(path).items()}


def test_every_message_has_a_japanese_translation_that_is_not_fuzzy() -> None:
    with PO.open("rb") as handle:
        messages = [m for m in read_po(handle) if m.id]
    assert len(messages) > 250
    assert [m.id for m in messages if not m.string or (isinstance(m.string, tuple) and not all(m.string))] == []
    # Click's plurals (ngettext) are among them: a usage error must not stay English.
    assert any(isinstance(m.id, tuple) for m in messages)
    assert [m.id for m in messages if m.fuzzy] == []


def test_each_translation_keeps_its_source_s_placeholders() -> None:
    # A plural's one Japanese form is filled as its plural source is (Click passes every name to both).
    differ = {
        source: text
        for source, text in forms(PO).items()
        if any(sorted(PLACEHOLDER.findall(source[-1])) != sorted(PLACEHOLDER.findall(form)) for form in text)
    }
    assert differ == {}


def test_the_catalogue_is_extracted_from_today_s_sources_and_compiled_as_shipped() -> None:
    """A message added or changed without `sh ca/locale/update.sh` (and its translation) fails here."""
    checked = subprocess.run(["sh", str(LOCALE / "update.sh"), "--check"], capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stderr
    assert set(forms(LOCALE / "kinko.pot")) == set(forms(PO)), "the .po and the .pot hold different messages"
    assert forms(MO) == forms(PO), "the shipped .mo is not the compiled .po"


@pytest.mark.parametrize(
    ("environ", "language"),
    [
        ({}, "en"),
        ({"LANG": "ja_JP.UTF-8"}, "ja"),
        ({"LANG": "C.UTF-8", "LC_MESSAGES": "ja_JP.UTF-8"}, "ja"),
        ({"LANG": "ja_JP.UTF-8", "LC_ALL": "C"}, "en"),  # LC_ALL wins, as POSIX says
        ({"LANG": "ja_JP.UTF-8", "KINKO_LANG": "en"}, "en"),
        ({"LANG": "C", "KINKO_LANG": "ja"}, "ja"),
        ({"LANG": "ja_JP.UTF-8", "KINKO_LANG": "fr"}, "ja"),  # an unknown override is no override
    ],
)
def test_the_language_comes_from_kinko_lang_then_the_posix_locale(environ: dict[str, str], language: str) -> None:
    assert language_from(environ) == language


def test_a_template_is_translated_then_filled_and_english_stays_the_source() -> None:
    template = N_("renewal of {serial} opens at {opens} ({days} days before it expires)")
    params = {"serial": "0A1B", "opens": "2027-10-26T10:00:00Z", "days": 30}
    # The English text (logs, the ledger) keeps the stored UTC time; people read it in the bank's zone.
    assert fill(template, params) == "renewal of 0A1B opens at 2027-10-26T10:00:00Z (30 days before it expires)"
    with speaking("en"), showing_times_in(zone_named("Asia/Tokyo")):
        assert (
            render(template, params)
            == "renewal of 0A1B opens at 2027-10-26 19:00:00 +09:00 (30 days before it expires)"
        )
    with speaking("ja"), showing_times_in(zone_named("Asia/Tokyo")):
        shown = render(template, params)
        assert "0A1B" in shown and "2027-10-26 19:00:00 +09:00" in shown and "30" in shown
        assert any("\u3040" <= ch <= "\u9fff" for ch in shown), shown  # kana or kanji: Japanese
        assert _("a text no catalogue holds") == "a text no catalogue holds"


def test_every_error_class_is_a_keyword_of_the_extraction() -> None:
    """A message raised by an error class the extraction does not know would stay English unseen."""
    import ast

    bases: dict[str, set[str]] = {}
    for folder in ("ca", "ocsp", "crl"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef):
                    names = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                    bases[node.name] = names
    errors = {"KinkoError"}
    while grown := {name for name, of in bases.items() if of & errors} - errors:
        errors |= grown
    script = (LOCALE / "update.sh").read_text(encoding="utf-8")
    assert len(errors) > 10
    assert [name for name in sorted(errors) if not re.search(rf"\b{name}\b", script)] == []


def test_a_translation_that_cannot_be_filled_falls_back_to_english(monkeypatch: pytest.MonkeyPatch) -> None:
    import kinko.ca.i18n as i18n
    from kinko.ca.errors import InputError

    for broken in ("{serial.x}", "{serial[9]}", "{serial:d}", "{nothing}", "{0}", "{serial"):
        monkeypatch.setattr(i18n, "_", lambda message, broken=broken: broken)
        assert i18n.render("certificate {serial} is held", {"serial": "0A1B"}) == "certificate 0A1B is held"
    # A template whose brace was not doubled is kept as written, not a crash.
    error = InputError('JSON {"a": 1} is bad at {where}', where="x")
    assert str(error) == 'JSON {"a": 1} is bad at {where}'


def test_a_refusal_from_the_service_is_shown_in_the_client_s_language() -> None:
    """The service sends the template and its values; the client re-raises and shows it in its own."""
    from kinko.ca.errors import PolicyError
    from kinko.ca.service.client import raise_for

    template = "renewal of {serial} opens at {opens} ({days} days before it expires)"
    params = {"serial": "0A1B", "opens": "2027-10-26T10:00:00Z", "days": "30"}
    reply = {
        "exit": 1,
        "error": {
            "kinds": ["PolicyError", "KinkoError"],
            "message": template.format(**params),
            "template": template,
            "params": params,
        },
    }
    with pytest.raises(PolicyError) as raised:
        raise_for(reply)
    assert str(raised.value) == template.format(**params)
    # In the reader's language, and its time in the bank's zone (the message itself stays UTC).
    with speaking("ja"), showing_times_in(zone_named("Asia/Tokyo")):
        shown_params = {**params, "opens": "2027-10-26 19:00:00 +09:00"}
        assert raised.value.localized() == catalogue(PO)[template].format(**shown_params)
    # A template that does not make the message (another version's): the message, as sent.
    reply["error"]["template"] = "something else {serial}"
    with pytest.raises(PolicyError) as raised:
        raise_for(reply)
    assert raised.value.template == template.format(**params)


def test_two_keys_that_read_as_one_word_are_both_shown() -> None:
    from kinko.ca.commands.render import key_values, table

    with speaking("ja"):
        shown = key_values({"status": "valid", "state": "held"}).splitlines()
        assert [line.split() for line in shown] == [["状態", "有効"], ["状態", "保留"]]
        assert table([], ["serial"]) == "（なし）"
    with speaking("en"):
        assert key_values({"status": "valid", "serial": "0A"}).splitlines() == ["status  valid", "serial  0A"]
        assert table([], ["serial"]) == "(none)"


def test_a_state_a_finding_and_a_nested_phrase_are_said_in_the_reader_s_language() -> None:
    """A refusal's state word, a replay's contradiction and the phrase it nests are translated where
    people read them; str() (the ledger's, the logs' and --json's text) stays English."""
    from kinko.ca.errors import IntegrityError, PolicyError
    from kinko.ca.i18n import Phrase
    from kinko.ca.integrity import MADE_BY_NONE, Mismatch, refuse

    ja = catalogue(PO)
    template = "certificate {serial} is {status}; only a valid one is renewed"
    refused = PolicyError(template, serial="0A1B", status="revoked")
    assert str(refused) == "certificate 0A1B is revoked; only a valid one is renewed"
    with speaking("ja"):
        assert refused.localized() == ja[template].format(serial="0A1B", status=ja["revoked"])
    contradiction = Phrase("role is {role}, but {said}", {"role": "'admin'", "said": MADE_BY_NONE})
    error = refuse(Mismatch("officers", "mallory", contradiction), "certificate for C0001-A1")
    assert isinstance(error, IntegrityError) and error.what == "role is 'admin', but no ledger event made it"
    assert "officers mallory: role is 'admin', but no ledger event made it" in str(error)
    with speaking("ja"):
        inner = ja["role is {role}, but {said}"].format(role="'admin'", said=ja["no ledger event made it"])
        assert ja["{table} {key}: {what}"].format(table="officers", key="mallory", what=inner) in error.localized()
