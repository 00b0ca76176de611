"""The CA's own certificates as people see them: `kinko ca show` and `kinko ca chain`."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import hashes, serialization

from kinko.ca.home import Home
from kinko.ca.keys import describe_key
from kinko.ca.profiles import issuer_urls
from kinko.ca.serials import format_serial


def describe_hierarchy(home: Home) -> dict[str, Any]:
    """Subjects, validity, key types, fingerprints of the CA and its OCSP signer, and the URLs."""
    roles = ["root"] if home.config.ca.single_tier else ["root", "issuing", "ocsp:issuing"]
    roles.extend(["ocsp:root", "audit"])
    certificates = []
    for role in roles:
        cert = home.ca_certificate(role)
        certificates.append(
            {
                "role": role,
                "subject": cert.subject.rfc4514_string(),
                "issuer": cert.issuer.rfc4514_string(),
                "serial": format_serial(cert.serial_number),
                "not_before": cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "not_after": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "key": describe_key(cert.public_key()),
                "sha256_fingerprint": cert.fingerprint(hashes.SHA256()).hex(":").upper(),
            }
        )
    urls = issuer_urls(home.config.ca.base_url, home.issuing_role)
    return {
        "home": str(home.path),
        "certificates": certificates,
        "urls": {"ocsp": urls.ocsp, "ca_issuers": urls.ca_issuers, "crl": urls.crl, "delta_crl": urls.delta_crl},
    }


def chain_pems(home: Home) -> list[str]:
    """The chain's certificates as PEM, issuing CA first, then the root (the root alone in a single-tier home)."""
    roles = ["root"] if home.config.ca.single_tier else ["issuing", "root"]
    return [home.ca_certificate(role).public_bytes(serialization.Encoding.PEM).decode("ascii") for role in roles]


def chain_pem(home: Home) -> str:
    """The chain as one PEM text, issuing CA first."""
    return "".join(chain_pems(home))
