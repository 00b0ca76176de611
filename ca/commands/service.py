"""The CA service: run it (as the account that owns the home)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kinko.ca.commands.registry import Context, Operation, param
from kinko.ca.commands.render import Output
from kinko.ca.errors import Conflict
from kinko.ca.i18n import _, said
from kinko.ca.locations import DEFAULT_SOCKET

if TYPE_CHECKING:
    from kinko.ca.service.jobs import JobStatus
    from kinko.ca.service.setup import Setup

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


@dataclass(frozen=True, kw_only=True)
class SetupParams:
    account: str = param("The service account that alone may read the home.", "kinko", show_default=True)
    officers_group: str = param(
        "The group whose members may use the service's socket.", "kinko-officers", show_default=True
    )
    socket_dir: Path = param("The socket's directory.", Path(DEFAULT_SOCKET).parent, show_default=True)
    responder_account: str = param(
        "The OCSP responder's account: read access to what it serves, nothing else.", "kinko-ocsp", show_default=True
    )
    api_account: str = param(
        "The API's account: the front end's operations through the socket, no access to the home.",
        "kinko-api",
        show_default=True,
    )
    api_token_file: Path = param(
        "The API's bearer token (made if missing, 0600, the API account's).",
        Path("/etc/kinko/api-token"),
        file_only=True,
        show_default=True,
    )


def service_setup(ctx: Context, p: SetupParams) -> Setup:
    """Give the home to a service account (created if missing) and print the systemd units; run as root."""
    from kinko.ca.service.setup import Accounts, set_up

    accounts = Accounts(p.account, p.officers_group, p.responder_account, p.api_account)
    return set_up(ctx.home(), accounts, p.socket_dir, p.api_token_file, ctx.login(), ctx.now_text())


def render_setup(result: Setup, out: Output, _p: object) -> None:
    if out.as_json:
        out.emit(dataclasses.asdict(result))
        return
    lines = [
        said(
            "The home {home} now belongs to {account}; only it can read the CA keys, the audit key and the passphrase.",
            home=result.home,
            account=result.account,
        ),
        said(
            "The responder's account {account} may read the database, the configuration, public/ and its signers' "
            "keys, and write nothing.",
            account=result.responder_account,
        ),
        said(
            "The API's account {account} has the api role and no access to the home; its token is {token} (0600).",
            account=result.api_account,
            token=result.api_token_file,
        ),
        said(
            "Socket directory {directory}: {account}:{group}, 2750.",
            directory=result.socket_dir,
            account=result.account,
            group=result.officers_group,
        ),
    ]
    if result.passphrase_file:
        lines.append(
            said("Passphrase file {path}: {account}, 0600.", path=result.passphrase_file, account=result.account)
        )
    lines += [
        "",
        said("Install the units below in /etc/systemd/system/, then:"),
        "  systemctl daemon-reload && systemctl enable --now kinko-service kinko-ocsp kinko-api",
        f"  usermod -aG {result.officers_group} LOGIN    # " + said("for each officer and auditor"),
        f"  kinko --socket {result.socket_dir}/kinko.sock officer add LOGIN --role officer    # " + said("or auditor"),
        "",
        "# kinko-service.service",
        result.unit.rstrip(),
        "",
        "# kinko-ocsp.service",
        result.responder_unit.rstrip(),
        "",
        "# kinko-api.service",
        result.api_unit.rstrip(),
    ]
    out.text("\n".join(lines))


@dataclass(frozen=True, kw_only=True)
class NoParams:
    pass


def service_status(ctx: Context, _p: NoParams) -> list[JobStatus]:
    """Show the service's scheduled jobs: last run, next run, last result and last error."""
    if ctx.schedule is None:
        raise Conflict("no CA service here: `kinko service status` asks the running service (--socket or KINKO_SOCKET)")
    return ctx.schedule.status()


def render_status(jobs: list[JobStatus], out: Output, _p: object) -> None:
    if out.as_json:
        out.emit([dataclasses.asdict(job) for job in jobs])
        return
    lines = []
    for job in jobs:
        lines.append(
            said(
                "{job}: every {seconds} s; last run {last}, next {upcoming}",
                job=job.name,
                seconds=job.every_seconds,
                last=job.last_run or said("never"),
                upcoming=job.next_run or said("now"),
            )
        )
        lines.append(f"    {_(job.description)}")
        # A job's result and error are its log lines too: as the service wrote them.
        if job.last_result:
            lines.append("    " + said("last result: {result}", result=job.last_result))
        if job.last_error:
            lines.append("    " + said("last error: {error}", error=job.last_error))
    out.text("\n".join(lines))


def _nothing(_result: None, _out: Output, _p: object) -> None:
    """The service prints its own start-up line on stderr."""


OPERATIONS: list[Operation[Any, Any]] = [
    # The account that owns the home runs it: no officer role is asked of it.
    Operation("service run", RunParams, service_run, _nothing, None, local=True),
    # Root's act on the machine (useradd, chown): checked inside, not by a Kinko role.
    Operation("service setup", SetupParams, service_setup, render_setup, None, local=True),
    # Read-only: any officer or auditor may see what the schedule did.
    Operation("service status", NoParams, service_status, render_status, "auditor"),
]
