"""Publish and show certificate revocation lists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kinko.ca.commands.registry import Context, NoParams, Operation, param
from kinko.ca.commands.render import Output, to_json
from kinko.ca.commands.views import CRL_COLUMNS, CRLView, crl_views

GROUPS = {"crl": "Certificate revocation lists."}


@dataclass(frozen=True, kw_only=True)
class PublishParams:
    root: bool = param("Publish the root's CRL (ARL) covering the issuing CA.", False)
    delta: bool = param("Publish only a delta CRL against the last full CRL.", False)


def crl_publish(ctx: Context, p: PublishParams) -> list[CRLView]:
    """Build, sign and publish a CRL now (run from cron or a systemd timer at least daily)."""
    return crl_views(ctx.kinko().publish_crl(root=p.root, delta=p.delta))


def root_needs_admin(p: PublishParams) -> list[tuple[str, str]]:
    """The root's ARL is signed with the root key: an admin's act."""
    return [("crl publish --root", "admin")] if p.root else []


def crl_show(ctx: Context, _p: NoParams) -> list[CRLView]:
    """Show the newest CRLs: number, thisUpdate, nextUpdate, entries, files."""
    from kinko.crl.publisher import crl_paths, latest

    home = ctx.home()
    home.require()
    views = []
    for record in latest(home):
        der, pem = crl_paths(home, record.issuer, record.kind)
        views.append(
            CRLView(
                record.issuer,
                record.kind,
                record.number,
                record.base_number,
                record.this_update,
                record.next_update,
                record.entries,
                str(der),
                str(pem),
                record.sha256,
            )
        )
    return views


def render_crls(result: list[CRLView], out: Output, _p: object) -> None:
    out.rows(to_json(result), CRL_COLUMNS)


OPERATIONS: list[Operation[Any, Any]] = [
    Operation("crl publish", PublishParams, crl_publish, render_crls, "officer", extra_roles=root_needs_admin),
    Operation("crl show", NoParams, crl_show, render_crls, "auditor"),
]
