"""The `kinko` command line: parse, call one library function, format the answer.

Library modules are imported inside commands so that quick reads start fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

# Exit codes: 1 refused / bad input / not found, 2 usage, 3 unexpected failure.
EXIT_UNEXPECTED = 3


class Context:
    """What every command needs: the home, output mode, and the injectable clock and actor."""

    def __init__(self, home: Path, as_json: bool, clock: Any = None, actor: str | None = None) -> None:
        self.home_path = home
        self.as_json = as_json
        self.clock = clock
        self.actor = actor
        self._home: Any = None

    def home(self) -> Any:
        from kinko.ca.home import Home

        # One Home per command: its config, connections and loaded keys are reused.
        if self._home is None:
            # A prompt is the last resort, and only where someone can answer it.
            self._home = Home(self.home_path, prompt=_tty_prompt if sys.stdin.isatty() else None)
        return self._home

    def kinko(self) -> Any:
        from kinko.ca.lifecycle import Kinko

        return Kinko(self.home(), clock=self.clock, actor=self.actor)

    def now_text(self) -> str:
        from kinko.ca.clock import SystemClock, to_text

        return to_text((self.clock or SystemClock()).now()) or ""


def _tty_prompt(label: str) -> str:
    return str(click.prompt(label, hide_input=True))


def emit(ctx: Context, data: Any, human: str | None = None) -> None:
    """Prints JSON with --json, else the human text (or a key/value list of the data)."""
    if ctx.as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    elif human is not None:
        click.echo(human)
    else:
        click.echo(key_values(data))


def key_values(data: dict[str, Any]) -> str:
    """Aligned `key: value` lines, skipping empty values."""
    shown = {k: v for k, v in data.items() if v not in (None, "")}
    width = max((len(k) for k in shown), default=0)
    return "\n".join(f"{k.replace('_', ' '):<{width}}  {v}" for k, v in shown.items())


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain text table with a header, aligned for wide (Japanese) characters too."""
    if not rows:
        return "(none)"
    cells = [["" if row.get(c) is None else str(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(display_width(r[i]) for r in cells)) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        padded = (v + " " * (w - display_width(v)) for v, w in zip(values, widths, strict=True))
        return "  ".join(padded).rstrip()

    return "\n".join([line([c.upper() for c in columns]), *(line(r) for r in cells)])


def display_width(text: str) -> int:
    """Columns a string takes on a terminal: East Asian wide characters take two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


class _Failure(click.ClickException):
    """A Kinko error on its way out: one line on stderr and the error's exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"kinko: error: {self.message}", err=True)


def command_path(ctx: click.Context) -> str:
    """A command's path under `kinko`, e.g. 'cert show'."""
    return " ".join(ctx.command_path.split()[1:])


def require_role(ctx: click.Context, needed: str, command: str | None = None) -> None:
    """Checks the operator's role for a command; a refusal is recorded in the ledger."""
    from kinko.ca.officers import authorize, current_login

    state = ctx.find_object(Context)
    assert state is not None
    home = state.home()
    home.require()
    authorize(home, state.actor or current_login(), command or command_path(ctx), needed, state.now_text())


class RoleCommand(click.Command):
    """A command that checks, before running, that the operator holds the role it needs."""

    def invoke(self, ctx: click.Context) -> Any:
        from kinko.ca.officers import REQUIRED_ROLES

        path = command_path(ctx)
        if path not in REQUIRED_ROLES:
            raise click.ClickException(f"internal: no role is defined for `kinko {path}`")
        needed = REQUIRED_ROLES[path]
        if needed is not None:
            require_role(ctx, needed, path)
        return super().invoke(ctx)


class KinkoGroup(click.Group):
    """The top-level group: maps Kinko errors, and anything unexpected, to one line and a code."""

    command_class = RoleCommand
    group_class = type  # subgroups are KinkoGroups too, so their commands check roles

    def invoke(self, ctx: click.Context) -> Any:
        from kinko.ca.errors import KinkoError

        try:
            return super().invoke(ctx)
        except KinkoError as exc:
            raise _Failure(str(exc), exc.exit_code) from None
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if os.environ.get("KINKO_DEBUG"):
                raise
            raise _Failure(f"unexpected {type(exc).__name__}: {exc}", EXIT_UNEXPECTED) from None


@click.group(cls=KinkoGroup)
@click.option(
    "--home",
    "home",
    type=click.Path(path_type=Path),
    default=None,
    help="CA home directory (default: $KINKO_HOME or ./kinko-home).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
@click.version_option(package_name="kinko")
@click.pass_context
def cli(click_ctx: click.Context, home: Path | None, as_json: bool) -> None:
    """Kinko: a private CA for client-certificate login."""
    from kinko.ca.home import resolve_home

    injected = click_ctx.obj if isinstance(click_ctx.obj, dict) else {}
    click_ctx.obj = Context(
        resolve_home(str(home) if home else None), as_json, injected.get("clock"), injected.get("actor")
    )


pass_ctx = click.make_pass_decorator(Context)


@cli.command()
@click.option("--org", required=True, help="Organisation name for the CA certificates (Japanese is fine).")
@click.option("--country", default="JP", show_default=True, help="ISO 3166 country code.")
@click.option(
    "--key-type",
    type=click.Choice(["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"]),
    default="ec-p256",
    show_default=True,
)
@click.option(
    "--base-url",
    default="http://127.0.0.1:8080",
    show_default=True,
    help="Where OCSP, CRLs and CA certificates are served.",
)
@click.option(
    "--passphrase-file",
    type=click.Path(path_type=Path),
    default=None,
    help="File with the passphrase that encrypts the CA keys; its path is kept in kinko.toml.",
)
@click.option("--single-tier", is_flag=True, help="One self-signed CA instead of root + issuing CA.")
@click.option("--policy-oid", default=None, help="Certificate policy OID for client certificates.")
@pass_ctx
def init(
    ctx: Context,
    org: str,
    country: str,
    key_type: str,
    base_url: str,
    passphrase_file: Path | None,
    single_tier: bool,
    policy_oid: str | None,
) -> None:
    """Create a new CA home: keys, root and issuing CA, OCSP signer, database."""
    from kinko.ca.clock import SystemClock
    from kinko.ca.hierarchy import InitOptions, create_home
    from kinko.ca.officers import current_login

    passphrase = None
    if passphrase_file is None:
        if not sys.stdin.isatty():
            from kinko.ca.errors import PassphraseError

            raise PassphraseError("kinko init needs --passphrase-file when not run on a terminal")
        passphrase = click.prompt("New CA key passphrase", hide_input=True, confirmation_prompt=True).encode()
    options = InitOptions(org, country, key_type, base_url, single_tier, passphrase_file, policy_oid)
    home = create_home(ctx.home_path, options, ctx.clock or SystemClock(), ctx.actor or current_login(), passphrase)
    _print_ca(ctx, home, heading=f"Created CA home {home.path}")


@cli.command()
@click.option(
    "--csr",
    "csr_file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="PKCS#10 request, PEM or DER.",
)
@click.option("--name", required=True, help="Subject common name (the holder's name).")
@click.option("--org", default=None, help="Subject organisation (the customer's name).")
@click.option("--profile", default="client", show_default=True)
@click.option("--subscriber", default=None, help="Bind the certificate to this subscriber id.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the certificate PEM here (default: standard output).",
)
@pass_ctx
def issue(
    ctx: Context, csr_file: Path, name: str, org: str | None, profile: str, subscriber: str | None, out: Path | None
) -> None:
    """Issue a certificate from a CSR; the subject comes from --name/--org only."""
    issued = ctx.kinko().issue(
        read_input(csr_file, "CSR"), name=name, organization=org, profile=profile, subscriber_id=subscriber
    )
    _deliver(ctx, issued, out)


def _deliver(ctx: Context, issued: Any, out: Path | None) -> None:
    from kinko.ca.registry import describe

    data = describe(issued.record, ctx.now_text())
    if out is not None:
        write_output(out, issued.pem)
        data["written_to"] = str(out)
        emit(
            ctx,
            data,
            key_values(
                {
                    k: data[k]
                    for k in ("serial", "subject", "not_before", "not_after", "fingerprint_sha256", "written_to")
                }
            ),
        )
    elif ctx.as_json:
        emit(ctx, {**data, "pem": issued.pem})
    else:
        click.echo(issued.pem, nl=False)


@cli.command()
@click.argument("serial")
@click.option(
    "--reason",
    required=True,
    help="unspecified, key-compromise, affiliation-changed, superseded, "
    "cessation-of-operation, privilege-withdrawn (ca-compromise for CA certificates).",
)
@click.option(
    "--invalidity-date", default=None, help="Since when the key is known or suspected compromised (ISO 8601)."
)
@click.option("--reported-at", default=None, help="When the holder's report was received (ISO 8601).")
@click.option("--note", default=None)
@pass_ctx
def revoke(
    ctx: Context, serial: str, reason: str, invalidity_date: str | None, reported_at: str | None, note: str | None
) -> None:
    """Revoke a certificate for good, and publish the CRL before returning."""
    from kinko.ca.clock import parse_user_time

    change = ctx.kinko().revoke(
        serial,
        reason,
        invalidity_date=parse_user_time(invalidity_date, "invalidity date") if invalidity_date else None,
        reported_at=parse_user_time(reported_at, "reported-at") if reported_at else None,
        note=note,
    )
    _status_change(ctx, change)


@cli.command()
@click.argument("serial")
@click.option("--note", default=None)
@pass_ctx
def hold(ctx: Context, serial: str, note: str | None) -> None:
    """Put a certificate on hold (certificateHold); `release` makes it good again."""
    _status_change(ctx, ctx.kinko().hold(serial, note=note))


@cli.command()
@click.argument("serial")
@click.option("--note", default=None)
@pass_ctx
def release(ctx: Context, serial: str, note: str | None) -> None:
    """Release a held certificate."""
    _status_change(ctx, ctx.kinko().release(serial, note=note))


def _status_change(ctx: Context, change: Any) -> None:
    from kinko.ca.registry import describe

    data = describe(change.record, ctx.now_text())
    data["crls_published"] = [_crl_data(p) for p in change.crls]
    shown = {
        k: data[k] for k in ("serial", "status", "revocation_reason", "revoked_at", "invalidity_date", "reported_at")
    }
    shown["crl"] = ", ".join(f"{p.kind} #{p.number} ({p.entries} entries)" for p in change.crls)
    emit(ctx, data, key_values(shown))


def _crl_data(published: Any) -> dict[str, Any]:
    return {
        "issuer": published.issuer,
        "kind": published.kind,
        "number": published.number,
        "base_number": published.base_number,
        "this_update": published.this_update,
        "next_update": published.next_update,
        "entries": published.entries,
        "der": str(published.der_path),
        "pem": str(published.pem_path),
        "sha256": published.sha256,
    }


@cli.group("crl")
def crl_group() -> None:
    """Certificate revocation lists."""


@crl_group.command("publish")
@click.option("--root", is_flag=True, help="Publish the root's CRL (ARL) covering the issuing CA.")
@click.option("--delta", is_flag=True, help="Publish only a delta CRL against the last full CRL.")
@pass_ctx
def crl_publish(ctx: Context, root: bool, delta: bool) -> None:
    """Build, sign and publish a CRL now (run from cron or a systemd timer at least daily)."""
    if root:
        require_role(click.get_current_context(), "admin", "crl publish --root")
    published = ctx.kinko().publish_crl(root=root, delta=delta)
    rows = [_crl_data(p) for p in published]
    emit(ctx, rows, table(rows, ["issuer", "kind", "number", "entries", "this_update", "next_update", "der"]))


@crl_group.command("show")
@pass_ctx
def crl_show(ctx: Context) -> None:
    """Show the newest CRLs: number, thisUpdate, nextUpdate, entries, files."""
    from kinko.crl.publisher import crl_paths, latest

    home = ctx.home()
    home.require()
    rows = []
    for record in latest(home):
        der, pem = crl_paths(home, record.issuer, record.kind)
        rows.append(
            {
                "issuer": record.issuer,
                "kind": record.kind,
                "number": record.number,
                "base_number": record.base_number,
                "this_update": record.this_update,
                "next_update": record.next_update,
                "entries": record.entries,
                "der": str(der),
                "pem": str(pem),
                "sha256": record.sha256,
            }
        )
    emit(ctx, rows, table(rows, ["issuer", "kind", "number", "entries", "this_update", "next_update", "der"]))


# -- customers and their certificate holders (the bank's lifecycle) ----------------------------


def _days(text: str) -> int:
    """Parses '30d' or '30' as a number of days."""
    from kinko.ca.errors import InputError

    value = text.strip().lower().removesuffix("d")
    if not value.isdigit() or int(value) > 36500:
        raise InputError(f"{text!r} is not a number of days from 0 to 36500 (e.g. 30d)")
    return int(value)


def _progress(ctx: Context) -> Any:
    """A progress callback drawing a bar on a terminal, or None."""
    if ctx.as_json or not sys.stderr.isatty():
        return None
    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = click.progressbar(length=total, label="certificates", file=sys.stderr)
            state["bar"].__enter__()
        state["bar"].update(1)
        if done == total:
            state["bar"].__exit__(None, None, None)

    return update


@cli.group()
def customer() -> None:
    """Customers: companies using the service."""


@customer.command("add")
@click.argument("customer_id")
@click.option("--name", required=True, help="The company's name (Japanese is fine).")
@pass_ctx
def customer_add(ctx: Context, customer_id: str, name: str) -> None:
    """Register a customer."""
    emit(ctx, vars(ctx.kinko().add_customer(customer_id, name)))


@customer.command("list")
@pass_ctx
def customer_list(ctx: Context) -> None:
    """List customers."""
    rows = [vars(c) for c in ctx.kinko().home.store.customers()]
    emit(ctx, rows, table(rows, ["id", "status", "name", "created_at", "terminate_at"]))


@customer.command("show")
@click.argument("customer_id")
@pass_ctx
def customer_show(ctx: Context, customer_id: str) -> None:
    """Show a customer and the state of each of its certificate holders."""
    data = ctx.kinko().customer_overview(customer_id)
    holders = table(data["subscribers"], ["id", "role", "name", "state", "serial", "not_after", "days_left"])
    emit(ctx, data, key_values({k: v for k, v in data.items() if k != "subscribers"}) + "\n\n" + holders)


def _bulk(ctx: Context, change: Any) -> None:
    data = {
        "customer": change.customer_id,
        "status": change.status,
        "certificates": change.certificates,
        "terminate_at": change.terminate_at,
        "crls_published": [_crl_data(p) for p in change.crls],
    }
    human = {
        "customer": change.customer_id,
        "status": change.status,
        "certificates": len(change.certificates),
        "effective": change.terminate_at,
    }
    emit(ctx, data, key_values(human))


@customer.command("suspend")
@click.argument("customer_id")
@pass_ctx
def customer_suspend(ctx: Context, customer_id: str) -> None:
    """Hold every valid certificate of the customer and refuse its enrollments and acquisitions."""
    _bulk(ctx, ctx.kinko().suspend_customer(customer_id, _progress(ctx)))


@customer.command("resume")
@click.argument("customer_id")
@pass_ctx
def customer_resume(ctx: Context, customer_id: str) -> None:
    """Release exactly the holds the suspension made."""
    _bulk(ctx, ctx.kinko().resume_customer(customer_id, _progress(ctx)))


@customer.command("terminate")
@click.argument("customer_id")
@click.option("--effective", default=None, help="When the service ends (ISO 8601); default now.")
@pass_ctx
def customer_terminate(ctx: Context, customer_id: str, effective: str | None) -> None:
    """Revoke every certificate of the customer (cessation-of-operation) and close it for good."""
    from kinko.ca.clock import parse_user_time

    when = parse_user_time(effective, "effective date") if effective else None
    _bulk(ctx, ctx.kinko().terminate_customer(customer_id, when, _progress(ctx)))


@cli.group()
def enroll() -> None:
    """Create enrollments: one-time codes, valid 80 days, to acquire a certificate."""


def _enrolled(ctx: Context, enrolled: Any) -> None:
    data = vars(enrolled)
    emit(
        ctx,
        data,
        key_values(
            {
                "subscriber": enrolled.subscriber_id,
                "customer": enrolled.customer_id,
                "role": enrolled.role,
                "name": enrolled.name,
                "code": enrolled.code,
                "expires at": enrolled.expires_at,
            }
        )
        + "\n(the code is shown once: hand it to the holder now)",
    )


@enroll.command("administrator")
@click.option("--customer", "customer_id", required=True)
@click.option("--name", required=True)
@click.option("--id", "subscriber_id", default=None, help="Subscriber id (generated if not given).")
@pass_ctx
def enroll_administrator(ctx: Context, customer_id: str, name: str, subscriber_id: str | None) -> None:
    """Enroll a customer's administrator (the bank, after the customer's application)."""
    _enrolled(ctx, ctx.kinko().enroll_administrator(customer_id, name, subscriber_id))


@enroll.command("user")
@click.option("--customer", "customer_id", required=True)
@click.option("--name", required=True)
@click.option("--by", "by", required=True, help="The customer's administrator acting (subscriber id).")
@click.option("--id", "subscriber_id", default=None, help="Subscriber id (generated if not given).")
@pass_ctx
def enroll_user(ctx: Context, customer_id: str, name: str, by: str, subscriber_id: str | None) -> None:
    """Enroll a user on behalf of the customer's administrator."""
    _enrolled(ctx, ctx.kinko().enroll_user(customer_id, name, by, subscriber_id))


_CSR = click.option(
    "--csr",
    "csr_file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="PKCS#10 request made on the holder's PC, PEM or DER.",
)
_OUT = click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the certificate PEM here (default: standard output).",
)


@cli.command()
@click.option(
    "--code",
    default=None,
    help="The enrollment code. Leave it out to type it (hidden) or pipe it on standard input: "
    "a code on the command line shows in `ps` and in shell history.",
)
@_CSR
@_OUT
@pass_ctx
def acquire(ctx: Context, code: str | None, csr_file: Path, out: Path | None) -> None:
    """Redeem an enrollment code: a one-year certificate for its holder."""
    if code is None:
        code = click.prompt("Enrollment code", hide_input=True) if sys.stdin.isatty() else sys.stdin.readline()
    _deliver(ctx, ctx.kinko().acquire(str(code).strip(), read_input(csr_file, "CSR")), out)


@cli.command()
@click.option("--serial", required=True, help="The certificate to renew.")
@_CSR
@_OUT
@pass_ctx
def renew(ctx: Context, serial: str, csr_file: Path, out: Path | None) -> None:
    """Renew with a new key, from 30 days before expiry until expiry."""
    _deliver(ctx, ctx.kinko().renew(serial, read_input(csr_file, "CSR")), out)


@cli.command()
@click.option("--subscriber", "subscriber_id", required=True)
@_CSR
@_OUT
@pass_ctx
def reacquire(ctx: Context, subscriber_id: str, csr_file: Path, out: Path | None) -> None:
    """Re-acquire within 90 days after an unrevoked certificate expired."""
    _deliver(ctx, ctx.kinko().reacquire(subscriber_id, read_input(csr_file, "CSR")), out)


@cli.command()
@click.option("--subscriber", "subscriber_id", required=True)
@click.option("--by", default=None, help="For a user: the customer's administrator acting.")
@pass_ctx
def reissue(ctx: Context, subscriber_id: str, by: str | None) -> None:
    """A new enrollment for an existing holder (the current certificate is superseded on acquisition)."""
    _enrolled(ctx, ctx.kinko().reissue(subscriber_id, by))


@cli.group()
def incident() -> None:
    """Holders' reports of lost, stolen, disposed or compromised certificates."""


@incident.command("report")
@click.option("--subscriber", "subscriber_id", required=True)
@click.option("--kind", required=True, help="disposed-without-deletion, lost, stolen or compromised.")
@click.option("--received-at", required=True, help="When the report was received (ISO 8601).")
@click.option("--suspected-since", default=None, help="Since when misuse is suspected (ISO 8601): invalidityDate.")
@click.option("--suspend-customer", is_flag=True, help="Also suspend the whole customer's service.")
@click.option(
    "--reason",
    default="key-compromise",
    show_default=True,
    help="For a disposal the officer may choose another revocation reason.",
)
@click.option("--note", default=None)
@pass_ctx
def incident_report(
    ctx: Context,
    subscriber_id: str,
    kind: str,
    received_at: str,
    suspected_since: str | None,
    suspend_customer: bool,
    reason: str,
    note: str | None,
) -> None:
    """Record an incident and revoke the holder's certificate."""
    from kinko.ca.clock import parse_user_time

    result = ctx.kinko().report_incident(
        subscriber_id,
        kind,
        received_at=parse_user_time(received_at, "received-at"),
        suspected_since=parse_user_time(suspected_since, "suspected-since") if suspected_since else None,
        suspend_customer=suspend_customer,
        note=note,
        reason=reason,
    )
    data = {**vars(result.record), "crls_published": [_crl_data(p) for p in result.crls]}
    emit(ctx, data, key_values(vars(result.record)))


@incident.command("list")
@click.option("--subscriber", "subscriber_id", default=None)
@pass_ctx
def incident_list(ctx: Context, subscriber_id: str | None) -> None:
    """List recorded incidents, newest first."""
    rows = [vars(i) for i in ctx.kinko().incidents(subscriber_id)]
    emit(
        ctx,
        rows,
        table(
            rows, ["id", "subscriber_id", "kind", "received_at", "suspected_since", "revoked_at", "officer", "serial"]
        ),
    )


@cli.command()
@click.argument("serial", required=False)
@click.option("--subscriber", "subscriber_id", default=None)
@pass_ctx
def status(ctx: Context, serial: str | None, subscriber_id: str | None) -> None:
    """A holder's state: pending, valid, renewal-open, expired-reacquirable, reissue-required, on-hold, revoked."""
    if (serial is None) == (subscriber_id is None):
        raise click.UsageError("give either SERIAL or --subscriber")
    kinko = ctx.kinko()
    data = kinko.subscriber_status(subscriber_id) if subscriber_id else kinko.certificate_status(serial)
    summary = data["state"]
    if data["state"] in ("renewal-open", "expired-reacquirable", "valid") and data.get("days_left") is not None:
        summary += f" ({data['days_left']} days left)"
    if data.get("reason"):
        summary += f" ({data['reason']})"
    emit(ctx, data, summary)


@cli.group()
def report() -> None:
    """Who must act soon."""


def _rows_out(ctx: Context, rows: list[dict[str, Any]], columns: list[str], as_csv: bool) -> None:
    if as_csv:
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(buffer.getvalue(), nl=False)
        return
    emit(ctx, rows, table(rows, columns))


@report.command("expiring")
@click.option("--within", default="30d", show_default=True)
@click.option("--csv", "as_csv", is_flag=True)
@pass_ctx
def report_expiring(ctx: Context, within: str, as_csv: bool) -> None:
    """Certificates that expire within the period: their holders should renew."""
    rows = ctx.kinko().expiring(_days(within))
    _rows_out(ctx, rows, ["customer", "subscriber", "role", "name", "serial", "not_after", "days_left"], as_csv)


@report.command("enrollments")
@click.option("--expiring-within", default="14d", show_default=True)
@click.option("--csv", "as_csv", is_flag=True)
@pass_ctx
def report_enrollments(ctx: Context, expiring_within: str, as_csv: bool) -> None:
    """Unused enrollment codes that lapse within the period."""
    rows = ctx.kinko().enrollments_expiring(_days(expiring_within))
    _rows_out(ctx, rows, ["customer", "subscriber", "role", "name", "kind", "expires_at", "days_left"], as_csv)


@cli.group("api")
def api_group() -> None:
    """The JSON API for the login front end."""


@api_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8081, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True)
@pass_ctx
def api_serve(ctx: Context, host: str, port: int, workers: int) -> None:
    """Serve the login front end's API (bearer token from [api] token_file), in the foreground."""
    from kinko.ca.api import load_token
    from kinko.ocsp.server import run_app

    home = ctx.home()
    home.require()
    load_token(home)  # no token, no service: refuse here with a clear message
    home.passphrase()  # acquisitions sign: the CA key must be reachable before serving
    click.echo(f"kinko: API for {home.path} on http://{host}:{port}/ with {workers} worker(s)", err=True)
    run_app("kinko.ca.api:create_app", home.path, host, port, workers)


@cli.group("ocsp")
def ocsp_group() -> None:
    """The OCSP responder."""


@ocsp_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True)
@pass_ctx
def ocsp_serve(ctx: Context, host: str, port: int, workers: int) -> None:
    """Serve OCSP (POST and GET), the CRLs and the CA certificates, in the foreground."""
    from kinko.ocsp.server import serve

    home = ctx.home()
    home.require()
    click.echo(f"kinko: serving {home.path} on http://{host}:{port}/ with {workers} worker(s); Ctrl-C stops", err=True)
    serve(home.path, host, port, workers)


