"""CRL benchmark: Kinko's full-CRL publication beside `openssl ca -gencrl`, same entries, same key.

For each size N (default 10k, 100k, 1M), in a temp dir:

1. A fresh CA home (EC P-256), its registry filled with N revoked certificates by inserting rows
   straight into kinko.db in one transaction (about 5% held, the rest a mix of reasons, some
   key-compromise rows with an invalidity date).
2. An openssl `index.txt` holding the same serials, revocation times, reasons and invalidity
   dates, and a config with Kinko's issuing CA key and certificate and crl_extensions like
   Kinko's (authorityKeyIdentifier, crlNumber, freshestCRL; no issuingDistributionPoint).
3. Kinko: a child process runs `crl.publisher.publish(home, now, ..., "issuing", "full")` and
   times that call (config, key decryption, DB read, encoding, signing, DB record, fsynced DER and
   PEM writes). openssl: `openssl ca -gencrl` as a child process (parse index.txt, build, sign,
   write PEM), timed as a whole. Peak memory is each child's max RSS as GNU time (`/usr/bin/time
   -f %M`) reports it; without it, a small Python wrapper's RUSAGE_CHILDREN (its ~10 MiB floor
   then shows in small openssl figures).
4. Both CRLs are checked with `openssl crl -noout -CAfile issuing.pem` (parse + signature), their
   entry counts against N, and their revokedCertificates entries compared byte for byte.

Differences openssl forces: its index.txt has no privilegeWithdrawn reason, so those rows are
`superseded` there (the same encoded size); they compare equal after mapping that reason code.
Held rows are plain `certificateHold` (reasonCode 6, no holdInstructionCode), as Kinko writes them.

    python bench/crl.py [--sizes 10000,100000,1000000] [--runs 1] [--json] [--profile]

5. Keeping the full CRL current (issue 12: NSS and Java never fetch deltas): in the same home, a
   child issues one certificate and times `revoke` (once the full CRL holds
   `crl.delta_after_entries` entries, only the delta and the OCSP answer), then times the CA
   service's crl-current job that puts the change into a new full CRL (and an empty delta). A
   revocation reaches clients that read only full CRLs within `[service] full_crl_seconds` plus
   that job's time, which the table prints.

--runs R takes the median of R runs of each tool; --profile then runs one more Kinko publication
at the largest size under cProfile, plus a stage-by-stage split (DB fetch, entry encoding, join,
sign, PEM, file writes), and prints both after the table (on stderr with --json).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from children import Run, run_child  # bench/children.py, beside this script
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from kinko.ca.clock import SystemClock
from kinko.ca.hierarchy import InitOptions, create_home
from kinko.ca.home import Home
from kinko.ca.profiles import issuer_urls
from kinko.ca.serials import format_serial, new_serial
from kinko.ca.store import CertificateRecord

ROOT = Path(__file__).resolve().parent.parent
SIZES = "10000,100000,1000000"
TARGETS = {"time_ratio": 1.5, "max_rss_mib": 1024.0}
MARK = {True: "PASS", False: "FAIL"}
DAY = 86400
BATCH = 50_000  # certificates per transaction in the fill

# (Kinko reason, weight, openssl index.txt reason). openssl 3.0's index.txt knows no
# privilegeWithdrawn; "unspecified" is written without a reason so that, like Kinko, openssl
# omits the reasonCode extension.
REASONS = [
    ("superseded", 30, "superseded"),
    ("cessation-of-operation", 25, "cessationOfOperation"),
    ("key-compromise", 15, "keyCompromise"),
    ("affiliation-changed", 10, "affiliationChanged"),
    ("unspecified", 10, None),
    ("privilege-withdrawn", 5, "superseded"),
    ("certificate-hold", 5, "certificateHold"),
]
# reasonCode extension bytes: privilegeWithdrawn (9) in Kinko's CRL, superseded (4) in openssl's.
_REASON_EXT = b"\x06\x03\x55\x1d\x15\x04\x03\x0a\x01"
PRIVILEGE_WITHDRAWN, SUPERSEDED = _REASON_EXT + b"\x09", _REASON_EXT + b"\x04"

OPENSSL_CNF = """\
[ca]
default_ca = bench_ca
[bench_ca]
dir = {dir}
database = $dir/index.txt
crlnumber = $dir/crlnumber
certificate = {cert}
private_key = {key}
default_md = sha256
unique_subject = no
crl_extensions = crl_ext
[crl_ext]
authorityKeyIdentifier = keyid:always
freshestCRL = URI:{delta_url}
"""

# -- filling the registry and index.txt -------------------------------------------------------------


def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _utc_time(iso: str) -> str:  # YYMMDDHHMMSSZ, openssl's index.txt form
    return iso[2:4] + iso[5:7] + iso[8:10] + iso[11:13] + iso[14:16] + iso[17:19] + "Z"


def _generalized_time(iso: str) -> str:  # YYYYMMDDHHMMSSZ
    return iso[0:4] + _utc_time(iso)[2:]


def populate(home: Home, index_file: Path, n: int, seed: int) -> float:
    """Records N revoked or held certificates as Kinko does (the writer, each change with its ledger
    event, so the publication's integrity check confirms them), and writes the same revocations to
    openssl's index.txt; returns the seconds it took (not measured against anything)."""
    rng = random.Random(seed)
    kinds = rng.choices(REASONS, weights=[w for _, w, _ in REASONS], k=n)
    der = b"\x30\x03\x02\x01\x00"  # the CRL never reads it
    start, now = time.perf_counter(), int(time.time())
    store = Home(home.path).store  # its own connection, closed at the end: the WAL lands in the file
    with index_file.open("w", encoding="ascii") as index:
        for first in range(0, n, BATCH):
            with store.transaction("bench", _iso(now)) as tx:
                for reason, _, openssl_reason in kinds[first : first + BATCH]:
                    serial = format_serial(new_serial())
                    not_after = now + rng.randint(DAY, 365 * DAY)
                    not_before, expiry = _iso(not_after - 365 * DAY), _iso(not_after)
                    lower = serial.lower()
                    record = CertificateRecord(
                        serial,
                        "issuing",
                        "client",
                        "CN=bench",
                        None,
                        not_before,
                        expiry,
                        "valid",
                        not_before,
                        lower.rjust(64, "0"),
                        lower.ljust(64, "f"),
                        der,
                    )
                    assert tx.reserve_serial(serial, "issuing")
                    tx.record_certificate(record)
                    tx.append_event("certificate.issued", serial=serial, details={"issuer": "issuing"})
                    if reason == "certificate-hold":  # a hold takes the transaction's time
                        event = tx.append_event("certificate.held", serial=serial, details={"origin": "officer"})
                        tx.hold(serial, seq=event.seq, origin="officer")
                        revoked_at, invalidity = tx.time, None
                    else:
                        revoked = now - rng.randint(60, 365 * DAY)
                        revoked_at, invalidity = _iso(revoked), None
                        if reason == "key-compromise" and rng.random() < 0.2:
                            invalidity = _iso(revoked - rng.randint(3600, 30 * DAY))
                        details = {"reason": reason, "revoked_at": revoked_at, "invalidity_date": invalidity}
                        event = tx.append_event("certificate.revoked", serial=serial, details=details)
                        tx.revoke(
                            serial, reason=reason, seq=event.seq, invalidity_date=invalidity, revoked_at=revoked_at
                        )
                    field = _utc_time(revoked_at)
                    if invalidity:
                        field += ",keyTime," + _generalized_time(invalidity)  # keyCompromise + invalidityDate
                    elif openssl_reason:
                        field += "," + openssl_reason
                    index.write(f"R\t{_utc_time(expiry)}\t{field}\t{serial}\tunknown\t/CN=bench\n")
    store.close()  # the last connection: the WAL is checkpointed into the database file Kinko then reads
    return time.perf_counter() - start


# -- measured child processes ---------------------------------------------------------------------


def kinko_child(home_path: str) -> None:
    """In the child: one timed publish() of the issuing CA's full CRL; prints JSON."""
    from kinko.crl.publisher import publish

    start = time.perf_counter()
    published = publish(Home(Path(home_path)), SystemClock().now(), "bench", "issuing", "full")
    elapsed = time.perf_counter() - start
    report = {
        "publish_s": elapsed,
        "entries": published.entries,
        "number": published.number,
        "der_path": str(published.der_path),
        "pem_path": str(published.pem_path),
    }
    print(json.dumps(report))


def current_child(home_path: str) -> None:
    """In the child: one revocation at N entries, then the schedule's job that brings it into a new
    full CRL; prints JSON."""
    import datetime as dt

    from cryptography.hazmat.primitives.asymmetric import ec

    from kinko.ca.clock import FixedClock
    from kinko.ca.lifecycle import Kinko
    from kinko.ca.service.jobs import keep_full_crl_current

    home = Home(Path(home_path))
    officer = Kinko(home, actor="bench")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "bench")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    serial = officer.issue(csr.public_bytes(serialization.Encoding.PEM), name="ベンチ 太郎").record.serial
    start = time.perf_counter()
    change = officer.revoke(serial, reason="key-compromise")
    revoke_s = time.perf_counter() - start
    interval = home.config.service.full_crl_seconds
    # The job runs once the interval since the last full CRL has passed, as in the service.
    later = FixedClock(SystemClock().now() + dt.timedelta(seconds=interval))
    service = Kinko(Home(Path(home_path)), clock=later, actor="kinko-service")
    start = time.perf_counter()
    result = keep_full_crl_current(service)
    job_s = time.perf_counter() - start
    full = service.home.store.latest_crl("issuing", "full")
    report = {
        "revoke_s": revoke_s,
        "revoke_published": [c.kind for c in change.crls],
        "job_s": job_s,
        "job_result": result,
        "full_entries_after": full.entries if full else None,
        "interval_s": interval,
    }
    print(json.dumps(report))


