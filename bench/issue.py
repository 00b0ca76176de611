"""Issuance benchmark: Kinko's library path against raw signing and `openssl ca`, in one run.

Measures, on a fresh CA home in a temp dir:

1. Kinko library path: N x `Kinko.issue(csr)`, one committed SQLite transaction each
   (WAL, synchronous=FULL), including the per-call CA key load and decryption. certs/s.
2. Raw sign-only: the same kind of client certificate built and signed with
   `cryptography.x509.CertificateBuilder` and the CA key loaded once. certs/s.
3. `openssl ca -batch`: one process per certificate, same CA key/cert, same CSRs,
   an extension section like Kinko's client profile, for a subset M. certs/s.
4. `python -m kinko.cli --home H cert show SERIAL` as a fresh process, R times: median ms
   (and `python -m kinko.cli --version` for reference).

Only the issue / sign / openssl calls are timed; CSRs are generated beforehand. Run from anywhere:

    python bench/issue.py [--n 2000] [--openssl-n 200] [--runs 15] [--json] [--profile 300]
    python bench/issue.py --against REV [--rounds 3] [--n ...]

--profile K then runs cProfile over K more Kinko issues and prints the top 10 cumulative entries
inside ca/ (after the table; on stderr with --json).

--against REV measures an earlier revision beside this tree in the same run: REV is installed
into a private directory (`pip install --target`, found before the editable install), and its
own bench/issue.py and this one run alternately, --rounds times each; the table gives the
medians and the ratio this tree / REV for issuance and for a fresh `cert show`.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import os
import pstats
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as `python bench/issue.py`, sys.path[0] is bench/, where bench/ocsp.py and bench/crl.py
# would shadow Kinko's `ocsp` and `crl` packages.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

from kinko.ca.clock import SystemClock  # noqa: E402
from kinko.ca.hierarchy import InitOptions, create_home  # noqa: E402
from kinko.ca.lifecycle import Kinko  # noqa: E402
from kinko.ca.officers import current_login  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NAME, ORG = "山田 太郎", "株式会社テスト"
BASE = "http://127.0.0.1:8080"
POLICY_OID = "1.3.6.1.4.1.32473.1.1"  # the default ca.policy_oid in config/kinko.toml
TARGETS = {"openssl": 8.0, "raw": 0.1, "show_ms": 250.0}
MARK = {True: "PASS", False: "FAIL"}

OPENSSL_CNF = f"""\
[ca]
default_ca = bench_ca
[bench_ca]
dir = {{dir}}
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir/newcerts
certificate = {{cert}}
private_key = {{key}}
default_md = sha256
default_days = 365
policy = policy_any
unique_subject = no
copy_extensions = none
string_mask = utf8only
x509_extensions = client_ext
[policy_any]
organizationName = optional
commonName = supplied
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
crlDistributionPoints = URI:{BASE}/crl/issuing.crl
freshestCRL = URI:{BASE}/crl/issuing-delta.crl
authorityInfoAccess = OCSP;URI:{BASE}/,caIssuers;URI:{BASE}/ca/issuing.cer
certificatePolicies = {POLICY_OID}
"""


def make_csrs(n: int) -> list[bytes]:
    """N PEM CSRs, each for its own fresh EC P-256 key."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    out = []
    for _ in range(n):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
        csr = builder.sign(key, hashes.SHA256())
        out.append(csr.public_bytes(serialization.Encoding.PEM))
    return out


def bench_kinko(kinko: Kinko, csrs: list[bytes]) -> tuple[float, list[str]]:
    serials = []
    start = time.perf_counter()
    for csr in csrs:
        serials.append(kinko.issue(csr, name=NAME, organization=ORG).record.serial)
    return len(csrs) / (time.perf_counter() - start), serials


def bench_raw(key_pem: bytes, pw: bytes, issuer: x509.Certificate, csrs: list[bytes]) -> float:
    key = serialization.load_pem_private_key(key_pem, password=pw)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    public_keys = [x509.load_pem_x509_csr(c).public_key() for c in csrs]
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG), x509.NameAttribute(NameOID.COMMON_NAME, NAME)]
    )
    key_usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())
    # The same constant extensions Kinko's client profile adds, so both sides sign the same certificate.
    base = "http://127.0.0.1:8080"
    cdp = x509.CRLDistributionPoints(
        [x509.DistributionPoint([x509.UniformResourceIdentifier(f"{base}/crl/issuing.crl")], None, None, None)]
    )
    freshest = x509.FreshestCRL(
        [x509.DistributionPoint([x509.UniformResourceIdentifier(f"{base}/crl/issuing-delta.crl")], None, None, None)]
    )
    aia = x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(x509.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(base + "/")),
            x509.AccessDescription(
                x509.AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(f"{base}/ca/issuing.cer")
            ),
        ]
    )
    policies = x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier("1.3.6.1.4.1.32473.1.1"), None)])
    start = time.perf_counter()
    for public_key in public_keys:
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .issuer_name(issuer.subject)
            .subject_name(subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(aki, critical=False)
            .add_extension(cdp, critical=False)
            .add_extension(freshest, critical=False)
            .add_extension(aia, critical=False)
            .add_extension(policies, critical=False)
        )
        builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    return len(public_keys) / (time.perf_counter() - start)


