"""Real PostgreSQL servers for the tests: initdb and pg_ctl run as the unprivileged `postgres`
account (Debian's package makes it), in a temporary directory, on a free port on 127.0.0.1.
Clients authenticate with a password (scram-sha-256) read from a libpq password file."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ACCOUNT = "postgres"
SUPERUSER = "kinko_test"
PASSWORD = "test-only-password"


def bin_dir() -> Path:
    """The newest installed PostgreSQL's programs (Debian keeps them out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: tests/run.sh installs Debian's postgresql")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_postgres(*args: str | Path, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", ACCOUNT, "--", *[str(a) for a in args]],
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
        cwd="/",
    )


class Server:
    """One PostgreSQL cluster: a primary made by initdb, or a standby made by pg_basebackup -R."""

    def __init__(self, base: Path, name: str, port: int | None = None, durable: bool = False) -> None:
        self.base = base
        self.data = base / name
        self.port = port or _free_port()
        self.log = base / f"{name}.log"
        # fsync off for the tests (a session's data); on, with synchronous commit, for the benchmarks.
        self.durable = durable

    def initdb(self) -> Server:
        pwfile = self.base / "superuser.pw"
        pwfile.write_text(PASSWORD + "\n")
        os.chown(pwfile, pwd.getpwnam(ACCOUNT).pw_uid, -1)
        pwfile.chmod(0o600)
        _as_postgres(
            bin_dir() / "initdb",
            "-D",
            self.data,
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        pwfile.unlink()
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication all 127.0.0.1/32 scram-sha-256\n")
        return self

    def start(self) -> Server:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.base} -c fsync={'on' if self.durable else 'off'} "
            "-c synchronous_commit=on "
            "-c wal_level=replica -c max_wal_senders=5 -c hot_standby=on -c wal_receiver_status_interval=1s"
        )
        _as_postgres(bin_dir() / "pg_ctl", "-D", self.data, "-o", options, "-l", self.log, "-w", "-t", "60", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        _as_postgres(bin_dir() / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check=False)

    def promote(self) -> None:
        _as_postgres(bin_dir() / "pg_ctl", "-D", self.data, "-w", "promote")

    def standby(self, name: str) -> Server:
        """A streaming hot standby of this server (pg_basebackup -R), started."""
        other = Server(self.base, name, durable=self.durable)
        env_file = self.base / "passfile"
        subprocess.run(
            [
                "runuser",
                "-u",
                ACCOUNT,
                "--",
                "env",
                f"PGPASSFILE={env_file}",
                str(bin_dir() / "pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-D",
                str(other.data),
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
            cwd="/",
        )
        return other.start()

    def url(self, database: str, user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"


class Cluster:
    """A session's primary server, and the password file every client reads."""

    def __init__(self, durable: bool = False) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="kinko-pg-", dir="/tmp"))
        os.chown(self.base, pwd.getpwnam(ACCOUNT).pw_uid, -1)
        self.base.chmod(0o700)
        self.primary = Server(self.base, "primary", durable=durable).initdb().start()
        self.servers = [self.primary]
        # Root's copy for the tests' clients; the postgres account's copy for pg_basebackup.
        self.passfile = Path(tempfile.mkdtemp(prefix="kinko-pgpass-")) / "passfile"
        self.passfile.write_text(f"127.0.0.1:*:*:{SUPERUSER}:{PASSWORD}\n")
        self.passfile.chmod(0o600)
        shutil.copy(self.passfile, self.base / "passfile")
        os.chown(self.base / "passfile", pwd.getpwnam(ACCOUNT).pw_uid, -1)
        self._made = 0

    def new_database(self, prefix: str = "t") -> str:
        """A new empty database on the primary: its URL."""
        import psycopg

        self._made += 1
        name = f"{prefix}_{os.getpid()}_{self._made}"
        with psycopg.connect(self.primary.url("postgres"), autocommit=True, passfile=str(self.passfile)) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.primary.url(name)

    def standby(self, name: str) -> Server:
        server = self.primary.standby(name)
        self.servers.append(server)
        return server

    def wait_replayed(self, standby: Server, timeout: float = 30) -> None:
        """Until the standby has replayed everything the primary has written so far."""
        import psycopg

        with psycopg.connect(self.primary.url("postgres"), autocommit=True, passfile=str(self.passfile)) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
            assert row is not None
            target = row[0]
        deadline = time.monotonic() + timeout
        with psycopg.connect(standby.url("postgres"), autocommit=True, passfile=str(self.passfile)) as conn:
            while time.monotonic() < deadline:
                row = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)).fetchone()
                if row and row[0]:
                    return
                time.sleep(0.02)
        raise AssertionError(f"the standby did not replay up to {target} in {timeout} s")

    def close(self) -> None:
        for server in reversed(self.servers):
            server.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)
        shutil.rmtree(self.passfile.parent, ignore_errors=True)
