"""Starts the responder: its home is checked here, the server is kinko.ca.http's (Granian, RSGI)."""

from __future__ import annotations

from pathlib import Path

from kinko.ca.http import run_app
from kinko.ca.locations import HOME_ENV


def check(home: Path) -> None:
    """Opens the home as a worker would, so that a bad home fails here with a clear message."""
    from kinko.ocsp.source import DatabaseSource

    DatabaseSource(home)


def serve(home: Path, host: str = "127.0.0.1", port: int = 8080, workers: int = 2, log_level: str = "warning") -> None:
    """Serves OCSP, the CRLs and the CA certificates of a home until interrupted."""
    check(home)
    env = {HOME_ENV: str(home.resolve())}
    run_app("kinko.ocsp.app:create_app", env, host, port, workers, log_level, interface="rsgi")