def profile_child(home_path: str, stats_file: str) -> None:
    """In the child: publish() under cProfile, then the same work stage by stage, timed."""
    from kinko.crl.builder import CRLBuilder, encode_entry, pem
    from kinko.crl.publisher import publish, write_atomically

    home = Home(Path(home_path))
    profiler = cProfile.Profile()
    profiler.enable()
    publish(home, SystemClock().now(), "bench", "issuing", "full")
    profiler.disable()
    profiler.dump_stats(stats_file)

    home = Home(Path(home_path))
    stages: dict[str, float] = {}

    def mark(name: str, since: float) -> float:
        now = time.perf_counter()
        stages[name] = now - since
        return now

    t = time.perf_counter()
    key, certificate = home.key("issuing"), home.ca_certificate("issuing")
    t = mark("load config + decrypt key + CA cert", t)
    with home.store.reading():
        rows = list(home.store.crl_entries("issuing", "1970-01-01T00:00:00Z"))
    t = mark("DB fetch (list of rows)", t)
    encoded = list(map(encode_entry, rows))
    t = mark("encode_entry x N", t)
    joined = b"".join(encoded)
    t = mark("join entries", t)
    del encoded, joined
    builder = CRLBuilder().issuer_name(certificate.subject).this_update("2026-01-01T00:00:00Z")
    builder = builder.next_update("2026-01-03T00:00:00Z").entries(rows)
    t = time.perf_counter()
    tbs, _ = builder.tbs(key)
    t = mark("CRLBuilder.tbs (encode + join + header, again)", t)
    key.sign_data(tbs)
    t = mark("ECDSA sign_data over the TBS", t)
    der, _ = builder.sign(key)
    t = time.perf_counter()
    armoured = pem(der)
    t = mark("PEM armour", t)
    scratch = Path(home_path) / "scratch"
    scratch.mkdir(exist_ok=True)
    write_atomically(scratch / "x.crl", der)
    write_atomically(scratch / "x.pem", armoured)
    mark("write_atomically DER + PEM (fsync)", t)
    print(json.dumps(stages))


