"""What auditors run: verify the ledger (chain and signed checkpoints), export it with a
detached signature, and verify an export offline without the database."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
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
from kinko.ca.files import FileContents
from kinko.ca.home import Home
from kinko.ca.i18n import Phrase
from kinko.ca.outputs import Destination, OutputFile, Outputs
from kinko.ca.serials import format_serial
from kinko.ca.signers import AuditSigners
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
    notes: list[Phrase] = field(default_factory=list)

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


def verify_database(home: Home, anchors: tuple[Head, ...] = (), replay: bool = True) -> Verification:
    """Recomputes the chain, checks every checkpoint (signed by a signer the ledger appoints) and
    that the ledger extends each anchor unchanged, then replays the events against the tables
    (`replay=False`: all but the replay, as a benchmark's reference): names the first bad seq."""
    store = home.readonly_store
    with store.reading():
        return verify_snapshot(home, store, anchors, replay)


def verify_snapshot(home: Home, store: Reader, anchors: tuple[Head, ...] = (), replay: bool = True) -> Verification:
    """`verify_database` inside a snapshot the caller holds (`store.reading()`)."""
    try:
        checkpoints = store.checkpoints()
    except StorageError as exc:
        return Verification(0, 0, ledger.ChainProblem(0, Phrase(exc.template, exc.params)))
    wanted = {seq for seq, *_ in checkpoints} | {anchor.seq for anchor in anchors}
    walk = ledger.walk_encoded(store.ledger_chain(), store.ledger_event, wanted)
    if walk.problem is not None:
        return Verification(walk.count, len(checkpoints), walk.problem)
    problem = check_anchors(anchors, walk.heads or {}, walk.last_seq, Phrase("the ledger"))
    if problem is None:
        signers = AuditSigners(store.signer_events())
        problem = _check_checkpoints(store, checkpoints, walk.heads or {}, walk.last_seq, signers)
    if problem is None and replay:
        # The chain holds: now the tables must hold what its events say (in the same snapshot).
        from kinko.ca import replay as replaying

        state = replaying.replay(store.ledger_events(), retention_days=home.config.crl.retention_days)
        mismatch = replaying.compare(store, state)
        if mismatch is not None:
            problem = ledger.ChainProblem(mismatch.seq or 0, mismatch.said())
    notes = [_extends(anchor) for anchor in anchors]
    return Verification(walk.count, len(checkpoints), problem, notes if problem is None else [])


def check_anchors(
    anchors: tuple[Head, ...], heads: dict[int, str], last_seq: int, what: Phrase
) -> ledger.ChainProblem | None:
    """The first anchor (an earlier export's head) that the verified chain does not extend unchanged."""
    for anchor in sorted(anchors, key=lambda a: a.seq):
        if anchor.seq > last_seq:
            return ledger.ChainProblem(
                anchor.seq,
                Phrase(
                    "rolled back: {what} ends at seq {last_seq}, before anchor seq {seq} ({source})",
                    {"what": what, "last_seq": last_seq, "seq": anchor.seq, "source": anchor.source},
                ),
            )
        if heads.get(anchor.seq) != anchor.head_hash:
            return ledger.ChainProblem(
                anchor.seq,
                Phrase(
                    "rewritten: seq {seq} differs from anchor {source} (another past)",
                    {"seq": anchor.seq, "source": anchor.source},
                ),
            )
    return None


def _check_checkpoints(
    store: Reader,
    checkpoints: list[tuple[int, str, str, bytes, str]],
    heads: dict[int, str],
    last_seq: int,
    signers: AuditSigners,
) -> ledger.ChainProblem | None:
    """The first checkpoint that does not hold, or the first event no checkpoint covers."""
    covered = max((seq for seq, *_ in checkpoints), default=0)
    if covered > last_seq:
        return ledger.ChainProblem(
            last_seq + 1,
            Phrase(
                "truncated after checkpoint {covered}: events {first}..{covered} are missing",
                {"covered": covered, "first": last_seq + 1},
            ),
        )
    certificates: dict[str, x509.Certificate] = {}
    fingerprints: dict[str, str] = {}
    begins = 1
    for seq, head_hash, time, signature, signer in checkpoints:
        if heads.get(seq) != head_hash:
            return ledger.ChainProblem(
                seq, Phrase("checkpoint {seq} names a different head hash: the chain was rewritten", {"seq": seq})
            )
        if signer not in certificates:
            record = store.certificate(signer)
            if record is None:
                return ledger.ChainProblem(
                    seq,
                    Phrase(
                        "checkpoint {seq} is not signed by an audit signer ({signer}): not in the registry",
                        {"seq": seq, "signer": signer},
                    ),
                )
            certificates[signer] = x509.load_der_x509_certificate(record.der)
            swapped = _legacy_certificate_problem(store, signers, signer, certificates[signer])
            if swapped is not None:
                return ledger.ChainProblem(seq, _not_an_audit_signer(seq, signer, swapped))
            fingerprints[signer] = certificates[signer].fingerprint(hashes.SHA256()).hex()
        certificate = certificates[signer]
        if not _verify_signature(certificate, signature, ledger.checkpoint_message(seq, head_hash, time)):
            return ledger.ChainProblem(
                seq, Phrase("checkpoint {seq}: the signature does not verify (forged or edited)", {"seq": seq})
            )
        # The ledger decides who may seal (the same rule as for exports), not the registry row.
        standing = signers.standing(signer, begins=begins, head=seq, time=time, fingerprint=fingerprints[signer])
        if standing is not None:
            return ledger.ChainProblem(seq, _not_an_audit_signer(seq, signer, standing))
        begins = seq + 1
    if last_seq > covered:
        return ledger.ChainProblem(
            covered + 1,
            Phrase(
                "events {first}..{last_seq} follow the last signed checkpoint ({covered}): "
                "appended outside Kinko, or the checkpoint was removed",
                {"first": covered + 1, "last_seq": last_seq, "covered": covered},
            ),
        )
    return None


def _not_an_audit_signer(seq: int, signer: str, why: Phrase) -> Phrase:
    facts = {"seq": seq, "signer": signer, "why": why}
    return Phrase("checkpoint {seq} is not signed by an audit signer ({signer}): {why}", facts)


def _extends(anchor: Head) -> Phrase:
    return Phrase("extends anchor seq {seq} ({source})", {"seq": anchor.seq, "source": anchor.source})


def _legacy_certificate_problem(
    store: Reader, signers: AuditSigners, serial: str, certificate: x509.Certificate
) -> Phrase | None:
    """For an appointment recorded before the ledger held its fingerprint: the registry's
    certificate must be issued by a CA certificate whose fingerprint the ledger records, so a
    row swapped for a certificate of the attacker's own key does not count."""
    if signers.recorded_fingerprint(serial) is not None:
        return None  # `standing` compares the fingerprint itself
    for ca_serial, fingerprint in signers.ca_fingerprints.items():
        record = store.certificate(ca_serial)
        # The DER itself, not the row's fingerprint column: both are database content.
        if record is None or hashlib.sha256(record.der).hexdigest() != fingerprint:
            continue
        try:
            certificate.verify_directly_issued_by(x509.load_der_x509_certificate(record.der))
        except (ValueError, TypeError, InvalidSignature):
            continue
        return None
    return Phrase("its certificate is not issued by a CA the ledger records")


# -- heads: what a signed export says about where the ledger stood --------------------------------

HEAD_FORMAT = "kinko-ledger-head/1"


@dataclass(frozen=True)
class Head:
    """The head of a signed export: its last event and the checkpoint signature covering it."""

    seq: int
    head_hash: str
    time: str
    signature: bytes
    signer: str
    certificate: x509.Certificate
    source: Path | str

    def message(self) -> bytes:
        """The bytes the checkpoint signature covers."""
        return ledger.checkpoint_message(self.seq, self.head_hash, self.time)


def head_file(export_file: Path) -> Path:
    """Where an export's head is written: FILE.head.json beside it."""
    return export_file.with_name(export_file.name + ".head.json")


def head_source(path: Path) -> Path:
    """The head file of an export given the export or its FILE.head.json."""
    return path if path.name.endswith(".head.json") else head_file(path)


def read_head(path: Path) -> Head:
    """Reads an export's head (given the export or its FILE.head.json); one-line errors."""
    source = head_source(path)
    try:
        data = source.read_bytes()
    except FileNotFoundError:
        raise InputError(
            "head file {path} does not exist (a signed export writes FILE.head.json)", path=source
        ) from None
    except OSError as exc:
        raise InputError(
            "cannot read head file {path}: {kind}: {reason}", path=source, kind=type(exc).__name__, reason=str(exc)
        ) from None
    return parse_head(data, source)


def parse_head(raw: bytes, source: Path | str) -> Head:
    """An export's head from the bytes of its FILE.head.json; one-line errors naming `source`."""
    from cryptography.x509 import load_pem_x509_certificate

    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict) or data.get("format") != HEAD_FORMAT:
            raise ValueError(f"not a {HEAD_FORMAT} file")
        checkpoint = data["checkpoint"]
        seq, head_hash = data["seq"], data["head_hash"]
        if type(seq) is not int or seq < 1 or not isinstance(head_hash, str) or len(head_hash) != 64:
            raise ValueError("seq or head_hash is malformed")
        bytes.fromhex(head_hash)
        return Head(
            seq,
            head_hash,
            str(checkpoint["time"]),
            bytes.fromhex(checkpoint["signature"]),
            str(checkpoint["signer"]),
            load_pem_x509_certificate(str(checkpoint["certificate"]).encode("ascii")),
            source,
        )
    except (ValueError, KeyError, TypeError, UnicodeError) as exc:
        raise InputError(
            "cannot read head file {path}: {kind}: {reason}", path=source, kind=type(exc).__name__, reason=str(exc)
        ) from None