@ocsp_group.command("refresh")
@pass_ctx
def ocsp_refresh(ctx: Context) -> None:
    """Re-sign pre-signed responses past half their lifetime (run from cron or a systemd timer)."""
    result = ctx.kinko().refresh_ocsp()
    human = f"re-signed {result['responses']} response(s) for {result['certificates']} certificate(s)"
    if result["signers_expiring"]:
        human += (
            f"\nwarning: OCSP signer(s) {', '.join(result['signers_expiring'])} expire soon: kinko ocsp signer rotate"
        )
    emit(ctx, result, human)


@ocsp_group.group("signer")
def ocsp_signer() -> None:
    """The delegated OCSP signing certificates."""


@ocsp_signer.command("rotate")
@pass_ctx
def ocsp_signer_rotate(ctx: Context) -> None:
    """Issue new delegated OCSP signers and re-sign every response with them."""
    from kinko.ca.registry import describe

    issued = ctx.kinko().rotate_ocsp_signers()
    rows = [describe(record, ctx.now_text()) for record in issued]
    emit(ctx, rows, table(rows, ["serial", "issuer", "not_after", "subject"]))


@cli.group()
def ledger() -> None:
    """The hash-chained ledger: verify it, export it, checkpoint it."""


@ledger.command("verify")
@click.option(
    "--export",
    "export_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Verify an exported file offline (with FILE.sig and FILE.chain.pem beside it).",
)
@click.option(
    "--ca-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The bank's CA chain to trust for --export, instead of the FILE.chain.pem beside it.",
)
@pass_ctx
def ledger_verify(ctx: Context, export_file: Path | None, ca_file: Path | None) -> None:
    """Recompute the chain and check every signed checkpoint; exit 0 only when all holds."""
    from kinko.ca import audit

    if export_file is not None:
        if not export_file.exists():
            from kinko.ca.errors import InputError

            raise InputError(f"export file {export_file} does not exist")
        result = audit.verify_export(export_file, ca_file)
    else:
        require_role(click.get_current_context(), "auditor")
        result = audit.verify_database(ctx.home())
    data = {
        "ok": result.ok,
        "events": result.events,
        "checkpoints": result.checkpoints,
        "notes": result.notes,
        "first_bad_seq": result.problem.seq if result.problem else None,
        "problem": result.problem.what if result.problem else None,
    }
    if result.ok:
        emit(
            ctx,
            data,
            f"ledger OK: {result.events} events, {result.checkpoints} signed checkpoints"
            + "".join(f"\n{note}" for note in result.notes),
        )
        return
    raise audit.LedgerBroken(f"seq {result.problem.seq}: {result.problem.what}")


