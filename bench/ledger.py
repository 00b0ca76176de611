"""Ledger benchmark: export and verification of a 1M-event ledger beside the sqlite3 CLI, in one run.

In a temp dir:

1. A fresh CA home (EC P-256, the init events already chained and sealed); the current OS login is
   added as an auditor so that `ledger export` / `ledger verify` run as they would for a person.
2. The ledger is filled through the store's own writer (`Store.transaction()` /
   `Writer.append_event()`, so every hash is computed by Kinko and the chain verifies), 50,000
   events per transaction, each transaction sealed by one signed checkpoint: first up to --small
   events (default 100k), measured; then on up to --events (default 1M), measured again. The fill
   is timed, with no target.
3. At each size, each operation is a fresh process under GNU time (`/usr/bin/time -f %M`; without
   it a small Python wrapper's RUSAGE_CHILDREN), so peak RSS is per operation:
     sqlite3   `sqlite3 -csv -header kinko.db "SELECT seq,...,hash FROM ledger ORDER BY seq" > out.csv`
     csv       `python -m kinko.cli --home H ledger export --format csv --out F.csv` (+ F.csv.sig, .chain.pem)
     jsonl     `python -m kinko.cli --home H ledger export --format jsonl --out F.jsonl`
     verify    `python -m kinko.cli --home H ledger verify` (the chain and every signed checkpoint)
     offline   `python -m kinko.cli ledger verify --export F.csv` (signature + chain, no database; no target)
   Row counts are checked: every export holds the ledger, the verifications report OK.
4. Targets: each export <= 2x the sqlite3 CLI's time at the same size; `ledger verify` of 1M events
   <= 5 s (in proportion for another --events); peak RSS of the exports and of `ledger verify` at
   --events <= 1.2x the same at --small.

    python bench/ledger.py [--events 1000000] [--small 100000] [--runs 1] [--json] [--profile auto]

--profile auto (the default) profiles each Kinko operation that missed a target, at --events, under
cProfile in a child process, and times it stage by stage beside alternatives that produce the same
bytes (CSV lines or JSON objects built in SQL, a reused JSON encoder, ...); `all` does so for all
three, `none` skips it. The report follows the table (on stderr with --json).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import csv
import hashlib
import io
import json
import os
import pstats
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from children import Run, run_child  # bench/children.py, beside this script

from kinko.ca.clock import SystemClock, to_text
from kinko.ca.hierarchy import InitOptions, create_home
from kinko.ca.home import Home
from kinko.ca.officers import add_officer, current_login

ROOT = Path(__file__).resolve().parent.parent
EVENTS, SMALL, BATCH = 1_000_000, 100_000, 50_000
TARGETS = {"export_ratio": 2.0, "verify_s": 5.0, "verify_events": 1_000_000, "rss_growth": 1.2}
MARK = {True: "PASS", False: "FAIL"}
SELECT = "SELECT seq,time,actor,action,serial,subscriber,customer,details,prev_hash,hash FROM ledger ORDER BY seq"
OPS = ("sqlite3", "csv", "jsonl", "verify", "offline")
PROFILED = ("csv", "jsonl", "verify")
REPEATS = 2  # runs of each profiling stage (the fastest is shown)


# -- filling the ledger -----------------------------------------------------------------------------


def new_home(work: Path, passfile: Path) -> Path:
    """A fresh CA home whose operator (this OS login) may run the auditor's commands."""
    options = InitOptions(organization="興産信用金庫", passphrase_file=passfile)
    home = create_home(work / "home", options, SystemClock(), "bench")
    login = current_login()
    if login != "bench":
        add_officer(home, login, "auditor", "bench", to_text(SystemClock().now()) or "")
    home.store.close()
    return home.path


