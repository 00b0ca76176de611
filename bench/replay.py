"""Replay verification benchmark: `kinko ledger verify` (chain, checkpoints and replay of every event
against the tables) beside chain-only verification, at 100k and 1M events over 100k certificates.

In a temp dir:

1. A fresh CA home. 100,000 certificates are added through the store's own writer, as issuance
   records them (a reserved serial filled in, a `certificate.issued` event with the facts replay
   checks, a pre-signed OCSP response signed by the real delegated signer); every tenth is then
   revoked (`certificate.revoked`, its response re-signed). The DER is stand-in bytes whose SHA-256
   is the recorded fingerprint: replay checks exactly that, and signing 100k certificates would
   only lengthen the fill.
2. Neutral events fill the ledger to --small (100k), then to --events (1M); each size is measured.
3. Measured, each a fresh process (wall s, cpu s, peak RSS, via bench/children.py):
     chain     the chain and every signed checkpoint, no replay (`verify_database(replay=False)`)
     replay    `python -m kinko.cli --home H --json ledger verify` (chain, checkpoints, replay)
4. The cost the signing checks add: a revoke and a full CRL publish at the end, timed whole, and the
   check alone (`crl.publisher.confirm_entries` over the same rows) beside them.

Targets: replay verification at 1M events <= 10 s and <= 4x chain-only in the same run; its peak
RSS at 1M <= 1.2x at 100k.

    python bench/replay.py [--certificates 100000] [--small 100000] [--events 1000000] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

from children import Run, run_child  # bench/children.py, beside this script

from kinko.ca.clock import SystemClock, to_text
from kinko.ca.hierarchy import InitOptions, create_home
from kinko.ca.home import Home
from kinko.ca.officers import add_officer, current_login
from kinko.ca.store import CertificateRecord

TARGETS = {"replay_s": 10.0, "replay_over_chain": 4.0, "rss_growth": 1.2}
MARK = {True: "PASS", False: "FAIL"}
BATCH = 20_000
CHAIN_ONLY = (
    "import sys; from pathlib import Path; from kinko.ca.audit import verify_database; from kinko.ca.home import Home; "
    "r = verify_database(Home(Path(sys.argv[1])), replay=False); print(r.events); sys.exit(0 if r.ok else 1)"
)


def add_certificates(home_path: Path, count: int, revoke_every: int = 10, presign: bool = True) -> float:
    """Records `count` certificates and revokes every `revoke_every`-th, as the RA's transactions
    would, with their pre-signed OCSP responses unless `presign` is off."""
    from kinko.ocsp.presign import Presigner

    start = time.perf_counter()
    home = Home(home_path)
    store, presigner = home.store, Presigner(home)
    now = SystemClock().now()
    not_after = to_text(now + dt.timedelta(days=365)) or ""
    for first in range(0, count, BATCH):
        records = []
        with store.transaction("bench", to_text(now) or "") as tx:
            for i in range(first, min(first + BATCH, count)):
                serial = f"{secrets.randbits(127) | 1 << 126:032X}"
                der = f"stand-in DER {serial}".encode()
                record = CertificateRecord(
                    serial=serial,
                    issuer="issuing",
                    profile="client",
                    subject=f"CN=Holder {i},O=株式会社テスト",
                    subscriber_id=None,
                    not_before=tx.time,
                    not_after=not_after,
                    status="valid",
                    issued_at=tx.time,
                    fingerprint_sha256=hashlib.sha256(der).hexdigest(),
                    spki_sha256=hashlib.sha256(serial.encode()).hexdigest(),
                    der=der,
                )
                assert tx.reserve_serial(serial, "issuing")
                tx.record_certificate(record)
                details = {
                    name: getattr(record, name)
                    for name in ("issuer", "profile", "subject", "not_before", "not_after", "fingerprint_sha256")
                }
                tx.append_event("certificate.issued", serial=serial, details={**details, "via": "officer"})
                records.append(record)
            if presign:
                presigner.sign(tx, records, now)
        with store.transaction("bench", to_text(now) or "") as tx:
            revoked = []
            for record in records[::revoke_every]:
                event = tx.append_event(
                    "certificate.revoked",
                    serial=record.serial,
                    details={"reason": "superseded", "revoked_at": tx.time, "previous_status": "valid"},
                )
                tx.revoke(record.serial, reason="superseded", seq=event.seq)
                changed = tx.certificate(record.serial)
                assert changed is not None
                revoked.append(changed)
            if presign:
                presigner.sign(tx, revoked, now)
    store.close()
    return time.perf_counter() - start


def add_events(home_path: Path, total: int) -> float:
    """Appends neutral events until the ledger holds `total`."""
    start = time.perf_counter()
    store = Home(home_path).store
    seq = store.ledger_head()[0]
    while seq < total:
        batch = min(50_000, total - seq)
        with store.transaction("bench", to_text(SystemClock().now()) or "") as tx:
            for i in range(seq + 1, seq + batch + 1):
                tx.append_event("bench.event", subscriber=f"S{i % 5000:05d}", customer="C0001", details={"n": i})
        seq += batch
    store.close()
    return time.perf_counter() - start


def measure(home: Path, env: dict[str, str]) -> dict[str, Run]:
    chain = run_child([sys.executable, "-c", CHAIN_ONLY, str(home)], env)
    replay = run_child([sys.executable, "-m", "kinko.cli", "--home", str(home), "--json", "ledger", "verify"], env)
    if not json.loads(replay.stdout)["ok"]:
        raise SystemExit(f"ledger verify failed: {replay.stdout.decode()}")
    return {"chain": chain, "replay": replay}


def signing_costs(home_path: Path, serial: str) -> dict[str, float]:
    """A revoke and a full CRL publish, timed whole, and the integrity check alone."""
    from kinko.ca.lifecycle import Kinko
    from kinko.crl.publisher import confirm_entries

    home = Home(home_path)
    kinko = Kinko(home, clock=SystemClock(), actor=current_login())
    start = time.perf_counter()
    kinko.revoke(serial, "key-compromise")
    revoke_s = time.perf_counter() - start
    start = time.perf_counter()
    kinko.publish_crl()
    publish_s = time.perf_counter() - start
    start = time.perf_counter()
    confirm_entries(home.store, "issuing", "full", "")
    check_s = time.perf_counter() - start
    return {"revoke_s": revoke_s, "crl_publish_s": publish_s, "check_s": check_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--certificates", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=100_000, help="the first size measured (events)")
    parser.add_argument("--events", type=int, default=1_000_000, help="the size measured against the targets")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="kinko-bench-replay-") as tmp:
        passfile = Path(tmp) / "passphrase.txt"
        passfile.write_text(secrets.token_urlsafe(24) + "\n")
        passfile.chmod(0o600)  # a passphrase file others may read is refused
        env = {**os.environ, "KINKO_PASSPHRASE_FILE": str(passfile)}
        home = create_home(
            Path(tmp) / "home",
            InitOptions(organization="興産信用金庫", passphrase_file=passfile),
            SystemClock(),
            "bench",
        )
        if current_login() != "bench":
            add_officer(home, current_login(), "admin", "bench", to_text(SystemClock().now()) or "")
        home.store.close()
        fill_s = add_certificates(home.path, args.certificates)
        sizes = {}
        for total in (args.small, args.events):
            add_events(home.path, max(total, args.certificates * 11 // 10 + 50))
            sizes[total] = measure(home.path, env)
        valid = Home(home.path).readonly_store.certificates(("valid",), 1)[0].serial
        costs = signing_costs(home.path, valid)

    small, large = sizes[args.small], sizes[args.events]
    ratio = large["replay"].wall_s / large["chain"].wall_s
    growth = large["replay"].max_rss_kib / small["replay"].max_rss_kib
    passed = {
        "replay_s": large["replay"].wall_s <= TARGETS["replay_s"],
        "replay_over_chain": ratio <= TARGETS["replay_over_chain"],
        "rss_flat": growth <= TARGETS["rss_growth"],
    }
    figures = {
        "certificates": args.certificates,
        "fill_certificates_s": round(fill_s, 1),
        "sizes": {
            str(n): {
                op: {
                    "wall_s": round(r.wall_s, 2),
                    "cpu_s": round(r.cpu_s, 2),
                    "rss_mib": round(r.max_rss_kib / 1024, 1),
                }
                for op, r in runs.items()
            }
            for n, runs in sizes.items()
        },
        "replay_over_chain": round(ratio, 2),
        "replay_rss_growth": round(growth, 2),
        **{k: round(v, 3) for k, v in costs.items()},
        "pass": passed,
        "load": [load_before, os.getloadavg()[0]],
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(
        f"{args.certificates:,} certificates (every tenth revoked), each with a pre-signed OCSP response; "
        f"fill {fill_s:.1f} s"
    )
    print(f"{'events':>10}  {'verification':<44} {'wall s':>7} {'cpu s':>7} {'max RSS MiB':>11}")
    print("-" * 84)
    labels = {"chain": "chain + signed checkpoints (the reference)", "replay": "kinko ledger verify (with replay)"}
    for n, runs in sizes.items():
        for i, (op, r) in enumerate(runs.items()):
            print(
                f"{f'{n:,}' if i == 0 else '':>10}  {labels[op]:<44} {r.wall_s:>7.2f} {r.cpu_s:>7.2f} "
                f"{r.max_rss_kib / 1024:>11.1f}"
            )
    print()
    print(f"replay at {args.events:,}: {large['replay'].wall_s:.2f} s (target <= 10 s)  {MARK[passed['replay_s']]}")
    print(f"replay / chain-only: {ratio:.2f}x (target <= 4x)  {MARK[passed['replay_over_chain']]}")
    print(
        f"replay max RSS {args.small:,} -> {args.events:,}: {growth:.2f}x (target <= 1.2x)  {MARK[passed['rss_flat']]}"
    )
    print(
        f"revoke (publishes the full CRL): {costs['revoke_s'] * 1000:.0f} ms; full CRL publish: "
        f"{costs['crl_publish_s'] * 1000:.0f} ms; of each, the integrity check over the issuer's rows: "
        f"{costs['check_s'] * 1000:.0f} ms"
    )
    print(
        f"\n(total {figures['elapsed_s']} s; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, 1-min load "
        f"{load_before:.2f} at start, {os.getloadavg()[0]:.2f} at end)"
    )


if __name__ == "__main__":
    main()
