"""Where a home and the CA service's socket are found: names only, so that the CLI can start
(and talk to the service) without loading the home's machinery."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "KINKO_HOME"
SOCKET_ENV = "KINKO_SOCKET"
DEFAULT_SOCKET = "/run/kinko/kinko.sock"


def kinko_command() -> str:
    """How to run this Kinko from any shell: the console script beside this interpreter (a
    virtualenv's bin/, on PATH or not), else `python -m kinko.cli`."""
    import sys

    script = Path(sys.executable).with_name("kinko")
    return str(script) if script.exists() else f"{sys.executable} -m kinko.cli"


def resolve_home(path: str | None) -> Path:
    """--home, then $KINKO_HOME, then ./kinko-home."""
    return Path(path or os.environ.get(HOME_ENV) or "kinko-home")