def fill(home_path: Path, total: int) -> tuple[int, float]:
    """Appends events until the ledger holds `total`; returns (events added, seconds)."""
    start = time.perf_counter()
    home = Home(home_path)
    store = home.store
    seq = store.ledger_head()[0]
    added = 0
    while seq < total:
        batch = min(BATCH, total - seq)
        with store.transaction("bench", to_text(SystemClock().now()) or "") as tx:
            for i in range(seq + 1, seq + batch + 1):
                serial = f"{(i * 0x9E3779B97F4A7C15) & ((1 << 127) - 1):032X}"  # scattered, like real serials
                details = {"n": i, "名前": "山田"}
                tx.append_event(
                    "bench.event", serial=serial, subscriber=f"S{i % 5000:05d}", customer="C0001", details=details
                )
        seq += batch
        added += batch
    store.close()  # the last connection: SQLite checkpoints the WAL into kinko.db
    return added, time.perf_counter() - start


# -- measured child processes ---------------------------------------------------------------------


def cli(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "kinko.cli", "--home", str(home), "--json", *args]


def count_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            lines += chunk.count(b"\n")
    return lines


def measure(home: Path, work: Path, env: dict[str, str]) -> dict[str, object]:
    """One run of each operation at the ledger's current size; checks what each produced."""
    store = Home(home).readonly_store
    events = store.ledger_head()[0]
    store.close()
    floor_out, csv_out, jsonl_out = work / "sqlite3.csv", work / "export.csv", work / "export.jsonl"
    runs = {"sqlite3": run_child(["sqlite3", "-csv", "-header", str(home / "kinko.db"), SELECT], env, floor_out)}
    runs["csv"] = run_child(cli(home, "ledger", "export", "--format", "csv", "--out", str(csv_out)), env)
    runs["jsonl"] = run_child(cli(home, "ledger", "export", "--format", "jsonl", "--out", str(jsonl_out)), env)
    runs["verify"] = run_child(cli(home, "ledger", "verify"), env)
    root = home / "public" / "ca" / "root.pem"  # the auditor's own anchor
    runs["offline"] = run_child(cli(home, "ledger", "verify", "--export", str(csv_out), "--ca-file", str(root)), env)
    csv_info, jsonl_info = json.loads(runs["csv"].stdout), json.loads(runs["jsonl"].stdout)
    verified, offline = json.loads(runs["verify"].stdout), json.loads(runs["offline"].stdout)
    checks = {
        "sqlite3_rows": count_lines(floor_out) - 1,
        "csv_rows": csv_info["rows"],
        "jsonl_rows": jsonl_info["rows"],
        "verify_events": verified["events"],
        "verify_checkpoints": verified["checkpoints"],
        "offline_events": offline["events"],
        # The CSV export was taken at `events`; it appended ledger.exported, the JSONL export another.
        "rows_ok": csv_info["rows"] == events
        and count_lines(floor_out) - 1 == events
        and jsonl_info["rows"] == events + 1
        and verified["events"] == events + 2
        and offline["events"] == events,
        "verify_ok": bool(verified["ok"]) and bool(offline["ok"]) and bool(csv_info["signature"]),
        "bytes": {
            "sqlite3": floor_out.stat().st_size,
            "csv": csv_out.stat().st_size,
            "jsonl": jsonl_out.stat().st_size,
        },
    }
    for path in work.iterdir():
        path.unlink()
    return {"events": events, "runs": runs, **checks}


def bench_size(home: Path, work: Path, env: dict[str, str], total: int, runs: int) -> dict[str, object]:
    added, fill_s = fill(home, total)
    samples = [measure(home, work, env) for _ in range(runs)]
    result: dict[str, object] = {k: v for k, v in samples[0].items() if k != "runs"}
    result.update({"fill_added": added, "fill_s": fill_s})
    for op in OPS:
        ops = [s["runs"][op] for s in samples]  # type: ignore[index]
        result[f"{op}_s"] = statistics.median(r.wall_s for r in ops)
        result[f"{op}_cpu_s"] = statistics.median(r.cpu_s for r in ops)
        result[f"{op}_rss_mib"] = max(r.max_rss_kib for r in ops) / 1024
    result["rows_ok"] = all(s["rows_ok"] for s in samples)
    result["verify_ok"] = all(s["verify_ok"] for s in samples)
    for op in ("csv", "jsonl"):
        result[f"{op}_ratio"] = float(str(result[f"{op}_s"])) / float(str(result["sqlite3_s"]))
    return result


