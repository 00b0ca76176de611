"""Rendering results for people and machines: `--json`, key/value lists, tables, CSV, files.

Results are frozen dataclasses; their JSON is `dataclasses.asdict`, or their own `to_json()`
where the document differs from the fields. Human text is built from that same JSON data, so
it reads the same whether the result came from this process or over the service's socket.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from kinko.ca.errors import InputError
from kinko.ca.i18n import N_, _, shown_word

JSONData = Any  # what json.dumps takes: dicts, lists, strings, numbers, booleans, None


def to_json(value: object) -> JSONData:
    """The JSON data of a result: its `to_json()`, a dataclass's fields, or lists of those."""
    to_json_method = getattr(value, "to_json", None)
    if callable(to_json_method):
        return to_json_method()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(value)
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    return value


def plain(value: object) -> JSONData:
    """`dataclasses.asdict` without its deep copies (a third of a service request's time): results
    are frozen, so their fields are shared, not copied."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


class Output:
    """Where a command's result goes: standard output as JSON (--json) or as text for people, and
    the files the caller asked for (--out). The CA service captures both and sends them to its
    client, which prints and writes them as the caller's own account."""

    def __init__(self, as_json: bool, echo: Callable[..., None] = click.echo) -> None:
        self.as_json = as_json
        self._echo = echo

    def write_file(self, path: Path, text: str) -> None:
        """Writes a file the caller named."""
        write_output(path, text)

    def emit(self, data: JSONData, human: str | None = None) -> None:
        """JSON with --json, else the human text (or a key/value list of the data)."""
        if self.as_json:
            self._echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
        elif human is not None:
            self._echo(human)
        else:
            self._echo(key_values(data))

    def text(self, text: str, newline: bool = True) -> None:
        """Plain text on standard output, whatever the mode (a PEM, a CSV)."""
        self._echo(text, nl=newline)

    def rows(self, rows: list[dict[str, Any]], columns: list[str], as_csv: bool = False) -> None:
        """A list of rows: CSV, JSON, or a table."""
        if as_csv:
            self.text(csv_text(rows, columns), newline=False)
        else:
            self.emit(rows, table(rows, columns))


# The labels, headings and states that key/value lists and tables show, for the catalogue: shown
# in the reader's language (the JSON keys and values stay as they are).
LABELS = (
    N_("serial"),
    N_("subject"),
    N_("issuer"),
    N_("status"),
    N_("state"),
    N_("profile"),
    N_("not before"),
    N_("not after"),
    N_("sha256 fingerprint"),
    N_("written to"),
    N_("revocation reason"),
    N_("revoked at"),
    N_("held at"),
    N_("invalidity date"),
    N_("reported at"),
    N_("received at"),
    N_("recorded at"),
    N_("suspected since"),
    N_("crl"),
    N_("subscriber"),
    N_("subscriber id"),
    N_("customer"),
    N_("name"),
    N_("kind"),
    N_("role"),
    N_("login"),
    N_("added at"),
    N_("added by"),
    N_("expires at"),
    N_("code"),
    N_("reason"),
    N_("note"),
    N_("id"),
    N_("number"),
    N_("this update"),
    N_("next update"),
    N_("entries"),
    N_("created at"),
    N_("status changed at"),
    N_("days left"),
    N_("email"),
    N_("issued at"),
    N_("spki sha256"),
    N_("as of"),
    N_("terminate at"),
    N_("key"),
    N_("file"),
    N_("sha256"),
    N_("recorded"),
    N_("recorded seq"),
    N_("recorded by"),
    N_("ocsp"),
    N_("ca issuers"),
    N_("delta crl"),
)


def label(key: str) -> str:
    """A JSON key as people read it: words, in their language."""
    return _(key.replace("_", " "))


def shown_value(key: str, value: object) -> str:
    """A value as people read it: a state in their language, a time in the bank's zone (with its
    offset), anything else as it is."""
    return str(shown_word(key, value))


def key_values(data: Mapping[str, Any]) -> str:
    """Aligned `key: value` lines, skipping empty values."""
    # Pairs, not a dict: two keys may read as one word in a language (status, state: 状態).
    shown = [(label(k), shown_value(k, v)) for k, v in data.items() if v not in (None, "")]
    width = max((display_width(k) for k, _v in shown), default=0)
    return "\n".join(f"{k}{' ' * (width - display_width(k))}  {v}" for k, v in shown)


def pick(data: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The named entries of a JSON object, in that order."""
    return {key: data[key] for key in keys}


def table(rows: Sequence[Mapping[str, object]], columns: list[str]) -> str:
    """A plain text table with a header, aligned for wide (Japanese) characters too."""
    if not rows:
        return _("(none)")
    cells = [["" if row.get(c) is None else shown_value(c, row.get(c)) for c in columns] for row in rows]
    headings = [heading(c) for c in columns]
    widths = [max(display_width(h), *(display_width(r[i]) for r in cells)) for i, h in enumerate(headings)]

    def line(values: list[str]) -> str:
        padded = (v + " " * (w - display_width(v)) for v, w in zip(values, widths, strict=True))
        return "  ".join(padded).rstrip()

    return "\n".join([line(headings), *(line(r) for r in cells)])


def heading(column: str) -> str:
    """A table's column heading: SERIAL in English, its word in the reader's language otherwise."""
    words = column.replace("_", " ")
    translated = _(words)
    return column.upper() if translated == words else translated


def display_width(text: str) -> int:
    """Columns a string takes on a terminal (wcwidth: wide characters two, combining marks none)."""
    from wcwidth import wcswidth

    width = wcswidth(text)
    return width if width >= 0 else len(text)  # a control character: counted as one column each


def csv_text(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Rows as CSV with a header line; text cells a spreadsheet would run as a formula are neutralised."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: neutralise_cell(v) for k, v in row.items()} for row in rows)
    return buffer.getvalue()


FORMULA_LEADS = frozenset("=+-@\t\r")


def neutralise_cell(value: object) -> object:
    """A text cell starting with = + - @ TAB or CR gets a leading ' (OWASP's CSV injection advice):
    a holder named =HYPERLINK(...) is then shown, not run, by Excel or LibreOffice."""
    if isinstance(value, str) and value[:1] in FORMULA_LEADS:
        return "'" + value
    return value


def write_output(path: Path, text: str, mode: int = 0o644) -> None:
    """Writes an output file with an explicit mode (whatever the umask), replacing it atomically and
    never writing through a symlink; OS errors become one-line messages."""
    from kinko.ca.files import write_atomically

    try:
        write_atomically(path, text.encode("utf-8"), mode)
    except OSError as exc:
        raise InputError("cannot write {path}: {reason}", path=path, reason=exc.strerror) from None