@ledger.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), required=True)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option("--since", default=None, help="Only events at or after this time (ISO 8601).")
@click.option("--until", default=None, help="Only events at or before this time (ISO 8601).")
@click.option("--customer", default=None, help="Only events about this customer.")
@click.option("--action", default=None, help="Only events with this action (e.g. certificate.revoked).")
@click.option("--excel", is_flag=True, help="CSV with a UTF-8 byte order mark, so Excel shows Japanese text.")
@pass_ctx
def ledger_export(
    ctx: Context,
    fmt: str,
    out: Path,
    since: str | None,
    until: str | None,
    customer: str | None,
    action: str | None,
    excel: bool,
) -> None:
    """Stream the ledger to CSV or JSON Lines; a full export is signed (FILE.sig) with the chain beside it."""
    from kinko.ca import audit
    from kinko.ca.clock import SystemClock, parse_user_time
    from kinko.ca.officers import current_login

    progress = None
    if not ctx.as_json and sys.stderr.isatty():

        def progress(rows: int) -> None:
            click.echo(f"\r{rows} events", nl=False, err=True)

    result = audit.export(
        ctx.home(),
        out,
        fmt=fmt,
        actor=ctx.actor or current_login(),
        now=(ctx.clock or SystemClock()).now(),
        since=parse_user_time(since, "since") if since else None,
        until=parse_user_time(until, "until") if until else None,
        customer=customer,
        action=action,
        excel=excel,
        progress=progress,
    )
    data = {
        "file": str(result.path),
        "rows": result.rows,
        "sha256": result.sha256,
        "signature": str(result.signature) if result.signature else None,
        "chain": str(result.chain) if result.chain else None,
    }
    emit(ctx, data)


