"""The CA home: its layout on disk, and loading its config, database and keys.

HOME/kinko.toml, profiles.toml   configuration (copied from config/ by init)
HOME/kinko.db                    SQLite database (WAL)
HOME/keys/                       private keys, 0700 dir, 0600 files
HOME/public/                     exactly what is served under ca.base_url:
    ca/root.cer, ca/issuing.cer  DER CA certificates
    crl/issuing.crl, ...         CRLs
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from kinko.ca import config as config_module
from kinko.ca.errors import ConfigError, PassphraseError

if TYPE_CHECKING:
    from cryptography import x509

    from kinko.ca.keys import FileKey, PrivateKey
    from kinko.ca.store import Store

PASSPHRASE_ENV = "KINKO_PASSPHRASE_FILE"  # noqa: S105 - a variable name, not a secret
HOME_ENV = "KINKO_HOME"
MAX_PASSPHRASE_BYTES = 1024

PassphrasePrompt = Callable[[str], str]


class Home:
    """A Kinko CA home directory."""

    def __init__(
        self,
        path: Path,
        prompt: PassphrasePrompt | None = None,
        passphrase: bytes | None = None,
        readonly: bool = False,
    ) -> None:
        self.path = path
        # A read-only home (the OCSP responder's) never opens the database for writing.
        self.readonly = readonly
        # Only `kinko db upgrade` sets this (before the store is first used): it opens a database
        # older than this Kinko, to check the operator's role and upgrade it. Every other command refuses one.
        self.upgrading = False
        self._prompt = prompt
        self._passphrase: bytes | None = passphrase
        self._keys: dict[str, FileKey] = {}
        self._certificates: dict[str, x509.Certificate] = {}

    @property
    def config_file(self) -> Path:
        return self.path / "kinko.toml"

    @property
    def db_file(self) -> Path:
        return self.path / "kinko.db"

    @property
    def keys_dir(self) -> Path:
        return self.path / "keys"

    @property
    def public_dir(self) -> Path:
        return self.path / "public"

    def exists(self) -> bool:
        """True when the directory holds a Kinko configuration."""
        return self.config_file.exists()

    def require(self) -> None:
        """Raises a clear error when this is not a Kinko home."""
        if not self.exists():
            raise ConfigError(f"{self.path} is not a Kinko home (no kinko.toml); create one with `kinko init`")

    @cached_property
    def config(self) -> config_module.Config:
        self.require()
        return config_module.load(self.path)

    @cached_property
    def store(self) -> Store:
        from kinko.ca.store import open_store

        self.require()
        if self.readonly:
            return self.readonly_store
        if not self.db_file.exists():
            raise ConfigError(f"{self.db_file} is missing: this home has no database")
        store = open_store(self.db_file, upgrading=self.upgrading)
        if store.authority("audit") is not None:
            store.sealer = self.seal_checkpoint
        return store

    def seal_checkpoint(self, seq: int, head_hash: str, time: str) -> tuple[bytes, str]:
        """Signs a ledger checkpoint with the audit key: (signature, the signer's serial)."""
        from kinko.ca.ledger import checkpoint_message

        found = self.store.authority("audit")
        assert found is not None
        return self.key("audit").sign_data(checkpoint_message(seq, head_hash, time)), found[0]

    @cached_property
    def readonly_store(self) -> Store:
        """The database opened read-only: what the responder and auditors read (every write fails)."""
        from kinko.ca.store import open_store

        self.require()
        return open_store(self.db_file, readonly=True)

    @property
    def issuing_role(self) -> str:
        """The CA that signs client certificates: 'issuing', or 'root' in a single-tier home."""
        return "root" if self.config.ca.single_tier else "issuing"

    def ca_certificate(self, role: str) -> x509.Certificate:
        """The current certificate of a CA role (root, issuing, ocsp:issuing) from the registry."""
        from cryptography import x509

        from kinko.ca.errors import NotFound

        found = self.store.authority(role)
        if found is None:
            raise NotFound(f"this home has no {role} certificate")
        cached = self._certificates.get(found[0])
        if cached is None:
            record = self.store.certificate(found[0])
            if record is None:
                raise NotFound(f"this home has no {role} certificate")
            cached = self._certificates[found[0]] = x509.load_der_x509_certificate(record.der)
        return cached

    def key(self, role: str) -> FileKey:
        """Loads the private key of a role; CA keys need the passphrase, delegated signers do not."""
        from kinko.ca.keys import FileKey

        found = self.store.authority(role)
        if found is None:
            raise ConfigError(f"this home has no key for {role}")
        cached = self._keys.get(found[1])
        if cached is None:
            # Delegated signers (OCSP, the ledger's audit key) are kept unencrypted so services
            # and every command can use them unattended; CA keys need the passphrase.
            passphrase = None if role.startswith("ocsp:") or role == "audit" else self.passphrase()
            # Decrypting costs as much as a signature; a process that signs many times decrypts once.
            cached = self._keys[found[1]] = FileKey.load(self.keys_dir / found[1], passphrase)
        return cached

    def store_signer_key(self, authority: str, key: PrivateKey, now: dt.datetime) -> str:
        """Writes a new delegated signer's key (unencrypted, 0600: services use it unattended);
        returns its file name under keys/, which `authorities` records."""
        import secrets

        from kinko.ca.keys import write_private_key

        name = f"{authority.replace(':', '-')}-{now:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}.key"
        write_private_key(self.keys_dir / name, key, None)
        return name

    def passphrase(self) -> bytes:
        """The CA key passphrase: $KINKO_PASSPHRASE_FILE, then kinko.toml, then a TTY prompt."""
        if self._passphrase is not None:
            return self._passphrase
        source = os.environ.get(PASSPHRASE_ENV) or self.config.ca.passphrase_file
        if source:
            self._passphrase = read_passphrase_file(Path(source))
        elif self._prompt is not None:
            self._passphrase = self._prompt("CA key passphrase").encode("utf-8")
        else:
            raise PassphraseError(
                f"no passphrase for the CA key: set {PASSPHRASE_ENV} or ca.passphrase_file in "
                f"{self.config_file}, or run on a terminal to be prompted"
            )
        return self._passphrase


def read_passphrase_file(path: Path) -> bytes:
    """Reads a passphrase file: its first line, without the newline; must not be empty. The file
    must be a regular file only its owner can read, and at most a bounded size is read."""
    from kinko.ca.files import read_secret

    try:
        data = read_secret(path, "passphrase", MAX_PASSPHRASE_BYTES + 2)
    except ConfigError as exc:
        raise PassphraseError(str(exc)) from None
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    if not line:
        raise PassphraseError(f"passphrase file {path} is empty")
    if len(line) > MAX_PASSPHRASE_BYTES:
        raise PassphraseError(f"passphrase in {path} is longer than {MAX_PASSPHRASE_BYTES} bytes")
    return line


def resolve_home(path: str | None) -> Path:
    """--home, then $KINKO_HOME, then ./kinko-home."""
    return Path(path or os.environ.get(HOME_ENV) or "kinko-home")