def startup(env: dict[str, str]) -> Run:
    """`python -m kinko.cli --version`: the Python start and click import every CLI figure includes."""
    runs = [run_child([sys.executable, "-m", "kinko.cli", "--version"], env) for _ in range(3)]
    return min(runs, key=lambda r: r.wall_s)


# -- profiling: cProfile, and a stage-by-stage split beside same-bytes alternatives ------------------


def profile_child(home_path: str, op: str, stats_file: str) -> None:
    """In the child: one Kinko operation, as the CLI runs it, under cProfile."""
    from kinko.ca import audit

    home = Home(Path(home_path))
    out = Path(stats_file).with_suffix("." + op)
    profiler = cProfile.Profile()
    profiler.enable()
    if op == "verify":
        audit.verify_database(home)
    else:
        audit.export(home, out, fmt=op, actor="bench", now=SystemClock().now())
    profiler.disable()
    profiler.dump_stats(stats_file)
    for path in out.parent.glob(out.name + "*"):
        path.unlink()


def _csv_field(column: str) -> str:
    """SQL for one TEXT column as Python's csv.writer (QUOTE_MINIMAL, "\\n" lines) writes it."""
    special = " OR ".join(f"instr({column}, {c})" for c in ("'\"'", "','", "char(10)", "char(13)"))
    return f"CASE WHEN {special} THEN '\"' || replace({column}, '\"', '\"\"') || '\"' ELSE {column} END"


TEXT_COLUMNS = ("time", "actor", "action", "serial", "subscriber", "customer", "details", "prev_hash", "hash")
# Whole lines built by SQLite, fetched as BLOBs (UTF-8 bytes: no decoding, no str, no re-encoding).
CSV_LINE = "seq || ',' || " + " || ',' || ".join(_csv_field(c) for c in TEXT_COLUMNS) + " || char(10)"
CSV_LINES = f"SELECT CAST({CSV_LINE} AS BLOB) FROM ledger ORDER BY seq"  # noqa: S608 - from the column names above
JSON_LINES = (
    "SELECT CAST(json_object("  # noqa: S608 - from the column names above
    + ", ".join(f"'{c}', {c}" for c in ("seq", *TEXT_COLUMNS))
    + ") || char(10) AS BLOB) FROM ledger ORDER BY seq"
)
CANONICAL_SQL = (
    "SELECT seq, prev_hash, hash, json_array(seq, time, actor, action, serial, subscriber, customer, details) "
    "FROM ledger ORDER BY seq"
)


