"""The hash-chained ledger: verify it, export it, checkpoint it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kinko.ca.commands.registry import Context, NoParams, Operation, param
from kinko.ca.commands.render import Output

if TYPE_CHECKING:
    from kinko.ca.audit import Export, Verification

GROUPS = {"ledger": "The hash-chained ledger: verify it, export it, checkpoint it."}


@dataclass(frozen=True, kw_only=True)
class VerifyParams:
    export_file: Path | None = param(
        "Verify an exported file offline (with FILE.sig and FILE.chain.pem beside it).",
        None,
        flag="--export",
        file_only=True,
    )
    ca_file: Path | None = param(
        "The bank's CA chain to trust for --export, instead of the FILE.chain.pem beside it.", None, file_only=True
    )


def auditor_unless_offline(p: VerifyParams) -> list[tuple[str, str]]:
    """Verifying the database needs the auditor role; verifying an export offline needs no home at all."""
    return [] if p.export_file is not None else [("ledger verify", "auditor")]


@dataclass(frozen=True)
class VerifyView:
    """What a verification checked, and the first thing that does not hold."""

    ok: bool
    events: int
    checkpoints: int
    notes: list[str]
    first_bad_seq: int | None
    problem: str | None

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
            problem.what if problem else None,
        )


def ledger_verify(ctx: Context, p: VerifyParams) -> VerifyView:
    """Recompute the chain and check every signed checkpoint; exit 0 only when all holds."""
    from kinko.ca import audit
    from kinko.ca.errors import InputError

    if p.export_file is not None:
        if not p.export_file.exists():
            raise InputError(f"export file {p.export_file} does not exist")
        result = audit.verify_export(p.export_file, p.ca_file)
    else:
        result = audit.verify_database(ctx.home())
    view = VerifyView.of(result)
    if not view.ok:
        raise audit.LedgerBroken(f"seq {view.first_bad_seq}: {view.problem}")
    return view


def render_verify(result: VerifyView, out: Output, _p: object) -> None:
    human = f"ledger OK: {result.events} events, {result.checkpoints} signed checkpoints"
    out.emit(dataclasses.asdict(result), human + "".join(f"\n{note}" for note in result.notes))


@dataclass(frozen=True, kw_only=True)
class ExportParams:
    fmt: str = param("The export format.", flag="--format", choices=("csv", "jsonl"))
    out: Path = param("Where to write the export.", file_only=True)
    since: str | None = param("Only events at or after this time (ISO 8601).", None)
    until: str | None = param("Only events at or before this time (ISO 8601).", None)
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

    @classmethod
    def of(cls, result: Export) -> ExportView:
        """The view of an export."""
        return cls(
            str(result.path),
            result.rows,
            result.sha256,
            str(result.signature) if result.signature else None,
            str(result.chain) if result.chain else None,
        )


def ledger_export(ctx: Context, p: ExportParams) -> ExportView:
    """Stream the ledger to CSV or JSON Lines; a full export is signed (FILE.sig) with the chain beside it."""
    from kinko.ca import audit
    from kinko.ca.clock import parse_user_time

    result = audit.export(
        ctx.home(),
        p.out,
        fmt=p.fmt,
        actor=ctx.login(),
        now=ctx.now(),
        since=parse_user_time(p.since, "since") if p.since else None,
        until=parse_user_time(p.until, "until") if p.until else None,
        customer=p.customer,
        action=p.action,
        excel=p.excel,
        progress=ctx.counter("events"),
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


def _emit(result: ExportView | Checkpoint, out: Output, _p: object) -> None:
    out.emit(dataclasses.asdict(result))


OPERATIONS: list[Operation[Any, Any]] = [
    Operation("ledger verify", VerifyParams, ledger_verify, render_verify, None, extra_roles=auditor_unless_offline),
    Operation("ledger export", ExportParams, ledger_export, _emit, "auditor"),
    Operation("ledger checkpoint", NoParams, ledger_checkpoint, _emit, "officer"),
]
