"""Publishing CRLs: numbering, building from the registry, signing, atomic file writes.

Order, and why: take the publication lock of the issuer's CRL kind (so two publishers of full
CRLs, or of deltas, never race a lower number over a higher one; a delta never waits for a full
CRL being built, which at a million entries takes seconds); reserve the number in its own transaction (a crash
after that burns it, so none is ever reused); build and sign from one read snapshot;
parse what was built; replace the files atomically; then record the publication with
its ledger event, so that nothing records a CRL the files do not hold.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from kinko.ca import integrity
from kinko.ca.clock import to_text
from kinko.ca.errors import Conflict, StorageError
from kinko.ca.files import make_dir, write_atomically
from kinko.ca.home import Home
from kinko.ca.i18n import Phrase
from kinko.ca.integrity import Mismatch
from kinko.ca.keys import certificate_key
from kinko.ca.profiles import issuer_urls
from kinko.ca.replay import confirm
from kinko.ca.store import CRLRecord, Store
from kinko.crl.builder import CRLBuilder, pem


@dataclass(frozen=True)
class Published:
    """A CRL that was just published."""

    issuer: str
    kind: str
    number: int
    base_number: int | None
    this_update: str
    next_update: str
    entries: int
    der_path: Path
    pem_path: Path
    sha256: str


class Publisher:
    """The CRL publisher of one home, as the registration authority uses it."""

    def __init__(self, home: Home) -> None:
        self.home = home

    def publish(self, issuer: str, kind: str, now: dt.datetime, actor: str) -> Published:
        """One CRL of an issuer: 'full' or 'delta'."""
        return publish(self.home, now, actor, issuer, kind)

    def full_and_delta(self, issuer: str, now: dt.datetime, actor: str) -> list[Published]:
        """A full CRL and, where the issuer has deltas, an empty delta against it."""
        return publish_full_and_delta(self.home, now, actor, issuer)

    def after_change(self, issuer: str, now: dt.datetime, actor: str) -> list[Published]:
        """Makes a committed status change visible: a new full CRL while it is small, else a delta."""
        return publish_after_change(self.home, now, actor, issuer)


def crl_paths(home: Home, issuer: str, kind: str) -> tuple[Path, Path]:
    """(DER, PEM) paths under public/crl/ — the names the certificates' CDP and FreshestCRL use."""
    stem = issuer if kind == "full" else f"{issuer}-delta"
    directory = home.public_dir / "crl"
    return directory / f"{stem}.crl", directory / f"{stem}.pem"


def publish(home: Home, now: dt.datetime, actor: str, issuer: str, kind: str = "full") -> Published:
    """Builds, signs, records and writes one CRL of an issuer ('issuing' or 'root')."""
    with _publication_lock(home, issuer, kind):
        return _publish_locked(home, now, actor, issuer, kind)


def publish_full_and_delta(home: Home, now: dt.datetime, actor: str, issuer: str) -> list[Published]:
    """A full CRL and an empty delta against it, so the FreshestCRL URL always answers."""
    with _publication_lock(home, issuer, "full"):
        full = _publish_locked(home, now, actor, issuer, "full")
    if not _has_deltas(home, issuer):
        return [full]
    # A delta published meanwhile against the older full CRL held a superset of this one. This one
    # checks its own rows again: it is not under the full CRL's lock, and a delta's check is cheap.
    with _publication_lock(home, issuer, "delta"):
        return [full, _publish_locked(home, now, actor, issuer, "delta")]


def publish_after_change(home: Home, now: dt.datetime, actor: str, issuer: str) -> list[Published]:
    """Makes a status change visible: a new full CRL while it is small, else a delta CRL (which
    the CA service's schedule then brings into a new full CRL)."""
    base = home.store.latest_crl(issuer, "full")
    if _has_deltas(home, issuer) and base is not None and (base.entries or 0) >= home.config.crl.delta_after_entries:
        return [publish(home, now, actor, issuer, "delta")]
    return publish_full_and_delta(home, now, actor, issuer)


def published_number(home: Home, issuer: str) -> int:
    """The highest CRL number in an issuer's published files (full and delta share one sequence);
    0 when there are none. What the world has seen, whatever the database remembers."""
    highest = 0
    for kind in ("full", "delta"):
        try:
            crl = x509.load_der_x509_crl(crl_paths(home, issuer, kind)[0].read_bytes())
            number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        except (OSError, ValueError, x509.ExtensionNotFound):
            continue  # none yet, or not one of ours: the database's numbers still hold
        highest = max(highest, number)
    return highest


def _has_deltas(home: Home, issuer: str) -> bool:
    # Only the CA that signs subscriber certificates publishes deltas; the root's ARL is short.
    return issuer == home.issuing_role


