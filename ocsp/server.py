"""Runs the responder under Granian, a Rust HTTP server for Python applications.

Chosen by measurement: serving Kinko's pre-signed GET with 2 workers on this project's 2-core
machine (wrk, 16 connections), Granian answered about 28.6k requests/s to uvicorn's 24.8k
(httptools, uvloop), and it bounds how long a client may take to send its request headers,
which uvicorn does not, so a slow client cannot hold a worker. Its native RSGI interface
costs less per request again (bench/ocsp.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from kinko.ca.home import HOME_ENV

HEADER_READ_TIMEOUT_MS = 5000


def check(home: Path) -> None:
    """Opens the home as a worker would, so that a bad home fails here with a clear message."""
    from kinko.ocsp.source import DatabaseSource

    DatabaseSource(home)


def serve(home: Path, host: str = "127.0.0.1", port: int = 8080, workers: int = 2, log_level: str = "warning") -> None:
    """Serves OCSP, the CRLs and the CA certificates of a home until interrupted."""
    check(home)
    run_app("kinko.ocsp.app:create_app", home, host, port, workers, log_level, interface="rsgi")


def run_app(
    target: str, home: Path, host: str, port: int, workers: int, log_level: str = "warning", interface: str = "asgi"
) -> None:
    """Runs an app factory (module:function, ASGI or RSGI) for a home under Granian until interrupted."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings

    # Workers are separate processes: they find the home through the environment.
    os.environ[HOME_ENV] = str(home.resolve())
    Granian(
        target,
        factory=True,
        address=host,
        port=port,
        interface=Interfaces(interface),
        workers=workers,
        http=HTTPModes.http1,
        loop=Loops.uvloop,
        websockets=False,
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_READ_TIMEOUT_MS, keep_alive=True),
        log_access=False,
        log_level=log_level,  # type: ignore[arg-type]
        respawn_failed_workers=True,
    ).serve()