def bench_current(home: Home) -> tuple[Run, dict[str, object]]:
    run = run_child([sys.executable, str(Path(__file__).resolve()), "--current-child", str(home.path)])
    return run, json.loads(run.stdout)


def bench_kinko(home: Home) -> tuple[Run, dict[str, object]]:
    run = run_child([sys.executable, str(Path(__file__).resolve()), "--kinko-child", str(home.path)])
    return run, json.loads(run.stdout)


def setup_openssl(work: Path, home: Home, passfile: Path) -> list[str]:
    ca_dir = work / "openssl-ca"
    ca_dir.mkdir()
    (ca_dir / "crlnumber").write_text("1000\n")
    urls = issuer_urls(home.config.ca.base_url, "issuing")
    cnf = ca_dir / "openssl.cnf"
    cnf.write_text(
        OPENSSL_CNF.format(
            dir=ca_dir,
            cert=home.public_dir / "ca" / "issuing.pem",
            key=home.keys_dir / "issuing.key",
            delta_url=urls.delta_crl,
        )
    )
    out = ca_dir / "crl.pem"
    fixed = ["openssl", "ca", "-gencrl", "-crldays", "2", "-passin", f"file:{passfile}"]
    return [*fixed, "-config", str(cnf), "-out", str(out)]


# -- checking the outputs ---------------------------------------------------------------------------


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, end) of the DER element at pos."""
    tag, first = data[pos], data[pos + 1]
    if first < 0x80:
        return tag, pos + 2, pos + 2 + first
    count = first & 0x7F
    size = int.from_bytes(data[pos + 2 : pos + 2 + count], "big")
    return tag, pos + 2 + count, pos + 2 + count + size


def revoked_entries(der: bytes) -> list[bytes]:
    """The DER of each revokedCertificates entry, in CRL order."""
    _, tbs_start, _ = _tlv(der, 0)
    _, pos, tbs_end = _tlv(der, tbs_start)
    for optional_tag in (0x02, None, None, None, 0x17):  # version, sigalg, issuer, thisUpdate, nextUpdate
        tag, _, end = _tlv(der, pos)
        if optional_tag is None or tag in (optional_tag, 0x18):
            pos = end
    if pos >= tbs_end or der[pos] != 0x30:
        return []
    _, pos, end = _tlv(der, pos)
    entries = []
    while pos < end:
        _, _, next_pos = _tlv(der, pos)
        entries.append(der[pos:next_pos])
        pos = next_pos
    return entries


def verify(pem_file: Path, ca_pem: Path) -> None:
    result = subprocess.run(
        ["openssl", "crl", "-noout", "-CAfile", str(ca_pem), "-in", str(pem_file)], capture_output=True, text=True
    )
    if result.returncode != 0 or "verify OK" not in result.stderr + result.stdout:
        raise RuntimeError(f"openssl crl rejects {pem_file}: {result.stderr.strip()}")


def check_outputs(kinko_pem: Path, openssl_pem: Path, ca_pem: Path, n: int) -> dict[str, object]:
    verify(kinko_pem, ca_pem)
    verify(openssl_pem, ca_pem)
    kinko_crl = x509.load_pem_x509_crl(kinko_pem.read_bytes())
    openssl_crl = x509.load_pem_x509_crl(openssl_pem.read_bytes())
    kinko_der = kinko_crl.public_bytes(serialization.Encoding.DER)
    openssl_der = openssl_crl.public_bytes(serialization.Encoding.DER)
    kinko_entries = sorted(e.replace(PRIVILEGE_WITHDRAWN, SUPERSEDED) for e in revoked_entries(kinko_der))
    openssl_entries = sorted(revoked_entries(openssl_der))
    return {
        "kinko_entries": len(kinko_crl),
        "openssl_entries": len(openssl_crl),
        "counts_ok": len(kinko_crl) == len(openssl_crl) == n,
        "entries_identical": kinko_entries == openssl_entries,
        "kinko_der_bytes": len(kinko_der),
        "openssl_der_bytes": len(openssl_der),
    }


# -- the run ----------------------------------------------------------------------------------------


def bench_size(work: Path, passfile: Path, n: int, runs: int, seed: int) -> tuple[dict[str, object], Path]:
    options = InitOptions(organization="興産信用金庫", passphrase_file=passfile)
    home = create_home(work / "home", options, SystemClock(), "bench")
    home.store.close()
    fill_s = populate(home, work / "index.txt", n, seed)
    argv = setup_openssl(work, home, passfile)
    shutil.move(work / "index.txt", work / "openssl-ca" / "index.txt")

    kinko_runs, openssl_runs = [], []
    for _ in range(runs):  # alternate, so drift in the machine hits both alike
        kinko_runs.append(bench_kinko(home))
        openssl_runs.append(run_child(argv))
    info = kinko_runs[-1][1]
    kinko_pem, openssl_pem = Path(str(info["pem_path"])), work / "openssl-ca" / "crl.pem"
    checks = check_outputs(kinko_pem, openssl_pem, home.public_dir / "ca" / "issuing.pem", n)
    current_run, current = bench_current(home)  # after the checks: it adds an entry
    figures = {
        "entries": n,
        "fill_s": round(fill_s, 2),
        "kinko_publish_s": statistics.median(float(str(r[1]["publish_s"])) for r in kinko_runs),
        "kinko_process_s": statistics.median(r[0].wall_s for r in kinko_runs),
        "kinko_cpu_s": statistics.median(r[0].cpu_s for r in kinko_runs),
        "kinko_max_rss_mib": max(r[0].max_rss_kib for r in kinko_runs) / 1024,
        "kinko_pem_bytes": kinko_pem.stat().st_size,
        "openssl_s": statistics.median(r.wall_s for r in openssl_runs),
        "openssl_cpu_s": statistics.median(r.cpu_s for r in openssl_runs),
        "openssl_max_rss_mib": max(r.max_rss_kib for r in openssl_runs) / 1024,
        "openssl_pem_bytes": openssl_pem.stat().st_size,
        **checks,
        "revoke_s": current["revoke_s"],
        "revoke_published": "+".join(str(kind) for kind in current["revoke_published"]),  # type: ignore[attr-defined]
        "full_job_s": current["job_s"],
        "full_job_entries": current["full_entries_after"],
        "full_job_max_rss_mib": current_run.max_rss_kib / 1024,
        # A revocation that published a full CRL itself is in one at once.
        "full_visible_within_s": 0.0
        if "full" in current["revoke_published"]  # type: ignore[operator]
        else float(str(current["interval_s"])) + float(str(current["job_s"])),
    }
    figures["time_ratio"] = figures["kinko_publish_s"] / figures["openssl_s"]
    figures["process_ratio"] = figures["kinko_process_s"] / figures["openssl_s"]
    return figures, home.path


def run_profile(home_path: Path, work: Path) -> str:
    stats_file = work / "publish.prof"
    script = str(Path(__file__).resolve())
    run = run_child([sys.executable, script, "--profile-child", str(home_path), str(stats_file)])
    stages = json.loads(run.stdout)
    text = io.StringIO()
    stats = pstats.Stats(str(stats_file), stream=text)
    total = stats.total_tt  # type: ignore[attr-defined]
    text.write(f"cProfile of one Kinko publish() ({total:.2f} s profiled), by internal time:\n")
    stats.sort_stats("tottime").print_stats(15)
    text.write("by cumulative time:\n")
    stats.sort_stats("cumulative").print_stats(15)
    width = max(len(k) for k in stages)
    lines = [f"  {name:<{width}}  {seconds:8.3f} s" for name, seconds in stages.items()]
    return "Kinko stages, unprofiled (same home, one process):\n" + "\n".join(lines) + "\n\n" + text.getvalue()


def table(results: list[dict[str, object]]) -> str:
    def mib(x: object) -> str:
        return f"{float(str(x)):,.1f}"

    head = f"{'entries':>9}  {'tool':<8} {'timed s':>8} {'process s':>9} {'cpu s':>7} {'DER bytes':>12}"
    head += f" {'PEM bytes':>12} {'max RSS MiB':>11}"
    lines = [head, "-" * len(head)]
    for r in results:
        n = f"{r['entries']:,}"
        lines.append(
            f"{n:>9}  {'kinko':<8} {r['kinko_publish_s']:>8.3f} {r['kinko_process_s']:>9.3f} {r['kinko_cpu_s']:>7.2f}"
            f" {r['kinko_der_bytes']:>12,} {r['kinko_pem_bytes']:>12,} {mib(r['kinko_max_rss_mib']):>11}"
        )
        lines.append(
            f"{'':>9}  {'openssl':<8} {r['openssl_s']:>8.3f} {r['openssl_s']:>9.3f} {r['openssl_cpu_s']:>7.2f}"
            f" {r['openssl_der_bytes']:>12,} {r['openssl_pem_bytes']:>12,} {mib(r['openssl_max_rss_mib']):>11}"
        )
    lines.append("")
    lines.append("kinko timed s = the publish() call; process s = the whole child (Python start, imports).")
    lines.append("openssl timed s = the whole `openssl ca -gencrl` process.")
    fills = ", ".join(f"{r['entries']:,} in {r['fill_s']:.1f} s" for r in results)
    lines.append(f"Registry + index.txt fill (not timed above): {fills}.")
    lines.append("")
    lines.append("Keeping the full CRL current (NSS and Java read no deltas):")
    head = f"{'entries':>9}  {'revoke s':>9} {'published':<11} {'full CRL job s':>14} {'job RSS MiB':>11}"
    head += f" {'in a full CRL within s':>22}"
    lines += [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r['full_job_entries']:>9,}  {r['revoke_s']:>9.3f} {r['revoke_published']:<11} {r['full_job_s']:>14.3f}"
            f" {mib(r['full_job_max_rss_mib']):>11} {r['full_visible_within_s']:>22.1f}"
        )
    lines.append("revoke s: the command's own publication (delta and OCSP once the full CRL is large);")
    lines.append("the job is the CA service's crl-current, after [service] full_crl_seconds: hence 'within'.")
    lines.append("")
    for r in results:
        n = f"{r['entries']:,}"
        time_ok, rss_ok = r["time_ratio"] <= TARGETS["time_ratio"], r["kinko_max_rss_mib"] <= TARGETS["max_rss_mib"]
        same_ok = bool(r["counts_ok"]) and bool(r["entries_identical"])
        lines.append(f"{n:>9}  kinko/openssl time {r['time_ratio']:.2f}x (target <= 1.5x)  {MARK[time_ok]}")
        lines.append(f"{'':>9}  kinko/openssl whole process {r['process_ratio']:.2f}x (no target)")
        lines.append(f"{'':>9}  kinko max RSS {mib(r['kinko_max_rss_mib'])} MiB (target <= 1024 MiB)  {MARK[rss_ok]}")
        lines.append(
            f"{'':>9}  entries kinko {r['kinko_entries']:,} / openssl {r['openssl_entries']:,}, "
            f"byte-identical: {'yes' if r['entries_identical'] else 'no'}; both verify  {MARK[same_ok]}"
        )
    return "\n".join(lines)


def unshadow_crl_package() -> None:
    """Run as `python bench/crl.py`, sys.path[0] is bench/ and `import crl` would find this file."""
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]


def main() -> None:
    unshadow_crl_package()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=SIZES, help="comma-separated entry counts")
    parser.add_argument("--runs", type=int, default=1, help="runs of each tool per size (median)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--profile", action="store_true", help="profile one Kinko publish at the largest size")
    parser.add_argument("--seed", type=int, default=20261125, help=argparse.SUPPRESS)
    parser.add_argument("--kinko-child", metavar="HOME", help=argparse.SUPPRESS)
    parser.add_argument("--profile-child", nargs=2, metavar=("HOME", "STATS"), help=argparse.SUPPRESS)
    parser.add_argument("--current-child", metavar="HOME", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kinko_child:
        kinko_child(args.kinko_child)
        return
    if args.current_child:
        current_child(args.current_child)
        return
    if args.profile_child:
        profile_child(*args.profile_child)
        return

    started = time.perf_counter()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results, profile_text = [], ""
    with tempfile.TemporaryDirectory(prefix="kinko-bench-crl-") as tmp:
        passfile = Path(tmp) / "passphrase.txt"
        passfile.write_text(secrets.token_urlsafe(24) + "\n")
        passfile.chmod(0o600)
        for n in sizes:
            work = Path(tmp) / f"n{n}"
            work.mkdir()
            figures, home_path = bench_size(work, passfile, n, args.runs, args.seed)
            results.append(figures)
            print(f"[{time.perf_counter() - started:6.1f} s] {n:,} entries done", file=sys.stderr)
            if args.profile and n == max(sizes):
                profile_text = run_profile(home_path, work)
            shutil.rmtree(work)

    elapsed = time.perf_counter() - started
    passed = {
        str(r["entries"]): {
            "time_ratio": r["time_ratio"] <= TARGETS["time_ratio"],
            "kinko_max_rss": r["kinko_max_rss_mib"] <= TARGETS["max_rss_mib"],
            "same_entries": bool(r["counts_ok"]) and bool(r["entries_identical"]),
        }
        for r in results
    }
    if args.json:
        rounded = [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in results]
        report = {"sizes": rounded, "targets": TARGETS, "pass": passed, "elapsed_s": round(elapsed, 1)}
        print(json.dumps(report, indent=2))
        print(profile_text, file=sys.stderr, end="")
        return
    print(table(results))
    version = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    print(f"\n(total run {elapsed:.1f} s; Python {sys.version.split()[0]}, {version}, {os.cpu_count()} CPUs)")
    if profile_text:
        print("\n" + profile_text, end="")


if __name__ == "__main__":
    main()
