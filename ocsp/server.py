"""Starts the responder: its home is checked here, the server is kinko.ca.http's (Granian, RSGI)."""

from __future__ import annotations

from pathlib import Path

from kinko.ca.http import run_app
from kinko.ca.locations import HOME_ENV

# How the workers learn of a database named on the command line (--database): a hot standby.
DATABASE_ENV = "KINKO_RESPONDER_DATABASE"
PASSWORD_FILE_ENV = "KINKO_RESPONDER_PASSWORD_FILE"  # noqa: S105 - a variable name, not a secret


def check(home: Path, database: str | None = None, database_password_file: Path | None = None) -> None:
    """Opens the home as a worker would, so that a bad home fails here with a clear message."""
    from kinko.ocsp.source import DatabaseSource

    DatabaseSource(home, database=database, database_password_file=database_password_file)


def serve(
    home: Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 2,
    log_level: str = "warning",
    database: str | None = None,
    database_password_file: Path | None = None,
) -> None:
    """Serves OCSP, the CRLs and the CA certificates of a home until interrupted."""
    check(home, database, database_password_file)
    env = {HOME_ENV: str(home.resolve())}
    if database is not None:
        env[DATABASE_ENV] = database
    if database_password_file is not None:
        env[PASSWORD_FILE_ENV] = str(database_password_file)
    run_app("kinko.ocsp.app:create_app", env, host, port, workers, log_level, interface="rsgi")