def bench_openssl(work: Path, key: Path, cert: Path, passfile: Path, csrs: list[bytes]) -> float:
    ca_dir = work / "openssl-ca"
    (ca_dir / "newcerts").mkdir(parents=True)
    (ca_dir / "index.txt").write_text("")
    (ca_dir / "serial").write_text("1000\n")
    cnf = ca_dir / "openssl.cnf"
    cnf.write_text(OPENSSL_CNF.format(dir=ca_dir, cert=cert, key=key))
    paths = [ca_dir / f"req{i}.pem" for i in range(len(csrs))]
    for path, csr in zip(paths, csrs, strict=True):
        path.write_bytes(csr)
    subj = f"/O={ORG}/CN={NAME}"
    fixed = ["openssl", "ca", "-batch", "-notext", "-days", "365", "-md", "sha256", "-rand_serial", "-utf8"]
    start = time.perf_counter()
    for path in paths:
        argv = [*fixed, "-config", str(cnf), "-subj", subj, "-passin", f"file:{passfile}", "-in", str(path)]
        subprocess.run([*argv, "-out", str(path.with_suffix(".crt"))], check=True, capture_output=True)
    return len(paths) / (time.perf_counter() - start)


def median_ms(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, cwd=ROOT)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def profile_kinko(kinko: Kinko, count: int) -> str:
    csrs = make_csrs(count)
    profiler = cProfile.Profile()
    profiler.enable()
    for csr in csrs:
        kinko.issue(csr, name=NAME, organization=ORG)
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    total = stats.total_tt  # type: ignore[attr-defined]
    stats.sort_stats("cumulative").print_stats(r"/ca/", 10)
    return f"cProfile over {count} more Kinko issues ({total:.2f} s profiled):\n{text.getvalue()}"


def run_json(argv: list[str], env: dict[str, str], cwd: Path) -> dict[str, float]:
    """Runs a benchmark script with --json and returns its figures."""
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, argv))} failed:\n{result.stderr}")
    figures: dict[str, float] = json.loads(result.stdout)
    return figures


