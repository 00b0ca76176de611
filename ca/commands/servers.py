"""The long-running services (the OCSP responder, the front end's API), OCSP upkeep, and the demo."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kinko.ca.commands.frontend import OPERATIONS as FRONTEND_OPERATIONS
from kinko.ca.commands.registry import Context, NoParams, Operation, param
from kinko.ca.commands.render import Output, key_values, table, to_json
from kinko.ca.i18n import N_, said

if TYPE_CHECKING:
    from kinko.ca.http import TLSFiles
    from kinko.ca.lifecycle import OCSPRefresh
    from kinko.ca.registry import CertificateView

DEMO_PORT = 8088  # the officer's day serves its CA on 8080: the demo must not share it

GROUPS = {
    "api": "The JSON API for the login front end.",
    "ocsp": "The OCSP responder.",
    "ocsp signer": "The delegated OCSP signing certificates.",
}


@dataclass(frozen=True, kw_only=True)
class ServeParams:
    host: str = param("The address to listen on.", "127.0.0.1", show_default=True)
    port: int = param("The port to listen on.", 8080, minimum=1, maximum=65535, show_default=True)
    workers: int = param("Worker processes.", 2, minimum=1, maximum=64, show_default=True)


@dataclass(frozen=True, kw_only=True)
class APIServeParams(ServeParams):
    # The port the shipped units and nginx configuration give the API (the responder's unit has 8081).
    port: int = param("The port to listen on.", 8082, minimum=1, maximum=65535, show_default=True)
    tls_cert: Path | None = param("Serve HTTPS with this certificate chain (PEM).", None, file_only=True)
    tls_key: Path | None = param("The private key of --tls-cert (unencrypted PEM, mode 0600).", None, file_only=True)
    tls_client_ca: Path | None = param(
        "Require a client certificate from the front end, issued by a CA in this PEM file.", None, file_only=True
    )
    token_file: Path | None = param(
        "The bearer token file (0600); through the CA service it is required, else [api] token_file.",
        None,
        file_only=True,
    )


@dataclass(frozen=True, kw_only=True)
class OCSPServeParams(ServeParams):
    database: str | None = param(
        "Read this database instead of the home's [store] url: a PostgreSQL hot standby, as "
        "postgresql://user@host:port/name (a read-only role; no password in it).",
        None,
    )
    database_password_file: Path | None = param(
        "libpq password file for --database (mode 0600). PGPASSFILE works too.", None, file_only=True
    )


def api_serve(ctx: Context, p: APIServeParams) -> None:
    """Serve the login front end's API, in the foreground: through the CA service when a socket
    is given (as this account, which needs the api role), else on the home."""
    from kinko.ca.api import TOKEN_FILE_ENV, load_token, read_token
    from kinko.ca.errors import InputError
    from kinko.ca.http import check_port, run_app
    from kinko.ca.locations import HOME_ENV, SOCKET_ENV

    tls = _tls(p)
    if ctx.socket is not None:
        if p.token_file is None:
            raise InputError("through the CA service, give the bearer token with --token-file")
        read_token(p.token_file)  # no token, no service: refuse here with a clear message
        _check_api_role(ctx.socket)
        where, env = (
            said("the CA service at {socket}", socket=ctx.socket),
            {SOCKET_ENV: str(ctx.socket), TOKEN_FILE_ENV: str(p.token_file.resolve())},
        )
    else:
        home = ctx.home()
        home.require()
        if p.token_file is not None:
            raise InputError("--token-file is for the API through the CA service; on a home, [api] token_file names it")
        load_token(home)  # no token, no service: refuse here with a clear message
        home.passphrase()  # acquisitions sign: the CA key must be reachable before serving
        # An exported KINKO_SOCKET must not send the workers to a service this command did not choose.
        where, env = str(home.path), {HOME_ENV: str(home.path.resolve()), SOCKET_ENV: ""}
    check_port(p.host, p.port)  # before the start-up line: a refusal is the only line
    scheme = "https" if tls else "http"
    url = f"{scheme}://{p.host}:{p.port}/"
    if tls and tls.client_ca:
        started = said(
            "kinko: API for {where} on {url} (client certificate required) with {workers} worker(s)",
            where=where,
            url=url,
            workers=p.workers,
        )
    else:
        started = said(
            "kinko: API for {where} on {url} with {workers} worker(s)", where=where, url=url, workers=p.workers
        )
    click.echo(started, err=True)
    run_app("kinko.ca.api:create_app", env, p.host, p.port, p.workers, tls=tls)


def officer_on_a_home(ctx: Context, _p: object) -> list[tuple[str, str]]:
    """`api serve` on a home needs an officer; through the service it needs none here."""
    return [] if ctx.socket is not None else [("api serve", "officer")]


def _check_api_role(socket_path: Path) -> None:
    """Asks the service for a status as this account: a refusal (no api role) or a service that is
    down is the one line at start, not an error on every request."""
    from kinko.ca.errors import Forbidden, KinkoError
    from kinko.ca.service.client import ServiceUnavailable, call, raise_for

    try:
        raise_for(call(socket_path, "api status", {"serial": "00"}, as_json=True))
    except (Forbidden, ServiceUnavailable):
        raise
    except KinkoError:
        pass  # no certificate 00: the service answered this account's request


def _tls(p: APIServeParams) -> TLSFiles | None:
    from kinko.ca.errors import InputError
    from kinko.ca.http import TLSFiles, load_tls

    if p.tls_cert is None and p.tls_key is None:
        if p.tls_client_ca is not None:
            raise InputError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if p.tls_cert is None or p.tls_key is None:
        raise InputError("--tls-cert and --tls-key go together")
    return load_tls(TLSFiles(p.tls_cert, p.tls_key, p.tls_client_ca))


def ocsp_serve(ctx: Context, p: OCSPServeParams) -> None:
    """Serve OCSP (POST and GET), the CRLs and the CA certificates, in the foreground."""
    from kinko.ca.errors import InputError
    from kinko.ca.hierarchy import check_database_password_file
    from kinko.ca.home import Home
    from kinko.ca.http import check_port
    from kinko.ca.store import is_server
    from kinko.ocsp.server import serve

    if p.database is not None and not is_server(p.database):
        raise InputError("--database takes a postgresql:// URL (a hot standby of the CA's database)")
    password_file = p.database_password_file.resolve() if p.database_password_file is not None else None
    if password_file is not None:
        check_database_password_file(password_file)
    home = Home(ctx.home().path, readonly=True, database=p.database, database_password_file=password_file)
    home.require()
    home.store.change_token()  # a database it cannot read (or of another schema version) is refused here
    check_port(p.host, p.port)  # before the start-up line: a refusal is the only line
    url = f"http://{p.host}:{p.port}/"
    started = said(
        "kinko: serving {home} on {url} with {workers} worker(s); Ctrl-C stops",
        home=home.path,
        url=url,
        workers=p.workers,
    )
    click.echo(started, err=True)
    serve(home.path, p.host, p.port, p.workers, database=p.database, database_password_file=password_file)


def ocsp_refresh(ctx: Context, _p: NoParams) -> OCSPRefresh:
    """Re-sign pre-signed responses past half their lifetime (run from cron or a systemd timer)."""
    return ctx.kinko().refresh_ocsp()


def render_refresh(result: OCSPRefresh, out: Output, _p: object) -> None:
    human = said(
        "re-signed {responses} response(s) for {certificates} certificate(s)",
        responses=result.responses,
        certificates=result.certificates,
    )
    if result.signers_expiring:
        human += "\n" + said(
            "warning: OCSP signer(s) {signers} expire soon: kinko ocsp signer rotate",
            signers=", ".join(result.signers_expiring),
        )
    out.emit(dataclasses.asdict(result), human)


def ocsp_signer_rotate(ctx: Context, _p: NoParams) -> list[CertificateView]:
    """Issue new delegated OCSP signers and re-sign every response with them."""
    from kinko.ca.registry import describe

    now = ctx.now_text()
    return [describe(record, now) for record in ctx.kinko().rotate_ocsp_signers()]


def render_signers(result: list[CertificateView], out: Output, _p: object) -> None:
    rows = to_json(result)
    out.emit(rows, table(rows, ["serial", "issuer", "not_after", "subject"]))


@dataclass(frozen=True, kw_only=True)
class QuickstartParams:
    directory: Path = param(
        "Where to build the demo (home, passphrase, a client key and certificate).",
        Path("kinko-demo"),
        flag="--dir",
        dir_only=True,
        show_default=True,
    )
    port: int = param(
        "Port on 127.0.0.1 where the demo serves OCSP, CRLs and CA certificates (not 8080: that is the CA's own).",
        DEMO_PORT,
        minimum=1,
        maximum=65535,
        show_default=True,
    )
    no_serve: bool = param("Build the demo and stop instead of serving it.", False)


@dataclass(frozen=True)
class Demo:
    """The demo CA's files and its one client certificate."""

    home: str
    passphrase_file: str
    client_key: str
    client_cert: str
    chain: str
    serial: str


