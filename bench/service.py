"""CA service benchmark: issuance, a fresh-process `cert show` and a revoke, through the service's
socket beside direct mode, in one run.

In a temp dir, a fresh CA home and `kinko service run` on a socket (as this account: what is
measured is the socket, the protocol and the service's process, not the permissions):

1. issuance: N x `issue` from one client process through the socket (`kinko.ca.service.client.call`,
   one connection per request, as the CLI makes them), against N x `Kinko.issue` in-process on a
   second home of the same kind. certs/s; target: through the service >= 0.8x direct.
2. `python -m kinko.cli --socket S cert show SERIAL` as a fresh process, R times; median ms;
   target <= 200 ms (the direct-mode figure is shown beside it).
3. revoke round trip: R x `kinko revoke` as fresh processes, through the service and direct;
   median ms; target: through the service <= 2x direct.
4. For reference, `kinko issue` as fresh processes each way (what an officer waits for): the
   service has the CA key loaded; direct mode decrypts it in every process.

    python bench/service.py [--n 500] [--runs 15] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kinko.ca.clock import SystemClock
from kinko.ca.hierarchy import InitOptions, create_home
from kinko.ca.lifecycle import Kinko
from kinko.ca.officers import current_login
from kinko.ca.service.client import call

TARGETS = {"issue_ratio": 0.8, "show_ms": 200.0, "revoke_ratio": 2.0}
MARK = {True: "PASS", False: "FAIL"}


def csrs(count: int) -> list[bytes]:
    made = []
    for _ in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        request = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
        made.append(request.public_bytes(serialization.Encoding.PEM))
    return made


def _csr_files(work: Path, prefix: str, count: int) -> list[Path]:
    files = []
    for i, csr in enumerate(csrs(count)):
        files.append(work / f"{prefix}-{i}.csr")
        files[-1].write_bytes(csr)
    return files


def median_ms(argv: list[str], runs: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="certificates issued each way")
    parser.add_argument("--runs", type=int, default=15, help="fresh processes per median")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="kinko-bench-service-") as tmp:
        work = Path(tmp)
        passfile = work / "passphrase.txt"
        passfile.write_text(secrets.token_urlsafe(24) + "\n")
        passfile.chmod(0o600)  # a passphrase file others may read is refused
        env = {**os.environ, "KINKO_PASSPHRASE_FILE": str(passfile)}
        options = InitOptions(organization="興産信用金庫", passphrase_file=passfile)
        served = create_home(work / "served", options, SystemClock(), current_login())
        direct = create_home(work / "direct", options, SystemClock(), current_login())
        sock = work / "kinko.sock"
        server = subprocess.Popen(
            [sys.executable, "-m", "kinko.cli", "--home", str(served.path), "service", "run", "--listen", str(sock)],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        try:
            while not sock.exists():
                time.sleep(0.02)
            requests = csrs(args.n)
            start = time.perf_counter()
            serials = []
            for csr in requests:
                reply = call(sock, "issue", {"csr": csr, "name": "山田 太郎"}, True)
                serials.append(json.loads(reply["stdout"])["serial"])
            service_rate = args.n / (time.perf_counter() - start)
            kinko = Kinko(direct, clock=SystemClock(), actor=current_login())
            direct_requests = csrs(args.n)  # made before the clock starts, as for the service
            start = time.perf_counter()
            direct_serials = [kinko.issue(csr, name="山田 太郎").record.serial for csr in direct_requests]
            direct_rate = args.n / (time.perf_counter() - start)
            direct.store.close()

            cli = [sys.executable, "-m", "kinko.cli"]
            show_service = median_ms([*cli, "--socket", str(sock), "cert", "show", serials[0]], args.runs, env)
            show_direct = median_ms(
                [*cli, "--home", str(direct.path), "cert", "show", direct_serials[0]], args.runs, env
            )
            revoke_service = statistics.median(
                median_ms([*cli, "--socket", str(sock), "revoke", serial, "--reason", "superseded"], 1, env)
                for serial in serials[1 : 1 + args.runs]
            )
            issue_cli_service = statistics.median(
                median_ms([*cli, "--socket", str(sock), "issue", "--csr", str(f), "--name", "山田 太郎"], 1, env)
                for f in _csr_files(work, "served", args.runs)
            )
            issue_cli_direct = statistics.median(
                median_ms([*cli, "--home", str(direct.path), "issue", "--csr", str(f), "--name", "山田 太郎"], 1, env)
                for f in _csr_files(work, "direct", args.runs)
            )
            revoke_direct = statistics.median(
                median_ms([*cli, "--home", str(direct.path), "revoke", serial, "--reason", "superseded"], 1, env)
                for serial in direct_serials[1 : 1 + args.runs]
            )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=10)

    issue_ratio, revoke_ratio = service_rate / direct_rate, revoke_service / revoke_direct
    passed = {
        "issue_ratio": issue_ratio >= TARGETS["issue_ratio"],
        "show_ms": show_service <= TARGETS["show_ms"],
        "revoke_ratio": revoke_ratio <= TARGETS["revoke_ratio"],
    }
    figures = {
        "n": args.n,
        "runs": args.runs,
        "issue_service_per_s": round(service_rate, 1),
        "issue_direct_per_s": round(direct_rate, 1),
        "issue_ratio": round(issue_ratio, 3),
        "cert_show_service_ms": round(show_service, 1),
        "cert_show_direct_ms": round(show_direct, 1),
        "revoke_service_ms": round(revoke_service, 1),
        "revoke_direct_ms": round(revoke_direct, 1),
        "revoke_ratio": round(revoke_ratio, 2),
        "issue_cli_service_ms": round(issue_cli_service, 1),
        "issue_cli_direct_ms": round(issue_cli_direct, 1),
        "pass": passed,
        "load": [load_before, os.getloadavg()[0]],
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    rows = [
        (f"issue through the service (N={args.n})", f"{service_rate:,.1f} certs/s", ""),
        (f"issue direct, in-process (N={args.n})", f"{direct_rate:,.1f} certs/s", ""),
        ("service / direct (target >= 0.8x)", f"{issue_ratio:.3f}x", MARK[passed["issue_ratio"]]),
        (
            f"kinko cert show via the socket, fresh process (median of {args.runs})",
            f"{show_service:,.1f} ms",
            MARK[passed["show_ms"]],
        ),
        (f"kinko cert show direct, fresh process (median of {args.runs})", f"{show_direct:,.1f} ms", ""),
        (f"kinko revoke via the socket, fresh process (median of {args.runs})", f"{revoke_service:,.1f} ms", ""),
        (f"kinko revoke direct, fresh process (median of {args.runs})", f"{revoke_direct:,.1f} ms", ""),
        ("revoke service / direct (target <= 2x)", f"{revoke_ratio:.2f}x", MARK[passed["revoke_ratio"]]),
        (f"kinko issue via the socket, fresh process (median of {args.runs})", f"{issue_cli_service:,.1f} ms", ""),
        (f"kinko issue direct, fresh process (median of {args.runs})", f"{issue_cli_direct:,.1f} ms", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'figure':>16}  check")
    print("-" * (width + 25))
    for label, value, check in rows:
        print(f"{label:<{width}}  {value:>16}  {check}".rstrip())
    print(
        f"\n(total {figures['elapsed_s']} s; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, 1-min load "
        f"{load_before:.2f} at start, {os.getloadavg()[0]:.2f} at end)"
    )


if __name__ == "__main__":
    main()