def stages_child(home_path: str, scratch: str, ops: str) -> None:
    """In the child: what each export / verification step costs over the whole ledger, unprofiled.

    Alternatives are checked against Kinko's own output (the same SHA-256 of the file; the same
    verdict), so each time is that of a drop-in replacement.
    """
    from kinko.ca import audit, cms, ledger

    home = Home(Path(home_path))
    store = home.readonly_store
    conn = sqlite3.connect(f"file:{home.db_file}?mode=ro", uri=True)
    out = Path(scratch) / "stage.out"
    rows: dict[str, list[tuple[str, float, str]]] = {}
    reference = {"csv": "", "jsonl": ""}

    def stage(group: str, name: str, work: Callable[[], str | None]) -> None:
        if group != "shared" and group not in ops.split(","):
            return
        seconds, result = float("inf"), None
        for _ in range(REPEATS):  # the fastest of a few: the machine may be shared
            out.unlink(missing_ok=True)  # untimed: truncating a big file in the timed part costs
            start = time.perf_counter()
            result = work()
            seconds = min(seconds, time.perf_counter() - start)
        if group in reference and result is not None:
            reference[group] = reference[group] or result
            result = "same bytes" if result == reference[group] else "DIFFERENT bytes"
        rows.setdefault(group, []).append((name, seconds, result or ""))

    def file_digest() -> str:
        return cms.file_sha256(out).hex()

    def drain(items: Iterable[object]) -> None:
        for _ in items:
            pass

    def kinko_write(fmt: str) -> str:
        # What `ledger export` runs: the store renders the format's lines (ledger.py defines it).
        with out.open("w", encoding="utf-8", newline="") as handle:
            if fmt == "csv":
                handle.write(ledger.CSV_HEADER)
            for line in store.ledger_export_lines(fmt, None, None, None, None):
                handle.write(line)
        return file_digest()

    def reread() -> None:
        if "csv" not in ops.split(","):
            return
        kinko_write("csv")
        seconds = float("inf")
        for _ in range(REPEATS):
            start = time.perf_counter()
            file_digest()
            seconds = min(seconds, time.perf_counter() - start)
        rows["csv"].append(("cms.file_sha256: the file read again for the .sig", seconds, ""))

    def sign() -> None:
        issuers = [home.ca_certificate(r) for r in (["root"] if home.config.ca.single_tier else ["issuing", "root"])]
        cms.sign_detached(bytes(32), home.key("audit"), home.ca_certificate("audit"), issuers, SystemClock().now())

    def write_lines(sql: str, header: str) -> str:
        with out.open("wb") as handle:
            handle.write(header.encode("utf-8"))
            handle.writelines(line for (line,) in conn.execute(sql))
        return file_digest()

    def fstring_csv() -> str:
        def q(text: str) -> str:
            if '"' in text or "," in text or "\n" in text or "\r" in text:
                return '"' + text.replace('"', '""') + '"'
            return text

        with out.open("w", encoding="utf-8", newline="") as handle:
            handle.write(csv_header)
            handle.writelines(
                f"{s},{q(t)},{q(a)},{q(c)},{q(r)},{q(u)},{q(m)},{q(d)},{q(p)},{q(h)}\n"
                for s, t, a, c, r, u, m, d, p, h in conn.execute(SELECT)
            )
        return file_digest()

    def writerows() -> str:
        with out.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(ledger.COLUMNS)
            writer.writerows(conn.execute(SELECT))
        return file_digest()

    def jsonl_reused_encoder() -> str:
        encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        columns = ledger.COLUMNS
        with out.open("w", encoding="utf-8", newline="") as handle:
            handle.writelines(encode(dict(zip(columns, row, strict=True))) + "\n" for row in conn.execute(SELECT))
        return file_digest()

    def canonical_only() -> None:
        for event in store.ledger_events():
            ledger.canonical(*event[:8])

    def hash_only() -> None:
        encoded = b"x" * 230  # about one event's canonical bytes
        for event in store.ledger_events():
            ledger.chain_hash(event.prev_hash, encoded)

    def verify_loop(sql: str, encode: Callable[[tuple[object, ...]], str]) -> str:
        sha256, fromhex = hashlib.sha256, bytes.fromhex
        expected, prev = 1, ledger.GENESIS
        for row in conn.execute(sql):
            if row[0] != expected or row[1] != prev:
                return f"broken at seq {row[0]}"
            digest = sha256(fromhex(prev))
            digest.update(encode(row).encode("utf-8"))
            if digest.hexdigest() != row[2]:
                return f"edited at seq {row[0]}"  # a real verifier would recheck with ledger.canonical first
            prev, expected = row[2], expected + 1
        return f"chain OK, {expected - 1:,} events"

    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    python_sql = (
        "SELECT seq,prev_hash,hash,time,actor,action,serial,subscriber,customer,details FROM ledger ORDER BY seq"
    )
    csv_header = ",".join(ledger.COLUMNS) + "\n"

    stage("shared", "sqlite3 fetch only: for row in cursor (10 columns)", lambda: drain(conn.execute(SELECT)))
    stage("shared", "Store.ledger_events(): fetch + Event(*row) + generator", lambda: drain(store.ledger_events()))
    stage("shared", "fetch + Event + ._asdict()", lambda: drain(e._asdict() for e in store.ledger_events()))
    stage("csv", "Store.ledger_export_lines to a file (what export runs)", lambda: kinko_write("csv"))
    reread()
    stage("csv", "cms.sign_detached + chain (once)", sign)
    stage("csv", "alt: csv.writer.writerows(cursor), no Event", writerows)
    stage("csv", "alt: one f-string a row, a quoting check a field", fstring_csv)
    stage("csv", "alt: CSV lines built in SQL (instr/replace), as BLOBs", lambda: write_lines(CSV_LINES, csv_header))
    stage("jsonl", "Store.ledger_export_lines to a file (what export runs)", lambda: kinko_write("jsonl"))
    stage("jsonl", "alt: one JSONEncoder reused, dict(zip(COLUMNS, row))", jsonl_reused_encoder)
    stage("jsonl", "alt: json_object() lines built in SQL, as BLOBs", lambda: write_lines(JSON_LINES, ""))

    def verify_database() -> str:
        result = audit.verify_database(home)
        return f"ok={result.ok}, {result.events:,} events, {result.checkpoints} checkpoints"

    def verify_chain() -> str:
        problem = ledger.verify_chain(store.ledger_events())
        return "chain OK" if problem is None else str(problem)

    stage("verify", "audit.verify_database (chain + checkpoints)", verify_database)
    stage("verify", "ledger.verify_chain(Store.ledger_events())", verify_chain)
    stage("verify", "fetch + Event + ledger.canonical (json.dumps) only", canonical_only)
    stage("verify", "fetch + Event + ledger.chain_hash (fromhex + sha256) only", hash_only)
    stage(
        "verify",
        "alt: tuples, one JSONEncoder reused",
        lambda: verify_loop(python_sql, lambda r: encoder((r[0], *r[3:]))),
    )
    stage(
        "verify",
        "alt: json_array() in SQL, Python hashes only",
        lambda: verify_loop(CANONICAL_SQL, lambda r: str(r[3])),
    )
    out.unlink(missing_ok=True)
    print(json.dumps(rows))


