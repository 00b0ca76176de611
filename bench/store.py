"""Store benchmark: SQLite and PostgreSQL side by side, in one run on this machine.

In a temp dir, a real PostgreSQL primary and a streaming hot standby (initdb, pg_basebackup -R;
fsync on and synchronous_commit on, as SQLite's synchronous=FULL), started as the `postgres` account:

1. issuance   --issue certificates through the library (`Kinko.issue`: sign, record, ledger event,
              checkpoint, pre-signed OCSP), one transaction each, in a fresh home on each backend.
              Target: PostgreSQL >= 0.5x SQLite (certificates/s).
2. OCSP GET   `kinko ocsp serve` (2 workers) of the SQLite home, and a responder reading the
              standby (`--database`, a copy of the PostgreSQL home without CA keys), each under
              `wrk` for --duration s with a pre-signed GET request. Target: standby >= 0.9x SQLite.
3. full CRL   --crl revoked or held certificates recorded as Kinko records them (bench/crl.py's
              populate: each with its ledger events), the SQLite home then moved to PostgreSQL with
              `kinko db migrate`; one full CRL published on each (a fresh process, the integrity
              check over the issuer's rows included). Target: PostgreSQL <= 1.5x SQLite.
4. replay     `kinko ledger verify` (chain, checkpoints, replay of every event against the tables)
              of those two homes, about 2x --crl events. No target: the ratio is reported.

    python bench/store.py [--issue 300] [--duration 5] [--crl 1000000] [--json]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from children import run_child  # bench/children.py, beside this script
from replay import add_certificates  # bench/replay.py, beside this script

sys.path.append(str(Path(__file__).resolve().parent.parent))  # for tests/postgres.py, after bench/
from kinko.ca.clock import SystemClock
from kinko.ca.hierarchy import InitOptions, create_home
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from kinko.ca.officers import current_login
from tests.postgres import Cluster

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"issue_ratio": 0.5, "ocsp_ratio": 0.9, "crl_ratio": 1.5}
MARK = {True: "PASS", False: "FAIL"}


def new_home(path: Path, passfile: Path, cluster: Cluster | None) -> Home:
    options = InitOptions(organization="興産信用金庫", passphrase_file=passfile)
    if cluster is not None:
        options = InitOptions(
            organization="興産信用金庫",
            passphrase_file=passfile,
            database=cluster.new_database("bench"),
            database_password_file=cluster.passfile,
        )
    home = create_home(path, options, SystemClock(), current_login())
    text = home.config_file.read_text(encoding="utf-8")
    home.config_file.write_text(re.sub(r"(?m)^syslog_socket = .*$", 'syslog_socket = ""', text), encoding="utf-8")
    return Home(path)


def issue_rate(home: Home, n: int) -> float:
    """Certificates per second, each through `Kinko.issue` (one transaction)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    csrs = []
    for _ in range(n):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
        csrs.append(
            x509.CertificateSigningRequestBuilder()
            .subject_name(name)
            .sign(key, hashes.SHA256())
            .public_bytes(serialization.Encoding.DER)
        )
    kinko = Kinko(home)
    kinko.issue(csrs.pop(), name="warm-up")
    start = time.perf_counter()
    for i, csr in enumerate(csrs):
        kinko.issue(csr, name=f"利用者 {i}")
    return len(csrs) / (time.perf_counter() - start)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get_url(home: Home, url: str) -> str:
    """A pre-signed GET request (SHA-1 CertID, no nonce) for the home's newest client certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    record = home.store.certificates(statuses=("valid",), limit=1)[0]
    cert = x509.load_der_x509_certificate(record.der)
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, home.ca_certificate(record.issuer), hashes.SHA1())  # noqa: S303
    der = request.build().public_bytes(serialization.Encoding.DER)
    return url + urllib.parse.quote(base64.b64encode(der).decode(), safe="")


def serve(home: Path, port: int, extra: list[str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kinko.cli",
            "--home",
            str(home),
            "ocsp",
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as reply:
                if reply.status == 200:
                    return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the responder on port {port} did not start")


def wrk(url: str, duration: int) -> float:
    """Requests per second under wrk (2 threads, 16 connections); checks that every answer was a 200."""
    result = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{duration}s", url], capture_output=True, text=True, check=True, timeout=duration + 60
    )
    if "Non-2xx" in result.stdout:
        raise RuntimeError(f"non-2xx answers under load:\n{result.stdout}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)[1])  # type: ignore[index]


def ocsp_rates(
    sqlite_home: Home, pg_home: Home, cluster: Cluster, standby: object, duration: int, work: Path
) -> dict[str, float]:
    responder_home = work / "responder"
    shutil.copytree(pg_home.path, responder_home)
    for key in ("root.key", "issuing.key"):
        (responder_home / "keys" / key).unlink()
    cluster.wait_replayed(standby)  # type: ignore[arg-type]
    name = str(pg_home.database).rsplit("/", 1)[1]
    rates = {}
    for label, home, extra in (
        ("sqlite", sqlite_home.path, []),
        (
            "standby",
            responder_home,
            ["--database", standby.url(name), "--database-password-file", str(cluster.passfile)],
        ),  # type: ignore[attr-defined]
    ):
        port = free_port()
        process = serve(home, port, extra)
        try:
            url = get_url(sqlite_home if label == "sqlite" else pg_home, f"http://127.0.0.1:{port}/")
            with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 - loopback
                assert reply.status == 200 and reply.headers["content-type"] == "application/ocsp-response"
            rates[label] = wrk(url, duration)
        finally:
            os.killpg(process.pid, 15)
            process.wait(timeout=30)
    return rates


def crl_and_replay(work: Path, passfile: Path, cluster: Cluster, n: int) -> dict[str, object]:
    sqlite_home = new_home(work / "crl-sqlite", passfile, None)
    # Every certificate revoked, as bench/replay.py records them (each with its ledger events); the
    # pre-signed responses are left out: neither the CRL nor the replay reads them.
    fill_s = add_certificates(sqlite_home.path, n, revoke_every=1, presign=False)
    shutil.copytree(sqlite_home.path, work / "crl-pg")
    url = cluster.new_database("benchcrl")
    start = time.perf_counter()
    moved = subprocess.run(
        [
            sys.executable,
            "-m",
            "kinko.cli",
            "--home",
            str(work / "crl-pg"),
            "--json",
            "db",
            "migrate",
            "--to",
            url,
            "--database-password-file",
            str(cluster.passfile),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if moved.returncode != 0:
        raise RuntimeError(moved.stderr)
    migrate_s = time.perf_counter() - start
    figures: dict[str, object] = {"crl_entries": n, "fill_s": fill_s, "migrate_s": migrate_s}
    for label, home in (("sqlite", sqlite_home.path), ("postgresql", work / "crl-pg")):
        publish = run_child([sys.executable, str(ROOT / "bench" / "crl.py"), "--kinko-child", str(home)])
        report = json.loads(publish.stdout)
        assert report["entries"] == n, report
        figures[f"crl_{label}_s"] = publish.wall_s
        figures[f"crl_{label}_rss_mib"] = publish.max_rss_kib / 1024
        verify = run_child([sys.executable, "-m", "kinko.cli", "--home", str(home), "--json", "ledger", "verify"])
        verified = json.loads(verify.stdout)
        assert verified["ok"], verified
        figures[f"replay_{label}_s"] = verify.wall_s
        figures["replay_events"] = verified["events"]
    return figures


def table(f: dict[str, object], passed: dict[str, bool]) -> str:
    rows = [
        ("issuance (certs/s)", f["issue_sqlite"], f["issue_postgresql"], f["issue_ratio"], ">= 0.5x", passed["issue"]),
        (
            "OCSP pre-signed GET (req/s)",
            f["ocsp_sqlite"],
            f["ocsp_standby"],
            f["ocsp_ratio"],
            ">= 0.9x",
            passed["ocsp"],
        ),
        (
            f"full CRL, {f['crl_entries']:,} entries (s)",
            f["crl_sqlite_s"],
            f["crl_postgresql_s"],
            f["crl_ratio"],
            "<= 1.5x",
            passed["crl"],
        ),
        (
            f"ledger verify + replay, {f['replay_events']:,} events (s)",
            f["replay_sqlite_s"],
            f["replay_postgresql_s"],
            f["replay_ratio"],
            "none",
            None,
        ),
    ]
    lines = ["| measure | SQLite | PostgreSQL | ratio | target | |", "| --- | --- | --- | --- | --- | --- |"]
    for label, a, b, ratio, target, ok in rows:
        mark = "" if ok is None else MARK[bool(ok)]
        lines.append(f"| {label} | {a:,.2f} | {b:,.2f} | {ratio:.2f}x | {target} | {mark} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issue", type=int, default=300, help="certificates issued on each backend")
    parser.add_argument("--duration", type=int, default=5, help="seconds of wrk load on each responder")
    parser.add_argument("--crl", type=int, default=1_000_000, help="revoked certificates in the CRL stage")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/store.py runs PostgreSQL as the postgres account: run it as root")
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    cluster = Cluster(durable=True)
    try:
        with tempfile.TemporaryDirectory(prefix="kinko-bench-store-") as tmp:
            work = Path(tmp)
            passfile = work / "passphrase.txt"
            passfile.write_text(secrets.token_urlsafe(24) + "\n")
            passfile.chmod(0o600)
            standby = cluster.standby("standby")
            sqlite_home = new_home(work / "sqlite", passfile, None)
            pg_home = new_home(work / "postgresql", passfile, cluster)
            f: dict[str, object] = {
                "issue_sqlite": issue_rate(sqlite_home, args.issue),
                "issue_postgresql": issue_rate(pg_home, args.issue),
            }
            print(f"[{time.perf_counter() - started:6.1f} s] issuance done", file=sys.stderr)
            rates = ocsp_rates(sqlite_home, pg_home, cluster, standby, args.duration, work)
            f["ocsp_sqlite"], f["ocsp_standby"] = rates["sqlite"], rates["standby"]
            print(f"[{time.perf_counter() - started:6.1f} s] OCSP done", file=sys.stderr)
            f.update(crl_and_replay(work, passfile, cluster, args.crl))
            print(f"[{time.perf_counter() - started:6.1f} s] CRL and replay done", file=sys.stderr)
    finally:
        cluster.close()
    f["issue_ratio"] = float(f["issue_postgresql"]) / float(f["issue_sqlite"])  # type: ignore[arg-type]
    f["ocsp_ratio"] = float(f["ocsp_standby"]) / float(f["ocsp_sqlite"])  # type: ignore[arg-type]
    f["crl_ratio"] = float(f["crl_postgresql_s"]) / float(f["crl_sqlite_s"])  # type: ignore[arg-type]
    f["replay_ratio"] = float(f["replay_postgresql_s"]) / float(f["replay_sqlite_s"])  # type: ignore[arg-type]
    passed = {
        "issue": f["issue_ratio"] >= TARGETS["issue_ratio"],  # type: ignore[operator]
        "ocsp": f["ocsp_ratio"] >= TARGETS["ocsp_ratio"],  # type: ignore[operator]
        "crl": f["crl_ratio"] <= TARGETS["crl_ratio"],  # type: ignore[operator]
    }
    import psycopg

    version = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    machine = {
        "cpus": os.cpu_count(),
        "load": [load_before, os.getloadavg()[0]],
        "python": sys.version.split()[0],
        "postgresql": version,
        "psycopg": psycopg.__version__,
        "elapsed_s": time.perf_counter() - started,
    }
    if args.json:
        print(json.dumps({"figures": f, "targets": TARGETS, "pass": passed, "machine": machine}, indent=2))
        return
    print(table(f, passed))
    print(
        f"\n(fill {f['fill_s']:.1f} s and db migrate {f['migrate_s']:.1f} s of the CRL stage, not measured against "
        f"anything; total run {machine['elapsed_s']:.1f} s; {machine['cpus']} CPUs, load {load_before:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end; Python {machine['python']}, {version}, psycopg {machine['psycopg']})"
    )


if __name__ == "__main__":
    main()
