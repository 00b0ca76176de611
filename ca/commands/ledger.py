"""The hash-chained ledger: verify it, export it, checkpoint it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kinko.ca.commands.registry import TIME_FORMAT, Context, NoParams, Operation, param
from kinko.ca.commands.render import Output
from kinko.ca.files import FileContents
from kinko.ca.i18n import N_, Phrase, said

if TYPE_CHECKING:
    from kinko.ca.audit import Export, Rotation, Verification
    from kinko.ca.outputs import Destination

GROUPS = {
    "ledger": "The hash-chained ledger: verify it, export it, checkpoint it.",
    "ledger signer": "The audit signer that seals checkpoints and signs exports.",
}


def _head_source(path: Path) -> Path:
    from kinko.ca.audit import head_source

    return head_source(path)


@dataclass(frozen=True, kw_only=True)
class VerifyParams:
    export_file: Path | None = param(
        "Verify an exported file offline (FILE.sig, FILE.head.json beside it), against your own trust anchor.",
        None,
        flag="--export",
        file_only=True,
    )
    ca_file: Path | None = param(
        "Your trust anchor for --export: the bank's root certificate (PEM), obtained on its own.",
        None,
        file_only=True,
    )
    root_fingerprint: str | None = param(
        "Your trust anchor for --export: the SHA-256 fingerprint of the bank's root (hex, colons allowed).", None
    )
    anchor: tuple[FileContents, ...] = param(
        "An earlier signed export (or its FILE.head.json) the ledger must extend unchanged; repeatable.",
        (),
        file_only=True,
        reads="head",
        read_from=_head_source,
    )
    allow_unsigned: bool = param("Accept an unsigned (filtered) export, checked row by row, with exit 0.", False)


def auditor_unless_offline(p: VerifyParams) -> list[tuple[str, str]]:
    """Verifying the database needs the auditor role; verifying an export offline needs no home at all."""
    return [] if p.export_file is not None else [("ledger verify", "auditor")]


@dataclass(frozen=True)
class VerifyView:
    """What a verification checked, and the first thing that does not hold."""

    ok: bool
    events: int
    checkpoints: int
    notes: list[Phrase]
    first_bad_seq: int | None
    problem: Phrase | None

    @classmethod
    def of(cls, result: Verification) -> VerifyView:
        """The view of a verification."""
        problem = result.problem
        return cls(
            result.ok,
            result.events,
            result.checkpoints,
            result.notes,
            problem.seq if problem else None,
            problem.finding if problem else None,
        )

    def as_json(self) -> dict[str, object]:
        """The machine's view: every finding and note in English, whatever the reader's language."""
        return {
            "ok": self.ok,
            "events": self.events,
            "checkpoints": self.checkpoints,
            "notes": [str(note) for note in self.notes],
            "first_bad_seq": self.first_bad_seq,
            "problem": None if self.problem is None else str(self.problem),
        }


def ledger_verify(ctx: Context, p: VerifyParams) -> VerifyView:
    """Recompute the chain, check every signed checkpoint and each --anchor; exit 0 only when all holds."""
    from kinko.ca import audit
    from kinko.ca.errors import InputError

    anchors = audit.read_anchors(p.anchor)
    if p.export_file is not None:
        if not p.export_file.exists():
            raise InputError("export file {path} does not exist", path=p.export_file)
        result = audit.verify_export(
            p.export_file,
            p.ca_file,
            root_fingerprint=p.root_fingerprint,
            anchors=anchors,
            allow_unsigned=p.allow_unsigned,
        )
    else:
        if p.ca_file is not None or p.root_fingerprint is not None or p.allow_unsigned:
            raise InputError("--ca-file, --root-fingerprint and --allow-unsigned go with --export")
        result = audit.verify_database(ctx.home(), anchors)
    view = VerifyView.of(result)
    if not view.ok:
        raise audit.LedgerBroken("seq {seq}: {problem}", seq=view.first_bad_seq, problem=view.problem)
    return view


def render_verify(result: VerifyView, out: Output, _p: object) -> None:
    # An export carries no checkpoints (its CMS signature covers it, named in the notes).
    if result.checkpoints == 1:
        human = said("ledger OK: {events} events, 1 signed checkpoint", events=result.events)
    elif result.checkpoints:
        human = said(
            "ledger OK: {events} events, {checkpoints} signed checkpoints",
            events=result.events,
            checkpoints=result.checkpoints,
        )
    else:
        human = said("ledger OK: {events} events", events=result.events)
    out.emit(result.as_json(), human + "".join(f"\n{note.localized()}" for note in result.notes))


@dataclass(frozen=True, kw_only=True)
class ExportParams:
    fmt: str = param("The export format.", flag="--format", choices=("csv", "jsonl"))
    out: Path = param("Where to write the export.", file_only=True)
    since: str | None = param(
        f"Only events at or after this time ({TIME_FORMAT}).",
        None,
    )
    until: str | None = param(
        f"Only events at or before this time ({TIME_FORMAT}).",
        None,
    )
    customer: str | None = param("Only events about this customer.", None)
    action: str | None = param("Only events with this action (e.g. certificate.revoked).", None)
    excel: bool = param("CSV with a UTF-8 byte order mark, so Excel shows Japanese text.", False)


@dataclass(frozen=True)
class ExportView:
    """A written export and its companions."""

    file: str
    rows: int
    sha256: str
    signature: str | None
    chain: str | None
    head: str | None

    @classmethod
    def of(cls, result: Export) -> ExportView:
        """The view of an export."""
        return cls(
            str(result.path),
            result.rows,
            result.sha256,
            str(result.signature) if result.signature else None,
            str(result.chain) if result.chain else None,
            str(result.head) if result.head else None,
        )


def _export_files(p: ExportParams) -> list[Destination]:
    from kinko.ca.audit import export_destinations

    return export_destinations(p.out)


def ledger_export(ctx: Context, p: ExportParams) -> ExportView:
    """Stream the ledger to CSV or JSON Lines; a full export is signed (FILE.sig) with the chain beside it."""
    from kinko.ca import audit
    from kinko.ca.clock import parse_user_time

    if ctx.outputs is None:
        raise RuntimeError("ledger export runs with the output files its caller opened")
    result = audit.export_to(
        ctx.home(),
        ctx.outputs,
        p.out,
        fmt=p.fmt,
        actor=ctx.login(),
        now=ctx.now(),
        since=parse_user_time(p.since, "since") if p.since else None,
        until=parse_user_time(p.until, "until") if p.until else None,
        customer=p.customer,
        action=p.action,
        excel=p.excel,
        progress=ctx.counter(N_("events")),
    )
    return ExportView.of(result)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint sealed now."""

    seq: int
    head_hash: str
    time: str


