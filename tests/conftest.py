"""Shared fixtures: a CA home in tmp_path with an injected clock, CSRs, and CLI runners."""

from __future__ import annotations

import datetime as dt
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kinko import cli
from kinko.ca.clock import FixedClock
from kinko.ca.hierarchy import InitOptions, create_home
from kinko.ca.home import Home
from kinko.ca.lifecycle import Kinko
from kinko.ca.officers import current_login

ROOT = Path(__file__).resolve().parent.parent
ORG = "興産信用金庫"


@pytest.fixture(autouse=True, scope="session")
def no_syslog_by_default() -> Any:
    """Homes made in tests send no checkpoint heads: this machine has no /dev/log, and a warning on
    every command's stderr would hide what the tests read. tests/integration/test_audit_signers.py
    gives its homes a socket it listens on, and checks the warning when there is none."""
    from kinko.ca import config

    shipped = config.default_text

    def without_syslog(name: str) -> str:
        text = shipped(name)
        return config.set_value(text, "syslog_socket", "") if name == "kinko.toml" else text

    with pytest.MonkeyPatch.context() as patch:  # session-wide: module fixtures make homes too
        patch.setattr(config, "default_text", without_syslog)
        yield


# The logins tests register with `officer add`, which refuses a login with no OS account.
TEST_LOGINS = ("t_officer", "t_auditor", "t_new", "t_admin2", "bob", "carol", "dave")


@pytest.fixture(scope="session")
def test_logins() -> Iterator[tuple[str, ...]]:
    """Real OS accounts (no home, no password) for TEST_LOGINS; removes those it made."""
    import pwd

    if os.geteuid() != 0:
        pytest.fail("these tests must run as root: they create OS accounts with useradd")
    made = []
    try:
        for name in TEST_LOGINS:
            try:
                pwd.getpwnam(name)
            except KeyError:
                subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
                made.append(name)
        yield TEST_LOGINS
    finally:
        for name in made:
            subprocess.run(["userdel", name], capture_output=True, check=False)


@pytest.fixture
def clock() -> FixedClock:
    """A clock standing at the real current second, so real clients accept what we sign."""
    return FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


@pytest.fixture
def passphrase_file(tmp_path: Path) -> Path:
    path = tmp_path / "pass.txt"
    path.write_text("correct horse battery staple\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses a home (through the `backend` fixture) runs on both store backends,
    except those marked sqlite_only (they read or edit the SQLite file itself) or postgresql_only."""
    if "backend" in metafunc.fixturenames:
        backends = ["sqlite", "postgresql"]
        if metafunc.definition.get_closest_marker("sqlite_only") is not None:
            backends = ["sqlite"]
        elif metafunc.definition.get_closest_marker("postgresql_only") is not None:
            backends = ["postgresql"]
        metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """One real PostgreSQL server for the session (tests/postgres.py); each test gets its own database."""
    from tests.postgres import Cluster

    cluster = Cluster()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The store backend of the test's home: 'sqlite' or 'postgresql'."""
    return str(request.param)


@pytest.fixture
def database_options(request: pytest.FixtureRequest, backend: str) -> dict[str, Any]:
    """InitOptions' database fields for the test's backend: a new database on the session's server."""
    if backend == "sqlite":
        return {}
    cluster = request.getfixturevalue("postgres")
    return {"database": cluster.new_database(), "database_password_file": cluster.passfile}


@pytest.fixture
def home(tmp_path: Path, clock: FixedClock, passphrase_file: Path, database_options: dict[str, Any]) -> Home:
    """A fresh two-tier EC P-256 CA home, on each store backend in turn."""
    options = InitOptions(organization=ORG, passphrase_file=passphrase_file, **database_options)
    return create_home(tmp_path / "home", options, clock, current_login())


@pytest.fixture
def kinko(home: Home, clock: FixedClock) -> Kinko:
    return Kinko(home, clock=clock)


def make_key(key_type: str = "ec-p256") -> Any:
    """A subscriber key: ec-p256, ec-p384, ec-secp256k1, ec-p192, rsa-<bits>[-e<exp>], ed25519."""
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "ec-secp256k1":
        return ec.generate_private_key(ec.SECP256K1())
    if key_type == "ec-p192":
        return ec.generate_private_key(ec.SECP192R1())
    if key_type == "ed25519":
        from cryptography.hazmat.primitives.asymmetric import ed25519

        return ed25519.Ed25519PrivateKey.generate()
    if key_type.startswith("rsa-"):
        parts = key_type.split("-")
        exponent = int(parts[2][1:]) if len(parts) > 2 else 65537
        return rsa.generate_private_key(public_exponent=exponent, key_size=int(parts[1]))
    raise ValueError(key_type)


def make_csr(key: Any = None, der: bool = False) -> bytes:
    """A CSR for `key` (a fresh P-256 key by default) with a throwaway subject."""
    key = key or make_key()
    algorithm = None if key.__class__.__name__.endswith("Ed25519PrivateKey") else hashes.SHA256()
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ignored by Kinko")]))
        .sign(key, algorithm)
    )
    return request.public_bytes(serialization.Encoding.DER if der else serialization.Encoding.PEM)