def quickstart(ctx: Context, p: QuickstartParams) -> Demo:
    """Build a demo CA without prompts, issue one client certificate, then serve OCSP and CRLs."""
    from kinko.ca.clock import SystemClock
    from kinko.ca.demo import build_demo

    return Demo(**build_demo(p.directory, ctx.clock or SystemClock(), ctx.login(), p.port))


def render_quickstart(result: Demo, out: Output, p: QuickstartParams) -> None:
    out.emit(dataclasses.asdict(result), _quickstart_text(result, p.port, serving=not p.no_serve))
    if not p.no_serve:
        from kinko.ocsp.server import serve

        serve(Path(result.home), "127.0.0.1", p.port, 2)


def _quickstart_text(result: Demo, port: int, serving: bool) -> str:
    from kinko.ca.locations import kinko_command

    home, kinko = result.home, kinko_command()
    url, serve = f"http://127.0.0.1:{port}/", f"{kinko} --home {home} ocsp serve --port {port}"
    serve_line = (
        said("Serving OCSP, CRLs and CA certificates on {url} (Ctrl-C stops). In a second terminal:", url=url)
        if serving
        else said("Serve OCSP and CRLs with: {command}; then:", command=serve)
    )
    files = key_values(
        {
            N_("passphrase file"): result.passphrase_file,
            N_("client key"): result.client_key,
            N_("client cert"): said("{path} (serial {serial})", path=result.client_cert, serial=result.serial),
            N_("CA chain"): result.chain,
        }
    )
    return "\n".join(
        [
            said("Demo CA ready in {home}", home=home),
            *("  " + line for line in files.splitlines()),
            "",
            said("Next steps:"),
            f"  {kinko} --home {home} ca show",
            f"  {kinko} --home {home} cert show {result.serial}",
            f"  {kinko} --home {home} cert list",
            f"  openssl verify -CAfile {home}/public/ca/root.pem -untrusted {home}/public/ca/issuing.pem "
            f"{result.client_cert}",
            f"  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout me.key "
            f"-subj /CN=me -out me.csr && {kinko} --home {home} issue --csr me.csr --name 'Your Name' --out me.pem",
            f"  {kinko} --home {home} revoke {result.serial} --reason key-compromise",
            "",
            serve_line,
            f"  openssl ocsp -issuer {home}/public/ca/issuing.pem -cert {result.client_cert} "
            f"-url http://127.0.0.1:{port}/ -CAfile {result.chain} -resp_text",
        ]
    )


def _nothing(_result: None, _out: Output, _p: object) -> None:
    """A server prints its own start-up line on stderr."""


OPERATIONS: list[Operation[Any, Any]] = [
    *FRONTEND_OPERATIONS,
    # On a home, an officer's; through the service, the service checks this account's api role.
    Operation("api serve", APIServeParams, api_serve, _nothing, None, local=True, state_roles=officer_on_a_home),
    # No role: the responder's account reads the registry view and its signers' keys, by file permission.
    Operation("ocsp serve", OCSPServeParams, ocsp_serve, _nothing, None, local=True),
    Operation("ocsp refresh", NoParams, ocsp_refresh, render_refresh, "officer"),
    Operation("ocsp signer rotate", NoParams, ocsp_signer_rotate, render_signers, "admin"),
    Operation("quickstart", QuickstartParams, quickstart, render_quickstart, None, local=True),
]
