"""The Japanese catalogue: complete, not fuzzy, its placeholders those of its sources, compiled as
shipped, and extracted from today's sources (ca/locale/update.sh --check)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from kinko.ca.i18n import N_, _, language_from, render, speaking
from tests.conftest import ROOT

LOCALE = ROOT / "ca" / "locale"
PO = LOCALE / "ja" / "LC_MESSAGES" / "kinko.po"
MO = LOCALE / "ja" / "LC_MESSAGES" / "kinko.mo"
PLACEHOLDER = re.compile(r"\{[^{}]*\}|%\([a-z_]+\)[sd]|%[sd]")


def catalogue(path: Path) -> dict[str, str]:
    with path.open("rb") as handle:
        read = read_mo(handle) if path.suffix == ".mo" else read_po(handle)
    return {str(m.id): str(m.string) for m in read if m.id}


def test_every_message_has_a_japanese_translation_that_is_not_fuzzy() -> None:
    with PO.open("rb") as handle:
        messages = [m for m in read_po(handle) if m.id]
    assert len(messages) > 250
    assert [m.id for m in messages if not m.string] == []
    assert [m.id for m in messages if m.fuzzy] == []


def test_each_translation_keeps_its_source_s_placeholders() -> None:
    differ = {
        source: text
        for source, text in catalogue(PO).items()
        if sorted(PLACEHOLDER.findall(source)) != sorted(PLACEHOLDER.findall(text))
    }
    assert differ == {}


def test_the_catalogue_is_extracted_from_today_s_sources_and_compiled_as_shipped() -> None:
    """A message added or changed without `sh ca/locale/update.sh` (and its translation) fails here."""
    checked = subprocess.run(["sh", str(LOCALE / "update.sh"), "--check"], capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stderr
    with (LOCALE / "kinko.pot").open("rb") as handle:
        sources = {str(m.id) for m in read_po(handle) if m.id}
    assert sources == set(catalogue(PO)), "the .po and the .pot hold different messages"
    assert catalogue(MO) == catalogue(PO), "the shipped .mo is not the compiled .po"


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
    with speaking("en"):
        assert render(template, params) == "renewal of 0A1B opens at 2027-10-26T10:00:00Z (30 days before it expires)"
    with speaking("ja"):
        shown = render(template, params)
        assert "0A1B" in shown and "2027-10-26T10:00:00Z" in shown and "30" in shown
        assert any("\u3040" <= ch <= "\u9fff" for ch in shown), shown  # kana or kanji: Japanese
        assert _("a text no catalogue holds") == "a text no catalogue holds"