@ledger.command("checkpoint")
@pass_ctx
def ledger_checkpoint(ctx: Context) -> None:
    """Sign the ledger's current head now."""
    from kinko.ca import audit
    from kinko.ca.clock import SystemClock
    from kinko.ca.officers import current_login

    emit(ctx, audit.checkpoint(ctx.home(), ctx.actor or current_login(), (ctx.clock or SystemClock()).now()))


@cli.group()
def officer() -> None:
    """Operator accounts and their roles (admin, officer, auditor)."""


@officer.command("add")
@click.argument("login")
@click.option("--role", required=True, type=click.Choice(["admin", "officer", "auditor"]))
@pass_ctx
def officer_add(ctx: Context, login: str, role: str) -> None:
    """Register an OS account with a role."""
    from kinko.ca.officers import add_officer, current_login

    add_officer(ctx.home(), login, role, ctx.actor or current_login(), ctx.now_text())
    emit(ctx, {"login": login, "role": role}, f"{login} is now {role}")


@officer.command("remove")
@click.argument("login")
@pass_ctx
def officer_remove(ctx: Context, login: str) -> None:
    """Remove an operator account (not the last admin)."""
    from kinko.ca.officers import current_login, remove_officer

    remove_officer(ctx.home(), login, ctx.actor or current_login(), ctx.now_text())
    emit(ctx, {"login": login, "removed": True}, f"{login} removed")


