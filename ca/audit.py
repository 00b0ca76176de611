"""What auditors run: verify the ledger (chain and signed checkpoints), export it with a
detached signature, and verify an export offline without the database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from kinko.ca import cms, ledger
from kinko.ca.clock import to_text
from kinko.ca.errors import InputError, KinkoError, StorageError
from kinko.ca.home import Home
from kinko.ca.store import Reader

Progress = Callable[[int], None]


class LedgerBroken(KinkoError):
    """The ledger or an export does not verify."""


@dataclass(frozen=True)
class Verification:
    """The outcome of a verification: what was checked, and the first thing that does not hold."""

    events: int
    checkpoints: int
    problem: ledger.ChainProblem | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None


def _verify_signature(certificate: x509.Certificate, signature: bytes, message: bytes) -> bool:
    public_key = certificate.public_key()
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
    except InvalidSignature:
        return False
    return True


def verify_database(home: Home, replay: bool = True) -> Verification:
    """Recomputes the chain, checks every checkpoint, then replays the events against the tables
    (`replay=False`: the chain and checkpoints only, as a benchmark's reference): names the first bad seq."""
    store = home.readonly_store
    try:
        checkpoints = store.checkpoints()
    except StorageError as exc:
        return Verification(0, 0, ledger.ChainProblem(0, str(exc)))
    wanted = {seq for seq, *_ in checkpoints}
    walk = ledger.walk_encoded(store.ledger_chain(), store.ledger_event, wanted)
    if walk.problem is not None:
        return Verification(walk.count, len(checkpoints), walk.problem)
    problem = _check_checkpoints(store, checkpoints, walk.heads or {}, walk.last_seq)
    if problem is None and replay:
        # The chain holds: now the tables must hold what its events say.
        from kinko.ca import replay as replaying

        state = replaying.replay(store.ledger_events(), retention_days=home.config.crl.retention_days)
        mismatch = replaying.compare(store, state)
        if mismatch is not None:
            problem = ledger.ChainProblem(mismatch.seq or 0, str(mismatch))
    return Verification(walk.count, len(checkpoints), problem)


def _check_checkpoints(
    store: Reader, checkpoints: list[tuple[int, str, str, bytes, str]], heads: dict[int, str], last_seq: int
) -> ledger.ChainProblem | None:
    """The first checkpoint that does not hold, or the first event no checkpoint covers."""
    covered = max((seq for seq, *_ in checkpoints), default=0)
    if covered > last_seq:
        return ledger.ChainProblem(
            last_seq + 1, f"truncated after checkpoint {covered}: events {last_seq + 1}..{covered} are missing"
        )
    signers: dict[str, x509.Certificate] = {}
    appointed = store.audit_signers()
    for seq, head_hash, time, signature, signer in checkpoints:
        if heads.get(seq) != head_hash:
            return ledger.ChainProblem(seq, f"checkpoint {seq} names a different head hash: the chain was rewritten")
        if signer not in signers:
            record = store.certificate(signer)
            # Only the CA's audit signers seal the ledger; any other key Kinko ever certified does not count.
            if record is None or record.profile != "audit-signer" or signer not in appointed:
                return ledger.ChainProblem(seq, f"checkpoint {seq} is not signed by an audit signer ({signer})")
            signers[signer] = x509.load_der_x509_certificate(record.der)
        if not _verify_signature(signers[signer], signature, ledger.checkpoint_message(seq, head_hash, time)):
            return ledger.ChainProblem(seq, f"checkpoint {seq}: the signature does not verify (forged or edited)")
    if last_seq > covered:
        return ledger.ChainProblem(
            covered + 1,
            f"events {covered + 1}..{last_seq} follow the last signed checkpoint ({covered}): "
            "appended outside Kinko, or the checkpoint was removed",
        )
    return None


@dataclass(frozen=True)
class Export:
    """A written export and its companions."""

    path: Path
    rows: int
    sha256: str
    signature: Path | None
    chain: Path | None


def export(
    home: Home,
    out: Path,
    *,
    fmt: str,
    actor: str,
    now: dt.datetime,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    customer: str | None = None,
    action: str | None = None,
    excel: bool = False,
    progress: Progress | None = None,
) -> Export:
    """Streams the ledger to CSV or JSON Lines; a full export is also signed (FILE.sig, FILE.chain.pem)."""
    if fmt not in ("csv", "jsonl"):
        raise InputError(f"unknown export format {fmt!r}; use csv or jsonl")
    if excel and fmt != "csv":
        raise InputError("--excel writes CSV; use it with --format csv")
    full = since is None and until is None and customer is None and action is None
    lines = home.readonly_store.ledger_export_lines(fmt, to_text(since), to_text(until), customer, action)
    rows = 0
    try:
        with open(out, "w", encoding="utf-8-sig" if excel else "utf-8", newline="") as handle:
            if fmt == "csv":
                handle.write(ledger.CSV_HEADER)
            batch: list[str] = []
            for line in lines:
                batch.append(line)
                if len(batch) == 10000:  # one write per batch: per-line writes cost a sixth more
                    handle.write("".join(batch))
                    rows += len(batch)
                    batch.clear()
                    if progress is not None:
                        progress(rows)
            handle.write("".join(batch))
            rows += len(batch)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror}") from None
    digest = cms.file_sha256(out)
    signature = chain = None
    if not full:
        # A filtered export is not signed: companions left by an earlier full export would
        # make it look tampered with.
        for stale in (out.with_name(out.name + ".sig"), out.with_name(out.name + ".chain.pem")):
            stale.unlink(missing_ok=True)
    if full:
        signer = home.ca_certificate("audit")
        issuers = [
            home.ca_certificate(role) for role in (["root"] if home.config.ca.single_tier else ["issuing", "root"])
        ]
        signature = out.with_name(out.name + ".sig")
        signature.write_bytes(cms.sign_detached(digest, home.key("audit"), signer, issuers, now))
        from cryptography.hazmat.primitives.serialization import Encoding

        chain = out.with_name(out.name + ".chain.pem")
        chain.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in issuers))
    with home.store.transaction(actor, to_text(now) or "") as tx:
        tx.append_event(
            "ledger.exported",
            details={
                "format": fmt,
                "rows": rows,
                "sha256": digest.hex(),
                "signed": full,
                "since": to_text(since),
                "until": to_text(until),
                "customer": customer,
                "action": action,
                "file": out.name,
            },
        )
    return Export(out, rows, digest.hex(), signature, chain)