def run_profile(home: Path, work: Path, env: dict[str, str], ops: list[str]) -> str:
    script = str(Path(__file__).resolve())
    text = io.StringIO()
    for op in ops:
        stats_file = work / f"{op}.prof"
        run_child([sys.executable, script, "--profile-child", str(home), op, str(stats_file)], env)
        stats = pstats.Stats(str(stats_file), stream=text)
        total = stats.total_tt  # type: ignore[attr-defined]
        what = "audit.verify_database()" if op == "verify" else f"audit.export(fmt={op!r})"
        text.write(f"cProfile of {what} ({total:.2f} s profiled), by internal time:\n")
        stats.sort_stats("tottime").print_stats(12)
        text.write("by cumulative time:\n")
        stats.sort_stats("cumulative").print_stats(12)
        stats_file.unlink()
    run = run_child([sys.executable, script, "--stages-child", str(home), str(work), ",".join(ops)], env)
    groups = json.loads(run.stdout)
    width = max(len(str(n)) for v in groups.values() for n, _, _ in v)
    text.write(
        f"Stages, unprofiled, one process, whole ledger, fastest of {REPEATS} (same bytes: SHA-256 = Kinko's):\n"
    )
    for group, items in groups.items():
        text.write(f"  [{group}]\n")
        for name, seconds, note in items:
            text.write(f"    {name:<{width}}  {seconds:7.3f} s  {note}\n")
    return text.getvalue()


# -- the report -------------------------------------------------------------------------------------


def verify_limit(result: dict[str, object]) -> float:
    """5 s for 1M events, in proportion for another --events."""
    return TARGETS["verify_s"] * float(str(result["events"])) / TARGETS["verify_events"]