def read_anchors(files: tuple[FileContents, ...]) -> tuple[Head, ...]:
    """The heads of earlier exports an auditor keeps (the contents of their FILE.head.json, read by
    the auditor's own process), each checked against its own signature."""
    heads = tuple(parse_head(file.data, file.name) for file in files)
    for head in heads:
        if not _verify_signature(head.certificate, head.signature, head.message()):
            raise InputError("anchor {path}: its checkpoint signature does not verify (edited)", path=head.source)
    return heads


def _head_bytes(out_name: str, digest: bytes, checkpoint: tuple[int, str, str, bytes, str], cert: bytes) -> bytes:
    seq, head_hash, time, signature, signer = checkpoint
    body = {
        "format": HEAD_FORMAT,
        "export": out_name,
        "export_sha256": digest.hex(),
        "seq": seq,
        "head_hash": head_hash,
        "checkpoint": {
            "time": time,
            "signer": signer,
            "signature": signature.hex(),
            "certificate": cert.decode("ascii"),
        },
    }
    return (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


@dataclass(frozen=True)
class Export:
    """A written export and its companions."""

    path: Path
    rows: int
    sha256: str
    signature: Path | None
    chain: Path | None
    head: Path | None = None


EXPORT_MODE, COMPANION_MODE = 0o600, 0o644  # the export holds the holders' names


def export_destinations(out: Path) -> list[Destination]:
    """Where an export goes: the file (0600), its signature, chain and head (0644 each)."""
    companions = [out.with_name(out.name + suffix) for suffix in (".sig", ".chain.pem", ".head.json")]
    return [Destination(out, EXPORT_MODE), *(Destination(path, COMPANION_MODE) for path in companions)]


def export(home: Home, out: Path, **options: Any) -> Export:
    """Exports to files this process opens (direct mode); see export_to."""
    outputs = Outputs(export_destinations(out))
    try:
        result = export_to(home, outputs.files, out, **options)
    except BaseException:
        outputs.abort()
        raise
    outputs.commit([f.produced for f in outputs.files])
    return result


def _require_known_action(home: Home, action: str) -> None:
    """A misspelt --action once exported 0 rows with exit 0: an action is one the ledger's replay
    knows or one some event carries."""
    from kinko.ca.replay import REPLAYED_ACTIONS

    if action in REPLAYED_ACTIONS or home.readonly_store.last_event(action) is not None:
        return
    raise InputError(
        "no event in the ledger has the action {action!r} (e.g. certificate.issued, certificate.revoked)", action=action
    )


def export_to(
    home: Home,
    files: list[OutputFile],
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
    """Streams the ledger to CSV or JSON Lines into `files` (the export, then its companions, as
    export_destinations names them, opened by the caller); a full export is also signed (FILE.sig,
    FILE.chain.pem) and records its head (FILE.head.json). `out` only names the files."""
    if fmt not in ("csv", "jsonl"):
        raise InputError("unknown export format {format!r}; use csv or jsonl", format=fmt)
    if excel and fmt != "csv":
        raise InputError("--excel writes CSV; use it with --format csv")
    if len(files) != 4:
        raise InputError("an export is written to four files: the export, its signature, chain and head")
    target, signature_file, chain_file, head_file_out = files
    full = since is None and until is None and customer is None and action is None
    if action is not None:
        _require_known_action(home, action)
    reader = home.readonly_store
    rows = 0
    hasher = hashlib.sha256()

    def write(data: bytes) -> None:
        hasher.update(data)
        target.write(data)

    # One snapshot: the rows written and the head recorded are the same ledger.
    with reader.reading():
        head_seq, _head_hash = reader.ledger_head()
        sealed = reader.checkpoint(head_seq) if full else None
        if full:
            if sealed is None:
                raise LedgerBroken(
                    "the ledger's head (seq {seq}) has no signed checkpoint: nothing was exported; "
                    "run `kinko ledger verify`",
                    seq=head_seq,
                )
            # Refuse before writing anything: a signer the ledger no longer appoints signs nothing.
            home.require_audit_signer(begins=head_seq + 1, head=head_seq, time=to_text(now) or "")
        # An export is evidence: a chain that does not hold (a row rewritten, one cut out, a
        # checkpoint that does not sign its head) is not written out, signed or not.
        checked = verify_snapshot(home, reader, replay=False)
        if checked.problem is not None:
            raise LedgerBroken(
                "the ledger does not verify (seq {seq}: {problem}): nothing was exported; run `kinko ledger verify`",
                seq=checked.problem.seq,
                problem=checked.problem.finding,
            )
        lines = reader.ledger_export_lines(fmt, to_text(since), to_text(until), customer, action)
        try:
            write((b"\xef\xbb\xbf" if excel else b"") + (ledger.CSV_HEADER.encode("utf-8") if fmt == "csv" else b""))
            batch: list[str] = []
            for line in lines:
                batch.append(line)
                if len(batch) == 10000:  # one write per batch: per-line writes cost a sixth more
                    write("".join(batch).encode("utf-8"))
                    rows += len(batch)
                    batch.clear()
                    if progress is not None:
                        progress(rows)
            write("".join(batch).encode("utf-8"))
            rows += len(batch)
            target.finish()
        except OSError as exc:
            raise InputError("cannot write {path}: {reason}", path=out, reason=exc.strerror) from None
    digest = hasher.digest()
    signature = chain = head = None
    # A filtered export is not signed: its companions are not produced, and those left by an
    # earlier full export are removed, or they would make it look tampered with.
    if full and sealed is not None:
        from cryptography.hazmat.primitives.serialization import Encoding

        signer = home.ca_certificate("audit")
        issuers = [
            home.ca_certificate(role) for role in (["root"] if home.config.ca.single_tier else ["issuing", "root"])
        ]
        checkpoint_signer = home.readonly_store.certificate(sealed[4])
        if checkpoint_signer is None:
            raise LedgerBroken(
                "the checkpoint at seq {seq} names signer {serial}, not in the registry", seq=head_seq, serial=sealed[4]
            )
        pem = x509.load_der_x509_certificate(checkpoint_signer.der).public_bytes(Encoding.PEM)
        try:
            signature_file.write(cms.sign_detached(digest, home.key("audit"), signer, issuers, now))
            chain_file.write(b"".join(c.public_bytes(Encoding.PEM) for c in issuers))
            head_file_out.write(_head_bytes(out.name, digest, sealed, pem))
            for companion in (signature_file, chain_file, head_file_out):
                companion.finish()
        except OSError as exc:
            raise InputError("cannot write {path}'s companions: {reason}", path=out, reason=exc.strerror) from None
        signature, chain, head = (d.path for d in export_destinations(out)[1:])
    with home.store.transaction(actor, to_text(now) or "") as tx:
        tx.append_event(
            "ledger.exported",
            details={
                "format": fmt,
                "rows": rows,
                "sha256": digest.hex(),
                "signed": full,
                "head_seq": head_seq if full else None,
                "since": to_text(since),
                "until": to_text(until),
                "customer": customer,
                "action": action,
                "file": out.name,
            },
        )
    return Export(out, rows, digest.hex(), signature, chain, head)


def trust_anchors(
    ca_file: Path | None, root_fingerprint: str | None, pool: list[x509.Certificate]
) -> list[x509.Certificate]:
    """The auditor's trust anchors: the certificates of --ca-file, or the one certificate (from
    the export's companions) whose SHA-256 fingerprint the auditor gave. Never the chain file alone."""
    if ca_file is None and root_fingerprint is None:
        raise InputError(
            "verifying an export needs your own trust anchor: --ca-file ROOT.pem or --root-fingerprint SHA256 "
            "(the chain file beside the export is not trusted)"
        )
    if ca_file is not None and root_fingerprint is not None:
        raise InputError("give --ca-file or --root-fingerprint, not both")
    if ca_file is not None:
        try:
            anchors = x509.load_pem_x509_certificates(ca_file.read_bytes())
        except FileNotFoundError:
            raise InputError("CA file {path} does not exist", path=ca_file) from None
        except (OSError, ValueError) as exc:
            raise InputError("cannot read CA file {path}: {reason}", path=ca_file, reason=str(exc)) from None
        return anchors
    assert root_fingerprint is not None
    wanted = root_fingerprint.replace(":", "").strip().lower()
    if len(wanted) != 64 or any(c not in "0123456789abcdef" for c in wanted):
        raise InputError("--root-fingerprint must be a SHA-256 fingerprint: 64 hex digits, colons allowed")
    found = [c for c in pool if c.fingerprint(hashes.SHA256()).hex() == wanted and c.issuer == c.subject]
    if not found:
        raise LedgerBroken(
            "no self-signed certificate with SHA-256 fingerprint {fingerprint} signs this export", fingerprint=wanted
        )
    return found[:1]


def verify_export(
    path: Path,
    ca_file: Path | None = None,
    *,
    root_fingerprint: str | None = None,
    anchors: tuple[Head, ...] = (),
    allow_unsigned: bool = False,
) -> Verification:
    """Verifies an export offline against the auditor's own trust anchor: its detached signature,
    by a signer the exported ledger appoints; the chain's hashes; its head; and each anchor.

    An unsigned export fails unless `allow_unsigned` (then each row is checked against its own hash)."""
    notes: list[Phrase] = []
    signature = path.with_name(path.name + ".sig")
    chain_file = path.with_name(path.name + ".chain.pem")
    try:
        if not signature.exists():
            if ca_file is None and root_fingerprint is None:
                trust_anchors(None, None, [])  # the same one-line refusal as for a signed export
            if not allow_unsigned:
                raise LedgerBroken(
                    "export {path} is unsigned (no {signature}): nothing proves who wrote it; "
                    "--allow-unsigned checks it row by row",
                    path=path,
                    signature=signature.name,
                )
            return _verify_unsigned(path, anchors)
        untrusted = x509.load_pem_x509_certificates(chain_file.read_bytes()) if chain_file.exists() else []
        signature_der = signature.read_bytes()
        trusted = trust_anchors(ca_file, root_fingerprint, untrusted + cms.certificates_in(signature_der))
        try:
            verified = cms.verify_detached(signature_der, cms.file_sha256(path), trusted, untrusted)
        except ValueError as exc:
            return Verification(0, 0, ledger.ChainProblem(0, Phrase("signature: {reason}", {"reason": str(exc)})))
        signed_by = {"signer": verified.signer.subject.rfc4514_string(), "time": verified.signing_time}
        notes.append(Phrase("signed by {signer} at {time}", signed_by))
        signers = AuditSigners()
        heads: dict[int, str] = {}
        wanted = {anchor.seq for anchor in anchors}
        count, last = 0, (0, ledger.GENESIS)

        def observed(items: Iterator[ledger.Event]) -> Iterator[ledger.Event]:
            nonlocal count, last
            for item in items:
                count += 1
                signers.observe(item)
                if item.seq in wanted:
                    heads[item.seq] = item.hash
                last = (item.seq, item.hash)
                yield item

        with open(path, encoding="utf-8", newline="") as handle:
            problem = ledger.verify_chain(observed(ledger.read_export(handle)))
        if problem is not None:
            return Verification(count, 0, problem, notes)
        last_seq, last_hash = last
        serial = format_serial(verified.signer.serial_number)
        standing = signers.standing(
            serial,
            begins=last_seq + 1,
            head=last_seq,
            time=verified.signing_time,
            fingerprint=verified.signer.fingerprint(hashes.SHA256()).hex(),
        )
        if standing is not None:
            does_not_count = Phrase("signature does not count: {why}", {"why": standing})
            return Verification(count, 0, ledger.ChainProblem(last_seq, does_not_count))
        problem = _check_head(path, last_seq, last_hash, verified.signer)
        checkpoints = 0 if problem is not None else 1
        if problem is None:
            head_file = f"{path.name}.head.json"
            sealed = Phrase("head seq {seq} sealed by the same signer ({file})", {"seq": last_seq, "file": head_file})
            notes.append(sealed)
            problem = check_anchors(anchors, heads, last_seq, Phrase("the export"))
            notes += [_extends(anchor) for anchor in anchors]
        return Verification(count, checkpoints, problem, notes if problem is None else [])
    except (OSError, ValueError, UnicodeDecodeError, TypeError, KeyError) as exc:
        raise InputError(
            "cannot read export {path}: {kind}: {reason}", path=path, kind=type(exc).__name__, reason=str(exc)
        ) from None


def _check_head(path: Path, seq: int, head_hash: str, signer: x509.Certificate) -> ledger.ChainProblem | None:
    """The export's head must name its last event and carry a checkpoint signature by its own signer."""
    head = read_head(path)
    if (head.seq, head.head_hash) != (seq, head_hash):
        return ledger.ChainProblem(
            head.seq,
            Phrase(
                "the head file names seq {head}, the export ends at seq {seq}: they do not belong together",
                {"head": head.seq, "seq": seq},
            ),
        )
    if head.certificate != signer or head.signer != format_serial(signer.serial_number):
        return ledger.ChainProblem(seq, Phrase("the head's checkpoint is not sealed by the export's signer"))
    if not _verify_signature(head.certificate, head.signature, head.message()):
        return ledger.ChainProblem(seq, Phrase("the head's checkpoint signature does not verify (forged or edited)"))
    return None


def _verify_unsigned(path: Path, anchors: tuple[Head, ...]) -> Verification:
    notes = [Phrase("unsigned: checked row by row against each row's own hash; nothing proves who wrote it")]
    if anchors:
        raise InputError("--anchor needs a signed export (or the database) to compare with")
    count = 0
    with open(path, encoding="utf-8", newline="") as handle:
        for event in ledger.read_export(handle):
            count += 1
            if ledger.event_hash(event.prev_hash, event) != event.hash:
                return Verification(count, 0, ledger.ChainProblem(event.seq, ledger.EDITED), notes)
    return Verification(count, 0, None, notes)


def checkpoint(home: Home, actor: str, now: dt.datetime) -> dict[str, Any]:
    """Seals the current head now (every transaction already ends with a checkpoint)."""
    with home.store.transaction(actor, to_text(now) or "") as tx:
        event = tx.append_event("ledger.checkpoint", details={})
    return {"seq": event.seq, "head_hash": event.hash, "time": event.time}


@dataclass(frozen=True)
class Rotation:
    """An audit signer rotation: the signer appointed and the one retired."""

    appointed: str
    not_after: str
    retired: str | None
    key_deleted: bool


def rotate_signer(home: Home, actor: str, now: dt.datetime) -> Rotation:
    """Appoints a new audit signer (issued by the issuing CA) and retires the current one, in one
    transaction the new signer seals; the retired signer's key file is deleted after the commit."""
    from kinko.ca.hierarchy import replace_audit_signer

    home.key(home.issuing_role)  # the CA key (a passphrase prompt) before the write lock
    old = home.store.authority("audit")
    with home.store.transaction(actor, to_text(now) or "") as tx:
        record = replace_audit_signer(home, tx, home.config, now, old, "rotated")
    # After the commit: a rotation rolled back must leave the signer it kept able to sign.
    deleted = home.delete_signer_key(old[1]) if old is not None else False
    return Rotation(record.serial, record.not_after, old[0] if old else None, deleted)