@officer.command("list")
@pass_ctx
def officer_list(ctx: Context) -> None:
    """List operator accounts."""
    rows = [
        dict(zip(("login", "role", "added_at", "added_by"), row, strict=True)) for row in ctx.home().store.officers()
    ]
    emit(ctx, rows, table(rows, ["login", "role", "added_at", "added_by"]))


@cli.group()
def cert() -> None:
    """Look up certificates in the serial registry."""


@cert.command("show")
@click.argument("serial")
@click.option("--pem", "as_pem", is_flag=True, help="Print the certificate as PEM.")
@pass_ctx
def cert_show(ctx: Context, serial: str, as_pem: bool) -> None:
    """Show one certificate by serial (hex, any case, colons allowed)."""
    from kinko.ca import registry

    home = ctx.home()
    home.require()
    if as_pem:
        click.echo(registry.pem(home.readonly_store, serial), nl=False)
        return
    emit(ctx, registry.show(home.readonly_store, serial, ctx.now_text()))


@cert.command("list")
@click.option("--status", type=click.Choice(["valid", "held", "revoked", "expired"]), default=None)
@click.option("--limit", type=click.IntRange(min=1), default=None)
@pass_ctx
def cert_list(ctx: Context, status: str | None, limit: int | None) -> None:
    """List certificates, newest first."""
    from kinko.ca import registry

    home = ctx.home()
    home.require()
    rows = registry.listing(home.readonly_store, ctx.now_text(), status, limit)
    emit(ctx, rows, table(rows, ["serial", "status", "profile", "not_after", "subject"]))