def verdicts(small: dict[str, object], large: dict[str, object]) -> dict[str, bool]:
    def f(r: dict[str, object], key: str) -> float:
        return float(str(r[key]))

    passed = {}
    for r in (small, large):
        n = r["events"]
        for op in ("csv", "jsonl"):
            passed[f"{op}_ratio_{n}"] = f(r, f"{op}_ratio") <= TARGETS["export_ratio"]
        passed[f"rows_and_verify_{n}"] = bool(r["rows_ok"]) and bool(r["verify_ok"])
    passed["verify_s"] = f(large, "verify_s") <= verify_limit(large)
    for op in ("csv", "jsonl", "verify"):
        passed[f"{op}_rss_flat"] = f(large, f"{op}_rss_mib") <= TARGETS["rss_growth"] * f(small, f"{op}_rss_mib")
    return passed


def table(results: list[dict[str, object]], passed: dict[str, bool], boot: Run) -> str:
    head = f"{'events':>9}  {'operation':<34} {'wall s':>7} {'cpu s':>7} {'max RSS MiB':>11} {'out bytes':>13}"
    head += f"  {'x sqlite3':>9}"
    lines = [head, "-" * len(head)]
    labels = {
        "sqlite3": "sqlite3 -csv -header (the floor)",
        "csv": "kinko ledger export --format csv",
        "jsonl": "kinko ledger export --format jsonl",
        "verify": "kinko ledger verify",
        "offline": "kinko ledger verify --export F.csv",
    }
    for r in results:
        out_bytes: dict[str, int] = r["bytes"]  # type: ignore[assignment]
        for i, op in enumerate(OPS):
            n = f"{r['events']:,}" if i == 0 else ""
            ratio = f"{float(str(r[f'{op}_s'])) / float(str(r['sqlite3_s'])):.2f}x"
            size = f"{out_bytes[op]:,}" if op in out_bytes else ""
            lines.append(
                f"{n:>9}  {labels[op]:<34} {r[f'{op}_s']:>7.3f} {r[f'{op}_cpu_s']:>7.2f}"
                f" {r[f'{op}_rss_mib']:>11.1f} {size:>13}  {ratio:>9}"
            )
    lines.append("")
    lines.append("wall s = the whole process; for Kinko that includes Python start and imports (`kinko --version`:")
    lines.append(
        f"{boot.wall_s:.3f} s, {boot.max_rss_kib / 1024:.1f} MiB). Each export appends a ledger.exported event."
    )
    fills = ", ".join(f"+{r['fill_added']:,} events in {r['fill_s']:.1f} s" for r in results)
    rate = sum(int(str(r["fill_added"])) for r in results) / sum(float(str(r["fill_s"])) for r in results)
    lines.append(
        f"Fill through Writer.append_event, {BATCH:,}/transaction (no target): {fills} ({rate:,.0f} events/s)."
    )
    lines.append("")
    small, large = results[0], results[-1]
    for r in results:
        n = r["events"]
        for op in ("csv", "jsonl"):
            ok = passed[f"{op}_ratio_{n}"]
            cpu = float(str(r[f"{op}_cpu_s"])) / max(float(str(r["sqlite3_cpu_s"])), 0.01)
            lines.append(
                f"{n:>9,}  export {op:<5} / sqlite3 CLI: {r[f'{op}_ratio']:.2f}x (target <= 2x)  {MARK[ok]}"
                f"   (cpu time {cpu:.2f}x)"
            )
        ok = passed[f"rows_and_verify_{n}"]
        lines.append(
            f"{'':>9}  rows: sqlite3 {r['sqlite3_rows']:,}, csv {r['csv_rows']:,}, jsonl {r['jsonl_rows']:,};"
            f" verify {r['verify_events']:,} events / {r['verify_checkpoints']} checkpoints OK,"
            f" offline {r['offline_events']:,} OK  {MARK[ok]}"
        )
    limit, ok = verify_limit(large), passed["verify_s"]
    lines.append(f"{large['events']:>9,}  ledger verify {large['verify_s']:.2f} s (target <= {limit:g} s)  {MARK[ok]}")
    for op in ("csv", "jsonl", "verify"):
        growth = float(str(large[f"{op}_rss_mib"])) / float(str(small[f"{op}_rss_mib"]))
        lines.append(
            f"{'':>9}  {labels[op]:<34} max RSS {small[f'{op}_rss_mib']:.1f} -> {large[f'{op}_rss_mib']:.1f} MiB"
            f" = {growth:.2f}x (target <= 1.2x)  {MARK[passed[f'{op}_rss_flat']]}"
        )
    growth = float(str(large["offline_rss_mib"])) / float(str(small["offline_rss_mib"]))
    lines.append(f"{'':>9}  {labels['offline']:<34} max RSS {growth:.2f}x, {large['offline_s']:.2f} s (no target)")
    return "\n".join(lines)