def _publish_locked(home: Home, now: dt.datetime, actor: str, issuer: str, kind: str) -> Published:
    """One CRL, under the publication lock of its issuer and kind."""
    store = home.store
    cfg = home.config
    base: CRLRecord | None = None
    if kind == "delta":
        base = store.latest_crl(issuer, "full")
        if base is None:
            raise Conflict("no full CRL of {issuer} yet: run `kinko crl publish` before a delta", issuer=issuer)
    this_update = to_text(now) or ""
    if _has_deltas(home, issuer):
        period = dt.timedelta(hours=cfg.crl.next_update_hours)
    else:
        period = dt.timedelta(days=cfg.crl.arl_next_update_days)
    next_update = to_text(now + period) or ""
    keep_after = to_text(now - dt.timedelta(days=cfg.crl.retention_days)) or ""
    key = home.key(issuer)
    certificate = home.ca_certificate(issuer)
    # Before a number is reserved: a CRL is signed only over rows that their ledger events confirm.
    with integrity.recorded(store, actor, this_update):
        # A delta lists only the rows changed since its base: those are the ones it is signed over.
        confirm_entries(store, issuer, kind, keep_after, (base.ledger_seq or 0) if base is not None else None)
    floor = published_number(home, issuer)
    number = store.reserve_crl_number(issuer, kind, base.number if base else None, this_update, floor)

    builder = CRLBuilder().issuer_name(certificate.subject).this_update(this_update).next_update(next_update)
    for extension, critical in _extensions(home, issuer, kind, number, base, certificate):
        builder = builder.add_extension(extension, critical)
    with store.reading():
        head_seq, _ = store.ledger_head()
        if base is not None:
            rows = store.crl_delta_entries(issuer, base.ledger_seq or 0, keep_after)
        else:
            rows = store.crl_entries(issuer, keep_after)
        der, count = builder.entries(rows).sign(key)
    check_built(der, certificate, number)
    digest = hashlib.sha256(der).hexdigest()

    # The files first, then the record: `crl show` and the ledger never name a CRL that the
    # files do not hold. A failure burns the reserved number, as a crash does.
    der_path, pem_path = crl_paths(home, issuer, kind)
    try:
        make_dir(der_path.parent, 0o755)
        # PEM first: should the DER (what clients fetch) fail, the served CRL is the recorded one.
        write_atomically(pem_path, pem(der), 0o644)
        write_atomically(der_path, der, 0o644)
    except OSError as exc:
        raise StorageError(
            "cannot write {path}: {reason}; {issuer} {kind} CRL #{number} "
            "was not published (the last published one is still served)",
            path=exc.filename or der_path,
            reason=exc.strerror,
            issuer=issuer,
            kind=kind,
            number=number,
        ) from None
    with store.transaction(actor, this_update) as tx:
        tx.record_crl(
            issuer,
            number,
            this_update=this_update,
            next_update=next_update,
            entries=count,
            ledger_seq=head_seq,
            sha256=digest,
        )
        tx.append_event(
            "crl.published",
            details={
                "issuer": issuer,
                "kind": kind,
                "number": number,
                "base_number": base.number if base else None,
                "this_update": this_update,
                "next_update": next_update,
                "entries": count,
                "sha256": digest,
            },
        )
    return Published(
        issuer,
        kind,
        number,
        base.number if base else None,
        this_update,
        next_update,
        count,
        der_path,
        pem_path,
        digest,
    )


def confirm_entries(store: Store, issuer: str, kind: str, keep_after: str, changed_after: int | None = None) -> None:
    """Checks every unexpired certificate of the issuer (a delta's: each changed after its base)
    against its newest status event: a row made valid behind Kinko's back would leave the CRL,
    one made revoked would join it."""
    with store.reading():
        for serial, facts, event in store.status_disagreements(issuer, keep_after, changed_after):
            mismatch = confirm(serial, facts, event) or Mismatch(
                "certificates", serial, Phrase("disagrees with its last event")
            )
            raise integrity.refuse(mismatch, f"{kind} CRL of {issuer}")


def check_built(der: bytes, issuer: x509.Certificate, number: int) -> None:
    """Parses a CRL just built, every entry included, and checks its signature and number before
    anything records or serves it: an encoder bug must not publish invalid DER."""
    try:
        crl = x509.load_der_x509_crl(der)
        valid = crl.is_signature_valid(certificate_key(issuer))
        found = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        for entry in crl:
            _ = (entry.serial_number, entry.revocation_date_utc, entry.extensions)
    except (ValueError, x509.ExtensionNotFound) as exc:
        raise StorageError(
            "the CRL #{number} just built does not parse ({reason}); nothing was published",
            number=number,
            reason=str(exc),
        ) from None
    if not valid or found != number:
        raise StorageError("the CRL #{number} just built does not verify; nothing was published", number=number)


def _extensions(
    home: Home, issuer: str, kind: str, number: int, base: CRLRecord | None, certificate: x509.Certificate
) -> list[tuple[x509.ExtensionType, bool]]:
    urls = issuer_urls(home.config.ca.base_url, issuer)
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(certificate_key(certificate)), False),
        (x509.CRLNumber(number), False),
    ]
    # No IssuingDistributionPoint: each CA publishes one unpartitioned CRL (and its delta) of
    # every certificate it issued, a scope RFC 5280 5.2.5 expresses by leaving the IDP out; a
    # delta then has its complete CRL's scope (5.2.4) with none either. The IDP, which must be
    # critical, is what NSS (Firefox, Chromium on Linux) refuses to import, and OpenSSL's
    # -crl_check_all matched its point against certificates that carry none (the self-signed root).
    if kind == "delta":
        assert base is not None
        extensions.append((x509.DeltaCRLIndicator(base.number), True))
    elif _has_deltas(home, issuer):
        delta_point = x509.DistributionPoint([x509.UniformResourceIdentifier(urls.delta_crl)], None, None, None)
        extensions.append((x509.FreshestCRL([delta_point]), False))
    return extensions


@contextmanager
def _publication_lock(home: Home, issuer: str, kind: str) -> Iterator[None]:
    # flock, not a row lock: it is released by the kernel if the process dies mid-publication.
    path = home.path / (f".crl-{issuer}.lock" if kind == "full" else f".crl-{issuer}-{kind}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def latest(home: Home) -> list[CRLRecord]:
    """The newest full and delta CRL of every issuer that has published."""
    roles = ["root"] if home.config.ca.single_tier else ["issuing", "root"]
    found = []
    for issuer in roles:
        for kind in ("full", "delta"):
            record = home.readonly_store.latest_crl(issuer, kind)
            if record is not None:
                found.append(record)
    return found