@cli.group("ca")
def ca_group() -> None:
    """The CA's own certificates."""


@ca_group.command("show")
@pass_ctx
def ca_show(ctx: Context) -> None:
    """Show the CA hierarchy: subjects, validity, key types, fingerprints, URLs."""
    home = ctx.home()
    home.require()
    _print_ca(ctx, home)


def _print_ca(ctx: Context, home: Any, heading: str | None = None) -> None:
    from kinko.ca.authorities import describe_hierarchy

    info = describe_hierarchy(home)
    if ctx.as_json:
        emit(ctx, info)
        return
    blocks = [heading] if heading else []
    for entry in info["certificates"]:
        blocks.append(f"[{entry['role']}]\n" + key_values({k: v for k, v in entry.items() if k != "role"}))
    blocks.append("[urls]\n" + key_values(info["urls"]))
    click.echo("\n\n".join(blocks))


@ca_group.command("chain")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True)
@pass_ctx
def ca_chain(ctx: Context, out: Path) -> None:
    """Write the CA chain as PEM: issuing CA first, then the root."""
    from kinko.ca.authorities import chain_pem

    home = ctx.home()
    home.require()
    text = chain_pem(home)
    write_output(out, text)
    emit(
        ctx,
        {"written_to": str(out), "certificates": text.count("BEGIN CERTIFICATE")},
        f"wrote {text.count('BEGIN CERTIFICATE')} certificate(s) to {out}",
    )


