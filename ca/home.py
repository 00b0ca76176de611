"""The CA home: its layout on disk, and loading its config, database and keys.

HOME/kinko.toml, profiles.toml   configuration (copied from config/ by init)
HOME/kinko.db                    SQLite database (WAL), unless [store] url names a PostgreSQL server
HOME/keys/                       private keys, 0700 dir, 0600 files
HOME/public/                     exactly what is served under ca.base_url:
    ca/root.cer, ca/issuing.cer  DER CA certificates
    crl/issuing.crl, ...         CRLs
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from kinko.ca import config as config_module
from kinko.ca.errors import ConfigError, KinkoError, PassphraseError
from kinko.ca.i18n import said
from kinko.ca.locations import DEFAULT_SOCKET

if TYPE_CHECKING:
    from cryptography import x509

    from kinko.ca.keys import FileKey, PrivateKey
    from kinko.ca.signers import AuditSigners
    from kinko.ca.store import Store

PASSPHRASE_ENV = "KINKO_PASSPHRASE_FILE"  # noqa: S105 - a variable name, not a secret
KEY_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
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
        database: str | None = None,
        database_password_file: Path | None = None,
    ) -> None:
        self.path = path
        # A database named to this process (a responder's --database: a standby), over [store].
        self._database = database
        self._database_password_file = database_password_file
        # A read-only home (the OCSP responder's) never opens the database for writing.
        self.readonly = readonly
        # Only `kinko db upgrade` sets this (before the store is first used): it opens a database
        # older than this Kinko, to check the operator's role and upgrade it. Every other command refuses one.
        self.upgrading = False
        self._prompt = prompt
        self._passphrase: bytes | None = passphrase
        self._keys: dict[str, FileKey] = {}
        self._certificates: dict[str, x509.Certificate] = {}
        self._syslog_warned = False
        # The audit signers as of the last committed checkpoint this process looked at: sealing then
        # reads only the events since (a rolled-back transaction's events never enter it).
        self._signers: tuple[int, AuditSigners] | None = None
        self._loaded_stamps: tuple[tuple[int, int, int], ...] = ()

    @property
    def config_file(self) -> Path:
        return self.path / "kinko.toml"

    @property
    def db_file(self) -> Path:
        return self.path / "kinko.db"

    @cached_property
    def store_settings(self) -> config_module.StoreSettings:
        """[store] of kinko.toml, read on its own: the database opens while profiles.toml is broken."""
        self.require()
        return config_module.load_store(self.path)

    @property
    def database(self) -> Path | str:
        """Where this home's database is: kinko.db, or the PostgreSQL URL of [store] url."""
        return self._database or self.store_settings.url or self.db_file

    @property
    def database_password_file(self) -> Path | None:
        """The libpq password file of [store] password_file (relative to the home), if any."""
        if self._database is not None:
            return self._database_password_file
        name = self.store_settings.password_file
        return (self.path / name) if name else None

    @property
    def keys_dir(self) -> Path:
        return self.path / "keys"

    @property
    def public_dir(self) -> Path:
        return self.path / "public"

    def exists(self) -> bool:
        """True when the directory holds a Kinko configuration; a home this account may not enter
        belongs to the CA service's account, which officers reach through its socket."""
        try:
            return self.config_file.exists()
        except PermissionError:
            raise ConfigError(
                "{path} belongs to another account (permission denied): "
                "reach it through the CA service, e.g. kinko --socket {socket} ...",
                path=self.path,
                socket=DEFAULT_SOCKET,
            ) from None

    def require(self) -> None:
        """Raises a clear error when this is not a Kinko home."""
        if not self.exists():
            raise ConfigError(
                "{path} is not a Kinko home (no kinko.toml); create one with `kinko init`", path=self.path
            )

    @cached_property
    def config(self) -> config_module.Config:
        self.require()
        stamps = self._config_stamps()
        loaded = config_module.load(self.path)
        self._loaded_stamps = stamps
        return loaded

    def display_zone(self) -> dt.tzinfo | None:
        """The zone people read this home's times in; None (UTC) where its configuration cannot
        be read, which the command that needs it then reports."""
        try:
            return self.config.display.zone(self.config.ca.country) if self.exists() else None
        except KinkoError:
            return None

    def reload_config(self) -> None:
        """Reads kinko.toml and profiles.toml again at next use (after `config apply`)."""
        self.__dict__.pop("config", None)

    def refresh_config(self) -> bool:
        """A long-lived process's check (two stats): re-reads the configuration when its files
        changed since they were read; True when it did. One that does not load is left for
        config-watch to report, and the one in force stays."""
        if "config" not in self.__dict__ or self._config_stamps() == self._loaded_stamps:
            return False
        previous, stamps = self.__dict__.pop("config"), self._config_stamps()
        try:
            self.config  # noqa: B018 - loads it
        except Exception:  # whatever is wrong with the files, the one in force stays
            self.__dict__["config"] = previous
            self._loaded_stamps = stamps  # looked at: not parsed again on every request until the next edit
            return False
        return True

    def _config_stamps(self) -> tuple[tuple[int, int, int], ...]:
        stamps = []
        for name in ("kinko.toml", "profiles.toml"):
            try:
                info = (self.path / name).stat()
            except OSError:
                stamps.append((0, 0, 0))
                continue
            stamps.append((info.st_ino, info.st_size, info.st_mtime_ns))
        return tuple(stamps)

    @cached_property
    def store(self) -> Store:
        from kinko.ca.store import open_store

        self.require()
        if self.readonly:
            return self.readonly_store
        if isinstance(self.database, Path) and not self.db_file.exists():
            raise ConfigError("{path} is missing: this home has no database", path=self.db_file)
        store = open_store(self.database, upgrading=self.upgrading, password_file=self.database_password_file)
        if store.authority("audit") is not None:
            store.sealer = self.seal_checkpoint
            store.announcer = self.announce_checkpoint
        return store

    def seal_checkpoint(self, seq: int, head_hash: str, time: str) -> tuple[bytes, str]:
        """Signs a ledger checkpoint with the audit key: (signature, the signer's serial).

        Refuses when the ledger no longer appoints that signer (revoked, retired, expired)."""
        from kinko.ca.ledger import checkpoint_message

        found = self.store.authority("audit")
        assert found is not None
        self.require_audit_signer(begins=self.store.last_checkpoint_seq() + 1, head=seq, time=time)
        return self.key("audit").sign_data(checkpoint_message(seq, head_hash, time)), found[0]

    def require_audit_signer(self, *, begins: int, head: int, time: str) -> None:
        """Raises unless the current audit signer may sign over events begins..head at `time`,
        by the ledger's own record (the rule the verifiers apply: `kinko.ca.signers`)."""
        import copy

        from cryptography.hazmat.primitives import hashes

        from kinko.ca.errors import PolicyError
        from kinko.ca.signers import AuditSigners

        found = self.store.authority("audit")
        if found is None:
            raise PolicyError("this home has no audit signer")
        fingerprint = self.ca_certificate("audit").fingerprint(hashes.SHA256()).hex()
        committed = begins - 1
        seen, signers = self._signers or (0, AuditSigners())
        if seen > committed:
            seen, signers = 0, AuditSigners()
        for event in self.store.signer_events(seen):
            if event.seq > committed:
                break
            signers.observe(event)
        self._signers = (committed, signers)
        # This transaction's own events (a rotation's appointment) count, on a copy: most have none.
        own = list(self.store.signer_events(committed))
        current = copy.deepcopy(signers) if own else signers
        for event in own:
            current.observe(event)
        problem = current.standing(found[0], begins=begins, head=head, time=time, fingerprint=fingerprint)
        if problem is not None:
            raise PolicyError(
                "{problem}; nothing was signed or written: an admin appoints a new one with "
                "`kinko ledger signer rotate`",
                problem=problem,
            )

    def announce_checkpoint(self, seq: int, head_hash: str, time: str, signature: bytes, signer: str) -> None:
        """Sends a committed checkpoint head to syslog ([audit] syslog_socket): an anchor the bank's
        log server keeps outside the CA. Never fails a change: a problem is one warning on stderr."""
        from kinko.ca.syslog import send_head

        path = self.config.audit.syslog_socket
        if not path:
            return
        warning = send_head(path, seq, head_hash, time, signature, signer)
        if warning is not None and not self._syslog_warned:
            self._syslog_warned = True
            import sys

            print(said("kinko: warning: {warning}", warning=warning), file=sys.stderr)

    @cached_property
    def readonly_store(self) -> Store:
        """The database opened read-only: what the responder and auditors read (every write fails)."""
        from kinko.ca.store import open_store

        self.require()
        return open_store(self.database, readonly=True, password_file=self.database_password_file)

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
            raise NotFound("this home has no {role} certificate", role=role)
        cached = self._certificates.get(found[0])
        if cached is None:
            record = self.store.certificate(found[0])
            if record is None:
                raise NotFound("this home has no {role} certificate", role=role)
            cached = self._certificates[found[0]] = x509.load_der_x509_certificate(record.der)
        return cached

    def key(self, role: str) -> FileKey:
        """Loads the private key of a role; CA keys need the passphrase, delegated signers do not."""
        from kinko.ca.keys import FileKey

        found = self.store.authority(role)
        if found is None:
            raise ConfigError("this home has no key for {role}", role=role)
        # A key reference is a file name in keys/, never a path: a row edited to '../../x' reads nothing.
        if not KEY_FILE.fullmatch(found[1]):
            raise ConfigError(
                "the key reference of {role} is not a file name in {directory}: {reference!r}",
                role=role,
                directory=self.keys_dir,
                reference=found[1],
            )
        cached = self._keys.get(found[1])
        if cached is None:
            # Delegated signers (OCSP, the ledger's audit key) are kept unencrypted so services
            # and every command can use them unattended; CA keys need the passphrase.
            passphrase = None if role.startswith("ocsp:") or role == "audit" else self.passphrase()
            # Decrypting costs as much as a signature; a process that signs many times decrypts once.
            cached = self._keys[found[1]] = FileKey.load(self.keys_dir / found[1], passphrase)
        return cached

    def store_signer_key(self, authority: str, key: PrivateKey, now: dt.datetime) -> str:
        """Writes a new delegated signer's key (unencrypted: services use it unattended), 0600, or
        0640 for an OCSP signer when keys/ admits its group (`service setup` gives the responder's
        group that); returns its file name under keys/, which `authorities` records."""
        import secrets

        from kinko.ca.keys import write_private_key

        name = f"{authority.replace(':', '-')}-{now:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}.key"
        shared = authority.startswith("ocsp:") and self.keys_dir.is_dir() and self.keys_dir.stat().st_mode & 0o010
        write_private_key(self.keys_dir / name, key, None, mode=0o640 if shared else 0o600)
        return name

    def delete_signer_key(self, reference: str) -> bool:
        """Deletes a retired delegated signer's key file from keys/; False when it was already gone.

        Only a plain file name that no role still uses: a reference is database content, and
        `../` in it must not reach outside keys/."""
        from kinko.ca.errors import PolicyError

        if not reference or "/" in reference or reference in (".", "..") or "\0" in reference:
            raise PolicyError("refusing to delete key {reference!r}: not a file name under keys/", reference=reference)
        if reference in {key_file for _serial, key_file in self.store.authorities().values()}:
            raise PolicyError("refusing to delete key {reference}: a role still uses it", reference=reference)
        self._keys.pop(reference, None)
        directory = os.open(self.keys_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            os.unlink(reference, dir_fd=directory)  # unlink never follows a symlink: it removes the link
        except FileNotFoundError:
            return False
        finally:
            os.close(directory)
        return True

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
                "no passphrase for the CA key: set {variable} or ca.passphrase_file in "
                "{config}, or run on a terminal to be prompted",
                variable=PASSPHRASE_ENV,
                config=self.config_file,
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
        raise PassphraseError("passphrase file {path} is empty", path=path)
    if len(line) > MAX_PASSPHRASE_BYTES:
        raise PassphraseError(
            "passphrase in {path} is longer than {limit} bytes", path=path, limit=MAX_PASSPHRASE_BYTES
        )
    return line
