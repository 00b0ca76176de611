"""The CA's configuration (kinko.toml, profiles.toml): shown to auditors, changed by admins
through Kinko and recorded in the ledger, never edited in an officer's account."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kinko.ca.commands.registry import Context, Operation, param
from kinko.ca.commands.render import Output, table
from kinko.ca.i18n import said

GROUPS = {"config": "The CA's configuration: kinko.toml and profiles.toml, changed only through Kinko."}

FILES = ("kinko.toml", "profiles.toml")


@dataclass(frozen=True, kw_only=True)
class ShowParams:
    file: str | None = param(
        "Print this file's text (to edit a copy for `config apply`).", None, argument=True, choices=FILES
    )


@dataclass(frozen=True)
class Shown:
    """Each file's digest and its ledger record, or one file's text."""

    files: list[dict[str, object]]
    text: str | None = None


def config_show(ctx: Context, p: ShowParams) -> Shown:
    """Show each configuration file's SHA-256 and the ledger event that recorded it, or one file's text."""
    from kinko.ca import configuration

    home = ctx.home()
    rows = configuration.summary(home)
    if p.file is None:
        return Shown(rows)
    return Shown([row for row in rows if row["file"] == p.file], (home.path / p.file).read_text("utf-8"))


def render_shown(result: Shown, out: Output, _p: object) -> None:
    if result.text is not None:
        out.emit({**result.files[0], "text": result.text}, result.text.rstrip("\n"))
        return
    rows = [{**row, "recorded": "yes" if row["recorded"] else "NO"} for row in result.files]
    out.emit(result.files, table(rows, ["file", "sha256", "recorded", "recorded_seq", "recorded_by", "recorded_at"]))


@dataclass(frozen=True, kw_only=True)
class ApplyParams:
    kinko_toml: bytes | None = param("The new kinko.toml.", None, flag="--config", reads="kinko.toml")
    profiles_toml: bytes | None = param("The new profiles.toml.", None, flag="--profiles", reads="profiles.toml")


@dataclass(frozen=True)
class Applied:
    """The files `config apply` changed and the ledger event recording them."""

    changed: list[str]
    sha256: dict[str, str]
    seq: int


def config_apply(ctx: Context, p: ApplyParams) -> Applied:
    """Check, then replace kinko.toml and/or profiles.toml; recorded in the ledger, in force for the next operation."""
    from kinko.ca import configuration
    from kinko.ca.errors import InputError

    new = {name: data for name, data in zip(FILES, (p.kinko_toml, p.profiles_toml), strict=True) if data is not None}
    if not new:
        raise InputError("give the new file(s) with --config and/or --profiles")
    change = configuration.apply(ctx.home(), new, ctx.login(), ctx.now_text())
    if change.changed and ctx.schedule is not None:
        ctx.schedule.trigger("config-watch")  # the schedule's own home reads the new files now
    return Applied(change.changed, change.sha256, change.seq)


def render_applied(result: Applied, out: Output, _p: object) -> None:
    if not result.changed:
        human = said("the configuration is already this: nothing changed")
    else:
        human = said(
            "applied {files} (ledger event {seq}); in force for the next operation",
            files=", ".join(result.changed),
            seq=result.seq,
        )
    out.emit({"changed": result.changed, "sha256": result.sha256, "seq": result.seq or None}, human)


OPERATIONS: list[Operation[Any, Any]] = [
    Operation("config show", ShowParams, config_show, render_shown, "auditor"),
    Operation("config apply", ApplyParams, config_apply, render_applied, "admin"),
]