def write_key(path: Path, key: Any) -> Path:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


@pytest.fixture
def run_cli(clock: FixedClock) -> Callable[..., Any]:
    """Runs `kinko ARGS` in-process with the injected clock; returns the click Result."""

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Any:
        runner = CliRunner()
        return runner.invoke(cli.cli, [str(a) for a in args], obj={"clock": clock}, input=input, env=env)

    return run


def run_kinko(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Runs `kinko ARGS` as a real process (the console script's code path)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "kinko.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


class _QuestionMarks:
    """psycopg's connection taking SQLite's `?` placeholders and executescript, so that one
    attacker's script in a test speaks to both backends."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.raw.execute(sql.replace("?", "%s"), params or None) if params else self.raw.execute(sql)

    def executescript(self, sql: str) -> None:
        self.raw.execute(sql)

    def commit(self) -> None:
        self.raw.commit()

    def close(self) -> None:
        self.raw.close()


def raw_database(home: Home) -> Any:
    """A connection of the database's own driver to a home's database, not through Kinko:
    sqlite3 for kinko.db, psycopg for a PostgreSQL home; both take `?` placeholders and commit()."""
    url, passfile = database_of(home)
    if not url:
        return sqlite3.connect(home.db_file)
    import psycopg

    return _QuestionMarks(psycopg.connect(url, passfile=passfile))


def unguard(home: Home) -> str:
    """What an attacker with write access to the database runs first: the ledger's append-only triggers off."""
    if database_of(home)[0]:
        return "ALTER TABLE ledger DISABLE TRIGGER USER;"
    return "DROP TRIGGER ledger_no_update; DROP TRIGGER ledger_no_delete;"


def database_cli(home: Home, script: str) -> subprocess.CompletedProcess[str]:
    """Runs SQL on a home's database with the backend's own command-line tool (sqlite3, psql),
    stopping at the first error."""
    url, passfile = database_of(home)
    if not url:
        command = ["sqlite3", "-bail", str(home.db_file)]
        env = None
    else:
        command = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url]
        env = {**os.environ, "PGPASSFILE": passfile}
    return subprocess.run(
        command, input=script + "\n", capture_output=True, text=True, check=False, timeout=30, env=env
    )


def database_of(home: Home) -> tuple[str, str]:
    """([store] url, password_file) from kinko.toml as written, even where the rest of the
    configuration no longer loads: ("", "") for the home's kinko.db."""
    import tomllib

    store = tomllib.loads((home.path / "kinko.toml").read_text(encoding="utf-8")).get("store", {})
    return store.get("url", ""), store.get("password_file", "")


def raw_execute(home: Home, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Runs one statement on a home's database behind Kinko's back (written with SQLite's `?`)
    and commits it: the rows it returned, if any."""
    conn = raw_database(home)
    try:
        cursor = conn.execute(sql, params)
        rows = list(cursor.fetchall()) if cursor.description else []
        conn.commit()
        return rows
    finally:
        conn.close()


def table_rows(home: Home, table: str) -> list[dict[str, Any]]:
    """Every row of a table by column name, straight from the database, in a fixed order (for
    before/after comparisons): by the first two columns, where every table's key starts."""
    conn = raw_database(home)
    try:
        cursor = conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2")  # noqa: S608
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        conn.close()


def row_counts(home: Home) -> dict[str, int]:
    """Rows per table, read straight from the database (not through Kinko)."""
    conn = raw_database(home)
    try:
        return {
            table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
            for table in ("certificates", "ledger", "authorities", "officers")
        }
    finally:
        conn.close()


@pytest.fixture(params=["plain", "reuseport"])
def taken_port(request: pytest.FixtureRequest) -> Iterator[int]:
    """A port on 127.0.0.1 with a listener on it: a plain one, or one that shares as Granian's does."""
    with socket.socket() as sock:
        if request.param == "reuseport":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen, what: str, timeout: float = 30) -> None:
    """Waits, bounded, until something accepts on 127.0.0.1:port; fails if `process` exits first."""
    import socket
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise RuntimeError(f"{what} did not start listening on port {port}: {stderr}") from None
            time.sleep(0.05)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningResponder:
    """A `kinko ocsp serve` process on 127.0.0.1, stopped when the test ends."""

    def __init__(
        self,
        home: Home,
        workers: int = 2,
        port: int | None = None,
        unhealthy: bool = False,
        extra: list[str] | None = None,
    ) -> None:
        import signal
        import time
        import urllib.error
        import urllib.request

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kinko.cli",
                "--home",
                str(home.path),
                "ocsp",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                *(extra or []),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._signal = signal
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"responder exited: {self.process.stderr.read().decode(errors='replace')}")
            try:
                with urllib.request.urlopen(self.url + "healthz", timeout=1) as reply:  # noqa: S310 - loopback
                    if reply.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                if unhealthy and exc.code == 503:
                    return  # up, and /healthz says what is wrong: what the test is about
                time.sleep(0.1)
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("responder did not answer /healthz within 30 s")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        import os

        if self.process.poll() is None:
            os.killpg(self.process.pid, self._signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, self._signal.SIGKILL)
                self.process.wait(timeout=10)


@pytest.fixture
def responder(home: Home):
    """`kinko ocsp serve` for the `home` fixture, 2 workers, on a free loopback port."""
    running = RunningResponder(home)
    yield running
    running.stop()


def send_paced_body(port: int, size: int, chunked: bool, path: str = "/", extra: bytes = b"") -> bytes:
    """Sends a POST whose body goes out in 64 KiB pieces 50 ms apart, as a client on a real
    network does, then returns the reply's status code (b"" if the connection was reset)."""
    pieces = [b"\x30" * min(65536, size - start) for start in range(0, size, 65536)]
    if chunked:
        framing = b"Transfer-Encoding: chunked\r\n\r\n"
        pieces = [b"%x\r\n" % len(piece) + piece + b"\r\n" for piece in pieces] + [b"0\r\n\r\n"]
    else:
        framing = b"Content-Length: %d\r\n\r\n" % size
    head = b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/ocsp-request\r\n" % path.encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head + extra + framing)
            for piece in pieces:
                time.sleep(0.05)  # the client's pace, not a rule's clock
                sock.sendall(piece)
            reply = b""
            while b"\r\n" not in reply:
                data = sock.recv(4096)
                if not data:
                    break
                reply += data
    except (BrokenPipeError, ConnectionResetError):
        return b""
    return reply.split(b" ", 2)[1] if reply else b""


def people_time(when: dt.datetime | str) -> str:
    """A time as human output shows it for the test CA (JP: Asia/Tokyo, with its offset)."""
    from kinko.ca.clock import showing_times_in, shown, zone_named

    with showing_times_in(zone_named("Asia/Tokyo")):
        return shown(when)