def failing_ops(passed: dict[str, bool]) -> list[str]:
    failed = [key for key, ok in passed.items() if not ok]
    return [op for op in PROFILED if any(key.startswith(op) for key in failed)]


def unshadow_packages() -> None:
    """Run as `python bench/ledger.py`, sys.path[0] is bench/, whose crl.py/ocsp.py would shadow Kinko's packages."""
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]


def main() -> None:
    unshadow_packages()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=EVENTS, help="ledger size measured against the targets")
    parser.add_argument("--small", type=int, default=SMALL, help="smaller size, the baseline for memory flatness")
    parser.add_argument("--runs", type=int, default=1, help="runs of each operation per size (median time, max RSS)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--profile",
        choices=("auto", "all", "none"),
        default="auto",
        help="profile failing (auto) or all Kinko operations",
    )
    parser.add_argument("--profile-child", nargs=3, metavar=("HOME", "OP", "STATS"), help=argparse.SUPPRESS)
    parser.add_argument("--stages-child", nargs=3, metavar=("HOME", "SCRATCH", "OPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.profile_child:
        profile_child(*args.profile_child)
        return
    if args.stages_child:
        stages_child(*args.stages_child)
        return
    if not 0 < args.small < args.events:
        parser.error("--small must be positive and below --events")

    started, load_before = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="kinko-bench-ledger-") as tmp:
        passfile = Path(tmp) / "passphrase.txt"
        passfile.write_text(secrets.token_urlsafe(24) + "\n")
        passfile.chmod(0o600)
        env = {**os.environ, "KINKO_PASSPHRASE_FILE": str(passfile)}
        env.pop("KINKO_HOME", None)
        work = Path(tmp) / "out"
        work.mkdir()
        home = new_home(Path(tmp), passfile)
        boot = startup(env)
        results = []
        for n in (args.small, args.events):
            results.append(bench_size(home, work, env, n, args.runs))
            print(f"[{time.perf_counter() - started:6.1f} s] {n:,} events measured", file=sys.stderr)
        passed = verdicts(results[0], results[-1])
        ops = list(PROFILED) if args.profile == "all" else failing_ops(passed) if args.profile == "auto" else []
        profile_text = run_profile(home, work, env, ops) if ops else ""
        with contextlib.suppress(OSError):
            shutil.rmtree(work)

    elapsed = time.perf_counter() - started
    if args.json:
        rounded = [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in results]
        report = {
            "sizes": rounded,
            "targets": TARGETS,
            "pass": passed,
            "startup_s": round(boot.wall_s, 3),
            "elapsed_s": round(elapsed, 1),
            "load_avg_1min": [load_before, os.getloadavg()[0]],
        }
        print(json.dumps(report, indent=2, ensure_ascii=False))
        print(profile_text, file=sys.stderr, end="")
        return
    print(table(results, passed, boot))
    version = subprocess.run(["sqlite3", "--version"], capture_output=True, text=True).stdout.split()[0]
    print(
        f"\n(total run {elapsed:.1f} s; Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version} "
        f"(module) / {version} (CLI), {os.cpu_count()} CPUs, 1-min load {load_before:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end)"
    )
    if profile_text:
        print("\n" + profile_text, end="")


if __name__ == "__main__":
    main()
