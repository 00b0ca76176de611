"""The CA service: run it (as the account that owns the home)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kinko.ca.commands.registry import Context, Operation, param
from kinko.ca.commands.render import Output
from kinko.ca.home import DEFAULT_SOCKET

GROUPS = {"service": "The CA service: one account holds the home, officers reach it through a socket."}


@dataclass(frozen=True, kw_only=True)
class RunParams:
    listen: Path = param("The Unix socket to listen on.", Path(DEFAULT_SOCKET), flag="--listen", show_default=True)


def service_run(ctx: Context, p: RunParams) -> None:
    """Serve the home's operations on a Unix socket to officers identified by the kernel, in the foreground."""
    from kinko.ca.service.server import serve

    home = ctx.home()
    home.require()
    home.store.change_token()  # opened here: a home that cannot be served fails before the socket exists
    serve(home.path, p.listen, clock=ctx.clock)


def _nothing(_result: None, _out: Output, _p: object) -> None:
    """The service prints its own start-up line on stderr."""


OPERATIONS: list[Operation[Any, Any]] = [
    # The account that owns the home runs it: no officer role is asked of it.
    Operation("service run", RunParams, service_run, _nothing, None, local=True),
]
