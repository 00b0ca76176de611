"""The command registry and its renderers: every `kinko` operation, defined once.

This package holds the index of top-level names; `registry` the `Operation` type; each other
module the operations of one command group (OPERATIONS) and its groups' help (GROUPS);
`render` the output; `click_app` builds the CLI from them.
"""

from __future__ import annotations

# Where each top-level name of `kinko` is defined: the CLI imports a module only when one of its
# commands runs (or `kinko --help` lists them), so `kinko cert show` loads one module, not all.
INDEX: dict[str, str] = {
    "init": "authority",
    "ca": "authority",
    "issue": "certificates",
    "revoke": "certificates",
    "hold": "certificates",
    "release": "certificates",
    "cert": "certificates",
    "crl": "crls",
    "customer": "customers",
    "enroll": "holders",
    "acquire": "holders",
    "renew": "holders",
    "reacquire": "holders",
    "reissue": "holders",
    "incident": "incidents",
    "status": "reports",
    "report": "reports",
    "api": "servers",
    "ocsp": "servers",
    "quickstart": "servers",
    "ledger": "ledger",
    "officer": "officers",
    "db": "database",
    "service": "service",
    "config": "configuration",
}
