"""The language people read Kinko in: English (the source) or Japanese, from gettext catalogues.

Only text for people is translated: help, refusals, labels and statuses. `--json`, the ledger,
exports and machine log lines stay English whatever the reader's locale. The language is chosen
per process from the environment, and per request in the CA service (the caller's, not the
service's: it travels with the request), so it is held in a context variable.
"""

from __future__ import annotations

import contextlib
import functools
import gettext as gettext_module
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

DOMAIN = "kinko"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES = ("en", "ja")
LANGUAGE_ENV = "KINKO_LANG"

_language: ContextVar[str | None] = ContextVar("kinko_language", default=None)


def language_from(environ: Mapping[str, str]) -> str:
    """KINKO_LANG (ja or en) if set, else POSIX order LC_ALL, LC_MESSAGES, LANG: Japanese for ja_*."""
    chosen = environ.get(LANGUAGE_ENV, "").strip().lower()
    if chosen in LANGUAGES:
        return chosen
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "")
        if value:
            return "ja" if value.lower().startswith("ja") else "en"
    return "en"


def current() -> str:
    """The language of the text being made now."""
    return _language.get() or language_from(os.environ)


@contextlib.contextmanager
def speaking(language: str) -> Iterator[None]:
    """Text made inside is in `language` (a service request in its caller's language)."""
    token = _language.set(language if language in LANGUAGES else "en")
    try:
        yield
    finally:
        _language.reset(token)


@functools.cache
def _catalogue(language: str) -> gettext_module.NullTranslations:
    return gettext_module.translation(DOMAIN, localedir=LOCALE_DIR, languages=[language], fallback=True)


def preload() -> None:
    """Loads every catalogue now: for a process about to drop its privileges (a test's forked
    child), whose interpreter's own modules, which gettext imports at its first lookup, it may then
    no longer read."""
    for language in LANGUAGES:
        _catalogue(language)


def _(message: str) -> str:
    """`message` (an English source text) in the current language; itself where none is known."""
    if not message:
        return message
    return _catalogue(current()).gettext(message)


def N_(message: str) -> str:  # gettext's conventional name: a keyword for extraction
    """Marks a source text for extraction, translated later where it is shown."""
    return message


STATES = (
    N_("valid"),
    N_("revoked"),
    N_("held"),
    N_("on-hold"),
    N_("pending"),
    N_("renewal-open"),
    N_("expired"),
    N_("expired-reacquirable"),
    N_("reissue-required"),
    N_("active"),
    N_("suspended"),
    N_("terminated"),
)
# A holder's role in its customer, in the bank's words (an officer's role is a CLI value: as typed).
HOLDER_ROLES = (N_("administrator"), N_("user"))
# Which keys' values people read as words of their language.
WORD_VALUES = {"status": STATES, "state": STATES, "role": HOLDER_ROLES}


def shown_word(name: str, value: object) -> object:
    """A value named `name` as people read it: a state or a holder's role in their language, a
    time in the bank's zone (with its offset), anything else as it is."""
    from kinko.ca.clock import shown_if_time

    if isinstance(value, str) and value in WORD_VALUES.get(name, ()):
        return _(value)
    return shown_if_time(value)


def fill(template: str, params: Mapping[str, object]) -> str | None:
    """A template filled in with its parameters (as written when there are none); None when it
    cannot be (a brace not doubled, a catalogue's placeholder typo, a template from elsewhere)."""
    if not params:
        return template
    try:
        return template.format(**params)
    except Exception:  # any formatting error: the caller falls back
        return None


def render(template: str, params: Mapping[str, object]) -> str:
    """A message template translated, then filled in with its parameters (a time as people read
    it, in the bank's zone); the English source where the translation cannot be filled, the bare
    template where neither can."""
    # A phrase or an error inside (the finding or the refusal a wider one names) is said in the same language.
    shown = {
        name: value.localized() if isinstance(value, Sayable) else shown_word(name, value)
        for name, value in params.items()
    }
    return fill(_(template), shown) or fill(template, shown) or template


def said(template: str, /, **params: object) -> str:
    """A sentence for people (a command's summary), as a refusal is made: `template` is the English
    source in the catalogue, filled in with `params` in the reader's language."""
    return render(template, params)


@runtime_checkable
class Sayable(Protocol):
    """A sentence that can be said in the reader's language: a Phrase, a Kinko error."""

    def localized(self) -> str: ...


@dataclass(frozen=True)
class Phrase:
    """A sentence kept as its template and values, to be written later: English where it is
    evidence or a machine's (str(), JSON), the reader's language where people read it."""

    template: str
    params: Mapping[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return fill(self.template, self.params) or self.template

    def localized(self) -> str:
        """The sentence in the reader's language, its times in the bank's zone."""
        return render(self.template, self.params)


@contextlib.contextmanager
def click_speaking() -> Iterator[None]:
    """Click's own texts (Usage:, Options, its usage errors) come through stdlib gettext's global
    domain and the LANGUAGE variable: Kinko's catalogue, in the language chosen here (KINKO_LANG
    included), for as long as the command runs (in a test's process, not after it)."""
    gettext_module.bindtextdomain(DOMAIN, str(LOCALE_DIR))
    domain = gettext_module.textdomain(DOMAIN)
    before = os.environ.get("LANGUAGE")
    os.environ["LANGUAGE"] = current()
    try:
        yield
    finally:
        gettext_module.textdomain(domain)
        if before is None:
            os.environ.pop("LANGUAGE", None)
        else:
            os.environ["LANGUAGE"] = before