def compare(rev: str, rounds: int, passthrough: list[str]) -> None:
    """Measures REV and this tree alternately and prints medians and ratios."""
    with tempfile.TemporaryDirectory(prefix="kinko-before-") as tmp:
        tree, site = Path(tmp) / "tree", Path(tmp) / "site"
        tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(tree)],
            check=True,
            capture_output=True,
        )
        clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        before_env = {**clean, "PYTHONPATH": str(site)}
        runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
        for _ in range(rounds):
            runs["before"].append(
                run_json([sys.executable, str(tree / "bench" / "issue.py"), *passthrough], before_env, tree)
            )
            runs["after"].append(run_json([sys.executable, str(Path(__file__).resolve()), *passthrough], clean, ROOT))

    def median(side: str, key: str) -> float:
        return statistics.median(figures[key] for figures in runs[side])

    rows = [
        ("Kinko library issue, certs/s", "kinko_certs_per_s", True),
        ("kinko cert show, fresh process, ms", "cert_show_median_ms", False),
        ("kinko --version, fresh process, ms", "version_median_ms", False),
        ("openssl ca -batch, certs/s (reference)", "openssl_ca_certs_per_s", True),
    ]
    print(f"{rounds} rounds each, alternating; medians. Before = {rev}, after = this tree.")
    print(f"{'measurement':<40}  {'before':>10}  {'after':>10}  {'after/before':>12}  check")
    print("-" * 90)
    for label, key, higher_is_better in rows:
        before, after = median("before", key), median("after", key)
        ratio = after / before
        # "No slower": within 5% of the earlier revision, the spread between rounds on this machine.
        passed = ratio >= 0.95 if higher_is_better else ratio <= 1.05
        check = "" if "reference" in label else MARK[passed]
        print(f"{label:<40}  {before:>10,.1f}  {after:>10,.1f}  {ratio:>11.3f}x  {check}".rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="certs via Kinko and raw signing")
    parser.add_argument("--openssl-n", type=int, default=200, help="certificates via `openssl ca`")
    parser.add_argument("--runs", type=int, default=15, help="fresh `cert show` processes")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--profile", type=int, default=0, metavar="K", help="cProfile K issues")
    parser.add_argument("--against", metavar="REV", help="measure an earlier revision beside this tree")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side with --against")
    args = parser.parse_args()
    if args.against:
        sizes = ["--n", str(args.n), "--openssl-n", str(args.openssl_n), "--runs", str(args.runs)]
        compare(args.against, args.rounds, ["--json", *sizes])
        return
    started = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="kinko-bench-") as tmp:
        work = Path(tmp)
        passfile = work / "passphrase.txt"
        passfile.write_text(secrets.token_urlsafe(24) + "\n")
        passfile.chmod(0o600)
        options = InitOptions(organization="興産信用金庫", passphrase_file=passfile)
        home = create_home(work / "home", options, SystemClock(), current_login())  # the operator of `cert show`
        csrs = make_csrs(args.n)
        kinko = Kinko(home, clock=SystemClock(), actor="bench")
        kinko_rate, serials = bench_kinko(kinko, csrs)

        key_file = home.keys_dir / "issuing.key"
        cert_file = home.public_dir / "ca" / "issuing.pem"
        issuer_cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        raw_rate = bench_raw(key_file.read_bytes(), home.passphrase(), issuer_cert, csrs)
        # The same CSRs (the first M): openssl's database is its own, so reused keys are fine.
        openssl_rate = bench_openssl(work, key_file, cert_file, passfile, csrs[: args.openssl_n])

        cli = [sys.executable, "-m", "kinko.cli", "--home", str(home.path)]
        show_ms = median_ms([*cli, "cert", "show", serials[len(serials) // 2]], args.runs)
        version_ms = median_ms([sys.executable, "-m", "kinko.cli", "--version"], args.runs)
        profile_text = profile_kinko(kinko, args.profile) if args.profile else ""
        home.store.close()

    figures = {
        "n": args.n,
        "openssl_n": args.openssl_n,
        "runs": args.runs,
        "kinko_certs_per_s": round(kinko_rate, 1),
        "raw_sign_certs_per_s": round(raw_rate, 1),
        "openssl_ca_certs_per_s": round(openssl_rate, 1),
        "cert_show_median_ms": round(show_ms, 1),
        "version_median_ms": round(version_ms, 1),
        "kinko_over_openssl": round(kinko_rate / openssl_rate, 2),
        "kinko_over_raw": round(kinko_rate / raw_rate, 3),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    checks = {
        "kinko_over_openssl": kinko_rate / openssl_rate >= TARGETS["openssl"],
        "kinko_over_raw": kinko_rate / raw_rate >= TARGETS["raw"],
        "cert_show_median_ms": show_ms <= TARGETS["show_ms"],
    }
    if args.json:
        print(json.dumps({**figures, "targets": TARGETS, "pass": checks}, indent=2))
        print(profile_text, file=sys.stderr, end="")
        return
    rows = [
        (f"Kinko library issue (N={args.n})", f"{kinko_rate:,.1f} certs/s", ""),
        (f"raw cryptography sign-only (N={args.n})", f"{raw_rate:,.1f} certs/s", ""),
        (f"openssl ca -batch, 1 process/cert (M={args.openssl_n})", f"{openssl_rate:,.1f} certs/s", ""),
        (f"kinko cert show, fresh process (median of {args.runs})", f"{show_ms:,.1f} ms", ""),
        (f"kinko --version, fresh process (median of {args.runs})", f"{version_ms:,.1f} ms", ""),
        ("kinko / openssl ca (target >= 8x)", f"{kinko_rate / openssl_rate:.2f}x", MARK[checks["kinko_over_openssl"]]),
        ("kinko / raw sign-only (target >= 0.1x)", f"{kinko_rate / raw_rate:.3f}x", MARK[checks["kinko_over_raw"]]),
        ("cert show median ms (target <= 250 ms)", f"{show_ms:,.1f} ms", MARK[checks["cert_show_median_ms"]]),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'figure':>16}  check")
    print("-" * (width + 25))
    for label, value, check in rows:
        print(f"{label:<{width}}  {value:>16}  {check}".rstrip())
    print(f"\n(total run {figures['elapsed_s']} s; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    if profile_text:
        print("\n" + profile_text, end="")


if __name__ == "__main__":
    main()
