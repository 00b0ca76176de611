"""`kinko quickstart`: a demo CA home built without prompts, with one client certificate."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from kinko.ca import keys
from kinko.ca.authorities import chain_pem
from kinko.ca.clock import Clock
from kinko.ca.errors import Conflict
from kinko.ca.files import write_new
from kinko.ca.hierarchy import InitOptions, create_home
from kinko.ca.lifecycle import Kinko

DEMO_ORG = "興産信用金庫"
DEMO_HOLDER = "山田 太郎"
DEMO_CUSTOMER = "株式会社テスト"


def build_demo(directory: Path, clock: Clock, actor: str, port: int = 8088) -> dict[str, Any]:
    """Creates DIR/home with a random passphrase in DIR/passphrase.txt and issues one certificate."""
    if directory.exists() and any(directory.iterdir()):
        raise Conflict("{path} already exists; remove it or pass --dir to build the demo elsewhere", path=directory)
    directory.mkdir(parents=True, exist_ok=True)
    passphrase_file = directory / "passphrase.txt"
    write_new(passphrase_file, (secrets.token_urlsafe(24) + "\n").encode("ascii"), 0o600)
    home = create_home(
        directory / "home",
        InitOptions(organization=DEMO_ORG, passphrase_file=passphrase_file, base_url=f"http://127.0.0.1:{port}"),
        clock,
        actor,
    )

    # The demo plays the customer's PC too: the key is made here, only the CSR goes to the CA.
    client_key = keys.generate_private_key("ec-p256")
    keys.write_private_key(directory / "client.key", client_key, None)
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(client_key, hashes.SHA256())

    issued = Kinko(home, clock=clock, actor=actor).issue(
        csr.public_bytes(Encoding.PEM), name=DEMO_HOLDER, organization=DEMO_CUSTOMER
    )
    write_new(directory / "client.pem", issued.pem.encode("ascii"), 0o644)
    write_new(directory / "chain.pem", chain_pem(home).encode("ascii"), 0o644)
    return {
        "home": str(home.path),
        "passphrase_file": str(passphrase_file),
        "client_key": str(directory / "client.key"),
        "client_cert": str(directory / "client.pem"),
        "chain": str(directory / "chain.pem"),
        "serial": issued.record.serial,
    }