def verify_export(path: Path, ca_file: Path | None = None) -> Verification:
    """Verifies an export offline: its detached signature (if any) and the chain's own hashes.

    The signature is checked against `ca_file` (the bank's CA chain, obtained on its own) or,
    without it, against the FILE.chain.pem written beside the export: then the auditor should
    compare that root's fingerprint with the bank's published one."""
    notes = []
    signature = path.with_name(path.name + ".sig")
    chain_file = ca_file or path.with_name(path.name + ".chain.pem")
    try:
        if signature.exists():
            if not chain_file.exists():
                raise LedgerBroken(f"{chain_file} is missing: it holds the CA chain the signature is checked against")
            trusted = x509.load_pem_x509_certificates(chain_file.read_bytes())
            try:
                signer = cms.verify_detached(signature.read_bytes(), cms.file_sha256(path), trusted)
            except ValueError as exc:
                return Verification(0, 0, ledger.ChainProblem(0, f"signature: {exc}"))
            notes.append(f"signed by {signer.subject.rfc4514_string()}")
        else:
            notes.append("no .sig file: a filtered export is checked row by row, not as a whole")
        with open(path, encoding="utf-8", newline="") as handle:
            events = ledger.read_export(handle)
            if signature.exists():
                count = 0

                def counted(items: Iterator[ledger.Event]) -> Iterator[ledger.Event]:
                    nonlocal count
                    for item in items:
                        count += 1
                        yield item

                problem = ledger.verify_chain(counted(events))
                return Verification(count, 0, problem, notes)
            count = 0
            for event in events:
                count += 1
                if ledger.event_hash(event.prev_hash, event) != event.hash:
                    return Verification(
                        count, 0, ledger.ChainProblem(event.seq, "edited: fields do not match hash"), notes
                    )
            return Verification(count, 0, None, notes)
    except (OSError, ValueError, UnicodeDecodeError, TypeError, KeyError) as exc:
        raise InputError(f"cannot read export {path}: {type(exc).__name__}: {exc}") from None


def checkpoint(home: Home, actor: str, now: dt.datetime) -> dict[str, Any]:
    """Seals the current head now (every transaction already ends with a checkpoint)."""
    with home.store.transaction(actor, to_text(now) or "") as tx:
        event = tx.append_event("ledger.checkpoint", details={})
    return {"seq": event.seq, "head_hash": event.hash, "time": event.time}
