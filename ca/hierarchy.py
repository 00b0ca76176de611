"""Creating a CA home: keys, the root and issuing CA certificates, the OCSP signer, the database."""

from __future__ import annotations

import datetime as dt
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

from kinko.ca import config as config_module
from kinko.ca import issuance, keys, profiles
from kinko.ca.clock import Clock, to_text
from kinko.ca.errors import ConfigError, Conflict, InputError
from kinko.ca.files import make_dir, write_atomically, write_new
from kinko.ca.home import Home, read_passphrase_file
from kinko.ca.ledger import checkpoint_message
from kinko.ca.signer import Issuer
from kinko.ca.store import CertificateRecord, Store, Writer, create_store, discard_new_store, is_server


@dataclass(frozen=True)
class InitOptions:
    """What `kinko init` was asked for."""

    organization: str
    country: str = "JP"
    key_type: str = "ec-p256"
    base_url: str = "http://127.0.0.1:8080"
    single_tier: bool = False
    passphrase_file: Path | None = None
    policy_oid: str | None = None
    # "" for HOME/kinko.db, or a postgresql:// URL of an empty database.
    database: str = ""
    database_password_file: Path | None = None


def _check_names(options: InitOptions) -> None:
    """The organisation and country become every CA certificate's subject: refused before anything is made."""
    organization = options.organization
    if not organization.strip():
        raise InputError("--org must name the organisation: it becomes the CA certificates' O= and CN=")
    if organization != organization.strip() or any(ord(c) < 32 or ord(c) == 127 for c in organization):
        raise InputError("--org must not start or end with spaces or hold control characters")
    # The longest name made from it, "<org> OCSP Responder", must fit a certificate's 64 bytes.
    limit = profiles.MAX_NAME - len(" OCSP Responder")
    size = len(organization.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise InputError(
            "--org is {size} bytes in UTF-8; at most {limit} fit the CAs' names "
            "({limit} ASCII characters or {kana} kanji or kana)",
            size=size,
            limit=limit,
            kana=limit // 3,
        )
    if not (len(options.country) == 2 and options.country.isascii() and options.country.isalpha()):
        raise InputError(
            "--country must be a two-letter ISO 3166 code such as JP, not {country!r}", country=options.country
        )


def create_home(path: Path, options: InitOptions, clock: Clock, actor: str, passphrase: bytes | None = None) -> Home:
    """Builds a complete CA home at `path`; refuses an existing one and leaves nothing on failure."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise Conflict("{path} already exists and is not empty; kinko init never touches an existing home", path=path)
    if options.key_type not in config_module.KEY_TYPES:
        raise InputError(
            "key type {key_type!r} is not one of {types}",
            key_type=options.key_type,
            types=", ".join(config_module.KEY_TYPES),
        )
    _check_names(options)
    if options.passphrase_file is not None:
        passphrase_file = options.passphrase_file.resolve()
        passphrase = read_passphrase_file(passphrase_file)
    elif passphrase is None:
        raise ConfigError("kinko init needs --passphrase-file (or a terminal to type a passphrase)")
    else:
        passphrase_file = None

    config_text = config_module.default_text("kinko.toml")
    for key, value in (
        ("organization", options.organization),
        ("country", options.country.upper()),
        ("key_type", options.key_type),
        ("base_url", options.base_url.rstrip("/")),
        ("single_tier", options.single_tier),
        ("passphrase_file", str(passphrase_file or "")),
    ):
        config_text = config_module.set_value(config_text, key, value)
    if options.policy_oid:
        config_text = config_module.set_value(config_text, "policy_oid", options.policy_oid)
    if options.database:
        config_text = config_module.set_value(config_text, "url", options.database)
    if options.database_password_file is not None:
        config_text = config_module.set_value(
            config_text, "password_file", str(options.database_password_file.resolve())
        )
    if options.country.upper() != "JP":  # the shipped zone is the bank's (Asia/Tokyo)
        config_text = config_module.set_value(config_text, "timezone", "UTC")
    profiles_text = config_module.default_text("profiles.toml")

    if not path.parent.exists():
        make_dir(path.parent, 0o755)
    # Build beside the target and rename at the end, so a failed init leaves no half home.
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.init-", dir=path.parent))
    try:
        # Explicit modes whatever the umask: the configuration is readable, writable by its owner only.
        write_new(staging / "kinko.toml", config_text.encode("utf-8"), 0o644)
        write_new(staging / "profiles.toml", profiles_text.encode("utf-8"), 0o644)
        make_dir(staging / "public", 0o755)
        home = Home(staging, passphrase=passphrase)
        cfg = home.config  # validates what we just wrote, with the user's values
        profiles.subject_name(f"{options.organization} Root CA", options.organization, options.country)
        check_database_password_file(home.database_password_file)
        keys.make_private_dir(home.keys_dir)
        store = create_store(home.database, home.database_password_file)
        try:
            _build(home, cfg, passphrase, clock, actor, store)
            _first_responses(home, clock, actor)
            _first_crls(home, clock, actor)
        except BaseException:
            if is_server(home.database):  # a database server keeps what removing the staging dir does not
                opened = home.__dict__.get("store")
                if opened is not None:
                    opened.close()
                discard_new_store(home.database, home.database_password_file)
            raise
        make_dir(staging, 0o755)
        if path.exists():
            path.rmdir()
        staging.rename(path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Home(path)


def check_database_password_file(path: Path | None) -> None:
    """A database password file must be a file only its owner can read (libpq ignores it otherwise)."""
    if path is None:
        return
    try:
        info = path.stat()
    except OSError as exc:
        raise ConfigError(
            "cannot read the database password file {path}: {reason}", path=path, reason=exc.strerror
        ) from None
    if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077:
        raise ConfigError(
            "the database password file {path} must be a file readable by its owner only (chmod 600 {path})",
            path=path,
        )


def _build(home: Home, cfg: config_module.Config, passphrase: bytes, clock: Clock, actor: str, store: Store) -> None:
    now = clock.now()
    ca = cfg.ca
    try:
        with store.transaction(actor, to_text(now) or "") as tx:
            root_key = keys.generate_private_key(ca.key_type)
            keys.write_private_key(home.keys_dir / "root.key", root_key, passphrase)
            root_name = profiles.subject_name(f"{ca.organization} Root CA", ca.organization, ca.country)
            root_issuer = Issuer(name=root_name, not_after=None, key=keys.FileKey(root_key))
            root_record, root_cert = _sign_ca(
                tx, cfg, "root-ca", "root", root_issuer, root_name, root_key.public_key(), None, now
            )
            tx.set_authority("root", root_record.serial, "root.key")
            _write_public(home, "root", root_cert)
            tx.append_event(
                "ca.created", serial=root_record.serial, details=_ca_details("root", root_record, "root.key")
            )

            signing_issuer = Issuer(name=root_name, not_after=root_cert.not_valid_after_utc, key=keys.FileKey(root_key))
            signing_role = "root"
            if not ca.single_tier:
                issuing_key = keys.generate_private_key(ca.key_type)
                keys.write_private_key(home.keys_dir / "issuing.key", issuing_key, passphrase)
                issuing_name = profiles.subject_name(f"{ca.organization} Issuing CA", ca.organization, ca.country)
                issuing_record, issuing_cert = _sign_ca(
                    tx,
                    cfg,
                    "issuing-ca",
                    "root",
                    root_issuer,
                    issuing_name,
                    issuing_key.public_key(),
                    profiles.issuer_urls(ca.base_url, "root"),
                    now,
                )
                tx.set_authority("issuing", issuing_record.serial, "issuing.key")
                _write_public(home, "issuing", issuing_cert)
                tx.append_event(
                    "ca.created",
                    serial=issuing_record.serial,
                    details=_ca_details("issuing", issuing_record, "issuing.key"),
                )
                signing_issuer = Issuer(
                    name=issuing_name, not_after=issuing_cert.not_valid_after_utc, key=keys.FileKey(issuing_key)
                )
                signing_role = "issuing"
                # The root answers OCSP for the issuing CA too (nginx's ssl_ocsp checks the whole
                # chain), through a delegated signer so the responder never holds the root key.
                root_signer = Issuer(
                    name=root_name, not_after=root_cert.not_valid_after_utc, key=keys.FileKey(root_key)
                )
                issue_ocsp_signer(home, tx, cfg, root_signer, "root", now)
            issue_ocsp_signer(home, tx, cfg, signing_issuer, signing_role, now)
            audit_record, audit_key = issue_audit_signer(home, tx, cfg, signing_issuer, signing_role, now)
            # Seal this first transaction too: from the first event on, every event is covered.
            store.sealer = lambda seq, head, time: (
                audit_key.sign_data(checkpoint_message(seq, head, time)),
                audit_record.serial,
            )
            tx.add_officer(actor, "admin", actor)
            tx.append_event("officer.added", details={"login": actor, "role": "admin"})
    finally:
        store.close()


def _first_responses(home: Home, clock: Clock, actor: str) -> None:
    from kinko.ocsp.presign import Presigner

    now = clock.now()
    with home.store.transaction(actor, to_text(now) or "") as tx:
        records = [r for role in ("root", "issuing") for r in home.store.unexpired_certificates(role, tx.time)]
        Presigner(home).sign(tx, records, now)


def _first_crls(home: Home, clock: Clock, actor: str) -> None:
    # Publish at once, so the CRL URLs in the new certificates answer from the first day.
    from kinko.crl import publisher

    now = clock.now()
    publisher.publish_full_and_delta(home, now, actor, home.issuing_role)
    if home.issuing_role != "root":
        publisher.publish(home, now, actor, "root", "full")
    home.store.close()


def issue_ocsp_signer(
    keyring: keys.KeyRing, tx: Writer, cfg: config_module.Config, issuer: Issuer, issuer_role: str, now: dt.datetime
) -> CertificateRecord:
    """Issues a delegated OCSP signing certificate; its key is kept unencrypted (0600) for the responder."""
    not_after = profiles.add_validity(now, config_module.Validity(days=cfg.ocsp.signer_validity_days))
    record, _key, key_name = _issue_delegated(
        keyring, tx, cfg, issuer, issuer_role, now, "ocsp-signer", "OCSP Responder", not_after, f"ocsp:{issuer_role}"
    )
    tx.append_event("ocsp.signer-issued", serial=record.serial, details=_signer_details(record, key_name))
    return record


def issue_audit_signer(
    keyring: keys.KeyRing, tx: Writer, cfg: config_module.Config, issuer: Issuer, issuer_role: str, now: dt.datetime
) -> tuple[CertificateRecord, keys.FileKey]:
    """Issues the ledger's audit signer: its key (0600, unencrypted so every command can seal
    its transaction) signs checkpoints and exports."""
    not_after = profiles.add_validity(now, cfg.profile("audit-signer").validity)
    if issuer.not_after is not None:
        not_after = min(not_after, issuer.not_after)
    record, key, key_name = _issue_delegated(
        keyring, tx, cfg, issuer, issuer_role, now, "audit-signer", "Ledger Audit", not_after, "audit"
    )
    # The appointment the verifiers read (kinko.ca.signers): validity and the certificate's fingerprint,
    # so a registry row swapped for another certificate with the same serial does not count.
    tx.append_event("audit.signer-issued", serial=record.serial, details=_signer_details(record, key_name))
    return record, key


def replace_audit_signer(
    keyring: keys.KeyRing,
    tx: Writer,
    cfg: config_module.Config,
    now: dt.datetime,
    old: tuple[str, str] | None,
    reason: str,
) -> CertificateRecord:
    """Appoints a new audit signer under the issuing CA and retires `old` (serial, key file), in
    the caller's transaction, which the new signer then seals; the caller deletes the old key
    file once the transaction has committed."""
    role = keyring.issuing_role
    certificate = keyring.ca_certificate(role)
    issuer = Issuer(name=certificate.subject, not_after=certificate.not_valid_after_utc, key=keyring.key(role))
    record, _key = issue_audit_signer(keyring, tx, cfg, issuer, role, now)
    if old is not None:
        tx.append_event(
            "audit.signer-retired",
            serial=old[0],
            details={"key_file": old[1], "replaced_by": record.serial, "reason": reason},
        )
    return record


def _issue_delegated(
    keyring: keys.KeyRing,
    tx: Writer,
    cfg: config_module.Config,
    issuer: Issuer,
    issuer_role: str,
    now: dt.datetime,
    profile_name: str,
    title: str,
    not_after: dt.datetime,
    authority: str,
) -> tuple[CertificateRecord, keys.FileKey, str]:
    # A signer the CA delegates to: a fresh key kept unencrypted (0600) so that services and
    # every command can use it unattended, and the role pointing at it.
    key = keys.generate_private_key(cfg.ca.key_type if profile_name == "ocsp-signer" else "ec-p256")
    key_name = keyring.store_signer_key(authority, key, now)
    profile = cfg.profile(profile_name)
    subject = profiles.subject_name(f"{cfg.ca.organization} {title}", cfg.ca.organization, cfg.ca.country)
    record, _cert = issuance.issue(
        tx,
        issuer=issuer,
        issuer_role=issuer_role,
        profile=profile_name,
        subject=subject,
        public_key=key.public_key(),
        not_before=now,
        not_after=not_after,
        extensions=profiles.build_extensions(
            profile,
            subject_key=key.public_key(),
            issuer_key=issuer.key.public_key(),
            urls=profiles.issuer_urls(cfg.ca.base_url, issuer_role),
        ),
    )
    tx.set_authority(authority, record.serial, key_name)
    return record, keys.FileKey(key), key_name


def _sign_ca(
    tx: Writer,
    cfg: config_module.Config,
    profile_name: str,
    issuer_role: str,
    issuer: Issuer,
    subject: x509.Name,
    public_key: CertificateIssuerPublicKeyTypes,
    urls: profiles.IssuerURLs | None,
    now: dt.datetime,
) -> tuple[CertificateRecord, x509.Certificate]:
    profile = cfg.profile(profile_name)
    return issuance.issue(
        tx,
        issuer=issuer,
        issuer_role=issuer_role,
        profile=profile_name,
        subject=subject,
        public_key=public_key,
        not_before=now,
        not_after=profiles.add_validity(now, profile.validity),
        extensions=profiles.build_extensions(
            profile,
            subject_key=public_key,
            issuer_key=issuer.key.public_key(),
            urls=urls,
        ),
    )


def _write_public(home: Home, role: str, certificate: x509.Certificate) -> None:
    target = home.public_dir / "ca"
    make_dir(target, 0o755)
    # DER is what AIA caIssuers serves (RFC 5280 4.2.2.1); the PEM copy is for people and openssl.
    write_atomically(target / f"{role}.cer", certificate.public_bytes(serialization.Encoding.DER), 0o644)
    write_atomically(target / f"{role}.pem", certificate.public_bytes(serialization.Encoding.PEM), 0o644)


def _signer_details(record: CertificateRecord, key_file: str) -> dict[str, str]:
    # What the ledger's replay checks the registry and `authorities` rows against.
    return {
        "issuer": record.issuer,
        "not_after": record.not_after,
        "not_before": record.not_before,
        "subject": record.subject,
        "fingerprint_sha256": record.fingerprint_sha256,
        "spki_sha256": record.spki_sha256,
        "key_file": key_file,
    }


def _ca_details(role: str, record: CertificateRecord, key_file: str) -> dict[str, str]:
    return {
        "role": role,
        "key_file": key_file,
        "subject": record.subject,
        "not_before": record.not_before,
        "not_after": record.not_after,
        "fingerprint_sha256": record.fingerprint_sha256,
    }