@cli.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("kinko-demo"),
    show_default=True,
    help="Where to build the demo (home, passphrase, a client key and certificate).",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8080,
    show_default=True,
    help="Port on 127.0.0.1 where the demo serves OCSP, CRLs and CA certificates.",
)
@click.option("--no-serve", is_flag=True, help="Build the demo and stop instead of serving it.")
@pass_ctx
def quickstart(ctx: Context, directory: Path, port: int, no_serve: bool) -> None:
    """Build a demo CA without prompts, issue one client certificate, then serve OCSP and CRLs."""
    from kinko.ca.clock import SystemClock
    from kinko.ca.demo import build_demo
    from kinko.ca.officers import current_login

    result = build_demo(directory, ctx.clock or SystemClock(), ctx.actor or current_login(), port)
    emit(ctx, result, _quickstart_text(result, port, serving=not no_serve))
    if not no_serve:
        from kinko.ocsp.server import serve

        serve(Path(result["home"]), "127.0.0.1", port, 2)


def _quickstart_text(result: dict[str, Any], port: int, serving: bool) -> str:
    home = result["home"]
    serve_line = (
        f"Serving OCSP, CRLs and CA certificates on http://127.0.0.1:{port}/ (Ctrl-C stops). In a second terminal:"
        if serving
        else f"Serve OCSP and CRLs with: kinko --home {home} ocsp serve --port {port}; then:"
    )
    return "\n".join(
        [
            f"Demo CA ready in {home}",
            f"  passphrase file : {result['passphrase_file']}",
            f"  client key      : {result['client_key']}",
            f"  client cert     : {result['client_cert']} (serial {result['serial']})",
            f"  CA chain        : {result['chain']}",
            "",
            "Next steps:",
            f"  kinko --home {home} ca show",
            f"  kinko --home {home} cert show {result['serial']}",
            f"  kinko --home {home} cert list",
            f"  openssl verify -CAfile {home}/public/ca/root.pem -untrusted {home}/public/ca/issuing.pem "
            f"{result['client_cert']}",
            f"  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout me.key "
            f"-subj /CN=me -out me.csr && kinko --home {home} issue --csr me.csr --name 'Your Name' --out me.pem",
            f"  kinko --home {home} revoke {result['serial']} --reason key-compromise",
            "",
            serve_line,
            f"  openssl ocsp -issuer {home}/public/ca/issuing.pem -cert {result['client_cert']} "
            f"-url http://127.0.0.1:{port}/ -CAfile {result['chain']} -resp_text",
        ]
    )