def ledger_checkpoint(ctx: Context, _p: NoParams) -> Checkpoint:
    """Sign the ledger's current head now."""
    from kinko.ca import audit

    return Checkpoint(**audit.checkpoint(ctx.home(), ctx.login(), ctx.now()))


@dataclass(frozen=True)
class RotationView:
    """The audit signer appointed, and the one retired."""

    appointed: str
    not_after: str
    retired: str | None
    key_deleted: bool

    @classmethod
    def of(cls, result: Rotation) -> RotationView:
        """The view of a rotation."""
        return cls(result.appointed, result.not_after, result.retired, result.key_deleted)


def ledger_signer_rotate(ctx: Context, _p: NoParams) -> RotationView:
    """Appoint a new audit signer and retire the current one (its key file is deleted)."""
    from kinko.ca import audit

    return RotationView.of(audit.rotate_signer(ctx.home(), ctx.login(), ctx.now()))


def _emit(result: ExportView | Checkpoint | RotationView, out: Output, _p: object) -> None:
    out.emit(dataclasses.asdict(result))


OPERATIONS: list[Operation[Any, Any]] = [
    Operation(
        "ledger verify",
        VerifyParams,
        ledger_verify,
        render_verify,
        None,
        extra_roles=auditor_unless_offline,
        runs_here=lambda p: p.export_file is not None,
    ),
    Operation(
        "ledger export",
        ExportParams,
        ledger_export,
        _emit,
        "auditor",
        writes=_export_files,
    ),
    Operation("ledger checkpoint", NoParams, ledger_checkpoint, _emit, "officer"),
    Operation("ledger signer rotate", NoParams, ledger_signer_rotate, _emit, "admin"),
]
