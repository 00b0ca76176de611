"""Create a CA home, and show the CA's own certificates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kinko.ca.commands.registry import Context, NoParams, Operation, param
from kinko.ca.commands.render import Output, key_values
from kinko.ca.config import KEY_TYPES
from kinko.ca.i18n import said

GROUPS = {"ca": "The CA's own certificates."}


@dataclass(frozen=True, kw_only=True)
class InitParams:
    org: str = param("Organisation name for the CA certificates (Japanese is fine).")
    country: str = param("ISO 3166 country code.", "JP", show_default=True)
    key_type: str = param("The CA keys' type.", "ec-p256", choices=KEY_TYPES, show_default=True)
    base_url: str = param(
        "Where OCSP, CRLs and CA certificates are served.", "http://127.0.0.1:8080", show_default=True
    )
    passphrase_file: Path | None = param(
        "File with the passphrase that encrypts the CA keys; its path is kept in kinko.toml.", None
    )
    single_tier: bool = param("One self-signed CA instead of root + issuing CA.", False)
    policy_oid: str | None = param("Certificate policy OID for client certificates.", None)
    database: str | None = param(
        "A PostgreSQL database for the home, as postgresql://user@host:port/name (empty; no password in it). "
        "Default: HOME/kinko.db (SQLite).",
        None,
    )
    database_password_file: Path | None = param(
        "libpq password file for --database (mode 0600); its path is kept in kinko.toml. PGPASSFILE works too.",
        None,
    )


@dataclass(frozen=True)
class Hierarchy:
    """The CA's certificates (root, issuing, delegated signers) and the URLs it publishes at."""

    home: str
    certificates: list[dict[str, str]]
    urls: dict[str, str]


def init(ctx: Context, p: InitParams) -> Hierarchy:
    """Create a new CA home: keys, root and issuing CA, OCSP signer, database."""
    from kinko.ca.errors import PassphraseError
    from kinko.ca.hierarchy import InitOptions, create_home

    passphrase = None
    if p.passphrase_file is None:
        if ctx.prompt is None:
            raise PassphraseError("kinko init needs --passphrase-file when not run on a terminal")
        passphrase = _new_passphrase().encode()
    options = InitOptions(
        p.org,
        p.country,
        p.key_type,
        p.base_url,
        p.single_tier,
        p.passphrase_file,
        p.policy_oid,
        database=p.database or "",
        database_password_file=p.database_password_file,
    )
    home = create_home(ctx.home_path, options, ctx.clock or _system_clock(), ctx.login(), passphrase)
    return _hierarchy(home)


def _new_passphrase() -> str:
    import click

    return str(click.prompt("New CA key passphrase", hide_input=True, confirmation_prompt=True))


def _system_clock() -> Any:
    from kinko.ca.clock import SystemClock

    return SystemClock()


def _hierarchy(home: Any) -> Hierarchy:
    from kinko.ca.authorities import describe_hierarchy

    info = describe_hierarchy(home)
    return Hierarchy(info["home"], info["certificates"], info["urls"])


def render_hierarchy(result: Hierarchy, out: Output, heading: str | None = None) -> None:
    """One block per certificate role, then the URLs."""
    if out.as_json:
        out.emit({"home": result.home, "certificates": result.certificates, "urls": result.urls})
        return
    blocks = [heading] if heading else []
    for entry in result.certificates:
        blocks.append(f"[{entry['role']}]\n" + key_values({k: v for k, v in entry.items() if k != "role"}))
    blocks.append("[urls]\n" + key_values(result.urls))
    out.text("\n\n".join(blocks))


def ca_show(ctx: Context, _p: NoParams) -> Hierarchy:
    """Show the CA hierarchy: subjects, validity, key types, fingerprints, URLs."""
    home = ctx.home()
    home.require()
    return _hierarchy(home)


@dataclass(frozen=True, kw_only=True)
class ChainParams:
    out: Path = param("Where to write the chain (PEM).", file_only=True)


@dataclass(frozen=True)
class Chain:
    """The CA chain as PEM: issuing CA first, then the root."""

    pem: str


def ca_chain(ctx: Context, _p: ChainParams) -> Chain:
    """Write the CA chain as PEM: issuing CA first, then the root."""
    from kinko.ca.authorities import chain_pem

    home = ctx.home()
    home.require()
    return Chain(chain_pem(home))


def render_chain(result: Chain, out: Output, p: ChainParams) -> None:
    out.write_file(p.out, result.pem)
    count = result.pem.count("BEGIN CERTIFICATE")
    out.emit(
        {"written_to": str(p.out), "certificates": count},
        said("wrote {count} certificate(s) to {path}", count=count, path=p.out),
    )


OPERATIONS: list[Operation[Any, Any]] = [
    Operation(
        "init",
        InitParams,
        init,
        lambda r, out, p: render_hierarchy(r, out, heading=said("Created CA home {home}", home=r.home)),
        None,  # creating a home registers the account that ran it as admin
        local=True,
    ),
    Operation("ca show", NoParams, ca_show, lambda r, out, p: render_hierarchy(r, out), "auditor"),
    Operation("ca chain", ChainParams, ca_chain, render_chain, "auditor"),
]