@cli.group()
@pass_ctx
def db(ctx: Context) -> None:
    """The database's schema: upgrade it after installing a newer Kinko."""
    # Set before the role check opens the store: only `db` commands open a database older than this Kinko.
    ctx.home().upgrading = True


@db.command("upgrade")
@pass_ctx
def db_upgrade(ctx: Context) -> None:
    """Apply the pending schema migrations in one transaction, recorded in the ledger."""
    from kinko.ca.officers import current_login

    result = ctx.home().store.upgrade(ctx.actor or current_login(), ctx.now_text())
    data = {"from": result.from_version, "to": result.to_version, "applied": list(result.applied)}
    upgraded = f"upgraded the database from schema version {result.from_version} to {result.to_version}"
    current = f"the database is already at schema version {result.to_version}: nothing to do"
    emit(ctx, data, f"{upgraded}: {', '.join(result.applied)}" if result.applied else current)


def read_input(path: Path, what: str) -> bytes:
    """Reads an input file, turning OS errors into one-line messages."""
    from kinko.ca.errors import InputError

    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} file {path} does not exist") from None
    except (PermissionError, IsADirectoryError):
        raise InputError(f"{what} file {path} cannot be read") from None


def write_output(path: Path, text: str) -> None:
    """Writes an output file, turning OS errors into one-line messages."""
    from kinko.ca.errors import InputError

    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `kinko` console script."""
    cli.main(args=argv, prog_name="kinko")


if __name__ == "__main__":
    main()
