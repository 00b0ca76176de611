"""Reads and validates `kinko.toml` and the certificate profiles into frozen dataclasses."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kinko.ca.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Section = TypeVar("Section", bound="DataclassInstance")

KEY_TYPES = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096")
KEY_USAGES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)
EXTENDED_KEY_USAGES = (
    "client_auth",
    "server_auth",
    "ocsp_signing",
    "code_signing",
    "email_protection",
    "time_stamping",
)
_VALIDITY = re.compile(r"^(\d+)([yd])$")
_OID = re.compile(r"^[0-2](\.(0|[1-9]\d*))+$")


@dataclass(frozen=True)
class Validity:
    """A certificate lifetime: whole calendar years or whole days."""

    years: int = 0
    days: int = 0


@dataclass(frozen=True)
class Profile:
    """What one kind of certificate contains."""

    name: str
    validity: Validity
    key_usage: tuple[str, ...]
    extended_key_usage: tuple[str, ...] = ()
    is_ca: bool = False
    path_length: int | None = None
    subject_key_identifier: bool = True
    authority_key_identifier: bool = True
    crl_distribution_point: bool = False
    freshest_crl: bool = False
    authority_info_access: bool = False
    certificate_policies: bool = False
    ocsp_no_check: bool = False
    # A subjectAltName naming the holder: its e-mail address, else a URI naming the subscriber.
    subject_alt_name: bool = False


@dataclass(frozen=True)
class CASettings:
    """The [ca] section: who the CA is and where it publishes."""

    organization: str
    country: str
    key_type: str
    base_url: str
    single_tier: bool
    passphrase_file: str
    policy_oid: str


@dataclass(frozen=True)
class CRLSettings:
    """The [crl] section."""

    next_update_hours: int = 48
    arl_next_update_days: int = 35
    retention_days: int = 0
    delta_after_entries: int = 10000


@dataclass(frozen=True)
class OCSPSettings:
    """The [ocsp] section."""

    next_update_days: int = 4
    # Short: a signer with id-pkix-ocsp-nocheck cannot be revoked, only outlived. Renewed at 2/3 of its life.
    signer_validity_days: int = 30
    nonces: bool = True
    # CertIDs one request may ask about: RFC 5019 clients send one, and each costs a lookup.
    max_cert_ids: int = 16
    # Signatures on demand (nonces, unknown serials, several CertIDs) per second and client, per
    # worker, bursts of twice that; past it a client gets the pre-signed answer or tryLater. 0: no limit.
    on_demand_per_client: int = 20
    # Addresses of the front end (nginx, config/nginx/kinko-ocsp.conf) whose X-Forwarded-For names
    # the client: requests from them are budgeted by that client. From anyone else it is ignored.
    trusted_proxies: tuple[str, ...] = ()
    # A responder reading a database replica (a PostgreSQL hot standby) that is more than this
    # many seconds behind its primary says so in /healthz (503), so that a load balancer drops it.
    replica_lag_seconds: int = 10


@dataclass(frozen=True)
class AuditSettings:
    """The [audit] section: where each checkpoint head is also sent (a syslog datagram socket)."""

    syslog_socket: str = "/dev/log"


@dataclass(frozen=True)
class APISettings:
    """The [api] section: the login front end's client name and its token file."""

    client_name: str = "login-frontend"
    token_file: str = ""


@dataclass(frozen=True)
class LifecycleSettings:
    """The [lifecycle] section: the bank's windows, in days."""

    enrollment_days: int = 80
    renewal_days: int = 30
    grace_days: int = 90


@dataclass(frozen=True)
class DisplaySettings:
    """[display]: how times are shown to people (JSON, the ledger and exports stay UTC)."""

    # An IANA zone; "" (a home made before [display]): Asia/Tokyo for a JP CA, else UTC.
    timezone: str = ""

    def zone(self, country: str) -> dt.tzinfo:
        """The zone to show times in (checked when the configuration is read)."""
        from kinko.ca.clock import BANK_ZONE, zone_named

        return zone_named(self.timezone or (BANK_ZONE if country.upper() == "JP" else "UTC"))


@dataclass(frozen=True)
class StoreSettings:
    """[store]: where the database is. "" is the home's kinko.db (SQLite)."""

    # "" or postgresql://user@host:port/dbname (never with a password in it).
    url: str = ""
    # A libpq password file (host:port:db:user:password, 0600); "" leaves it to PGPASSFILE.
    password_file: str = ""


@dataclass(frozen=True)
class ServiceSettings:
    """The [service] section: the CA service's own schedule."""

    # A change that went only into a delta CRL is in a new full CRL within this many seconds
    # (plus the build): clients that never fetch deltas (NSS, Java) see it within a minute.
    full_crl_seconds: int = 20
    # Days ahead of the end of the audit signer or a CA certificate that the service warns.
    expiry_warning_days: int = 90


@dataclass(frozen=True)
class Config:
    """Everything `kinko.toml` and `profiles.toml` say."""

    ca: CASettings
    crl: CRLSettings = field(default_factory=CRLSettings)
    ocsp: OCSPSettings = field(default_factory=OCSPSettings)
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    api: APISettings = field(default_factory=APISettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    display: DisplaySettings = field(default_factory=DisplaySettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    profiles: dict[str, Profile] = field(default_factory=dict)

    def profile(self, name: str) -> Profile:
        """Returns the named profile or says which ones exist."""
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles))
            raise ConfigError("unknown profile {name!r}; profiles are: {known}", name=name, known=known) from None


def default_text(name: str) -> str:
    """Returns a shipped default file from the `config` package (kinko.toml, profiles.toml)."""
    from importlib import resources  # here: only `init` reads the shipped defaults (3 ms at start-up)

    return resources.files("kinko.config").joinpath(name).read_text(encoding="utf-8")


def set_value(text: str, key: str, value: Any) -> str:
    """Replaces the first `key = ...` line of a TOML text, keeping its comments."""
    encoded = json.dumps(value, ensure_ascii=False) if not isinstance(value, bool) else str(value).lower()
    pattern = re.compile(rf"^{re.escape(key)} = .*$", re.MULTILINE)
    new, count = pattern.subn(lambda _m: f"{key} = {encoded}", text, count=1)
    if count != 1:
        raise ConfigError("configuration template has no {key!r} line", key=key)
    return new


def load(home: Path) -> Config:
    """Loads and validates the home's `kinko.toml` and `profiles.toml`."""
    data = _read_toml(home / "kinko.toml")
    profiles = parse_profiles(_read_toml(home / "profiles.toml"))
    return parse(data, profiles)


def load_store(home: Path) -> StoreSettings:
    """The [store] section of a home's kinko.toml alone: where its database is, readable even
    while the rest of the configuration does not load (the service records that in the database)."""
    return _store_section(_read_toml(home / "kinko.toml"))


def _store_section(data: dict[str, Any]) -> StoreSettings:
    store = _section(data, "store", StoreSettings)
    if store.url and not store.url.startswith(("postgresql://", "postgres://")):
        raise ConfigError('[store] url {url!r} is not a postgresql:// URL ("" is the home\'s kinko.db)', url=store.url)
    return store


def parse(data: dict[str, Any], profiles: dict[str, Profile]) -> Config:
    """Builds a Config from parsed TOML, refusing unknown keys and bad values."""
    ca = _section(data, "ca", CASettings, required=True)
    if ca.key_type not in KEY_TYPES:
        raise ConfigError(
            "ca.key_type {value!r} is not one of {choices}", value=ca.key_type, choices=", ".join(KEY_TYPES)
        )
    if not _OID.match(ca.policy_oid):
        raise ConfigError("ca.policy_oid {value!r} is not a dotted OID", value=ca.policy_oid)
    if not re.match(r"^https?://[^\s/]+", ca.base_url):
        raise ConfigError("ca.base_url {value!r} is not an http(s) URL", value=ca.base_url)
    crl = _section(data, "crl", CRLSettings)
    ocsp = _section(data, "ocsp", OCSPSettings)
    lifecycle = _section(data, "lifecycle", LifecycleSettings)
    api = _section(data, "api", APISettings)
    audit = _section(data, "audit", AuditSettings)
    service = _section(data, "service", ServiceSettings)
    display = _section(data, "display", DisplaySettings)
    store = _section(data, "store", StoreSettings)
    if store.url and not store.url.startswith(("postgresql://", "postgres://")):
        raise ConfigError('[store] url {url!r} is not a postgresql:// URL ("" is the home\'s kinko.db)', url=store.url)
    try:
        display.zone(ca.country)
    except KeyError:
        raise ConfigError(
            "[display] timezone {zone!r} is not a time zone (e.g. Asia/Tokyo or UTC)", zone=display.timezone
        ) from None
    if service.full_crl_seconds < 1:
        raise ConfigError("service.full_crl_seconds must be at least 1")
    if not isinstance(ocsp.trusted_proxies, list | tuple) or not all(isinstance(a, str) for a in ocsp.trusted_proxies):
        raise ConfigError("ocsp.trusted_proxies must be a list of IP addresses")
    for address in ocsp.trusted_proxies:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ConfigError("ocsp.trusted_proxies: {address!r} is not an IP address", address=address) from None
    ocsp = dataclasses.replace(ocsp, trusted_proxies=tuple(ocsp.trusted_proxies))
    if ocsp.signer_validity_days < 1:
        raise ConfigError("ocsp.signer_validity_days must be at least 1")
    for section in (crl, ocsp, lifecycle, service):
        for name, value in vars(section).items():
            if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= 1_000_000:
                raise ConfigError("{name} must be between 0 and 1000000 (got {value})", name=name, value=value)
    unknown = set(data) - {"ca", "crl", "ocsp", "lifecycle", "api", "audit", "service", "display", "store"}
    if unknown:
        raise ConfigError("kinko.toml has unknown section(s): {names}", names=", ".join(sorted(unknown)))
    return Config(
        ca=ca,
        crl=crl,
        ocsp=ocsp,
        lifecycle=lifecycle,
        api=api,
        audit=audit,
        service=service,
        display=display,
        store=store,
        profiles=profiles,
    )


# The CA's own profiles, by what they alone may carry.
INTERNAL_PROFILES: dict[tuple[str, ...], tuple[str, ...]] = {
    ("CA:TRUE",): ("root-ca", "issuing-ca"),
    ("ocsp_no_check", "the ocsp_signing EKU"): ("ocsp-signer",),
}


def parse_profiles(data: dict[str, Any]) -> dict[str, Profile]:
    """Builds the profile table from parsed profiles.toml."""
    profiles = {}
    for name, body in data.items():
        if not isinstance(body, dict):
            raise ConfigError("profile {name!r} must be a table", name=name)
        body = dict(body)
        validity = parse_validity(str(body.pop("validity", "")), name)
        bc = body.pop("basic_constraints", {"ca": False})
        if not isinstance(bc, dict):
            raise ConfigError("profile {name!r}: basic_constraints must be a table like {{ ca = false }}", name=name)
        key_usage = tuple(body.pop("key_usage", ()))
        eku = tuple(body.pop("extended_key_usage", ()))
        for usage in key_usage:
            if usage not in KEY_USAGES:
                raise ConfigError("profile {name!r}: unknown key_usage {usage!r}", name=name, usage=usage)
        for usage in eku:
            if usage not in EXTENDED_KEY_USAGES:
                raise ConfigError("profile {name!r}: unknown extended_key_usage {usage!r}", name=name, usage=usage)
        flags = {}
        for key in (
            "subject_key_identifier",
            "authority_key_identifier",
            "crl_distribution_point",
            "freshest_crl",
            "authority_info_access",
            "certificate_policies",
            "ocsp_no_check",
            "subject_alt_name",
        ):
            if key in body:
                value = body.pop(key)
                if not isinstance(value, bool):
                    raise ConfigError("profile {name!r}: {key} must be true or false", name=name, key=key)
                flags[key] = value
        if body:
            raise ConfigError("profile {name!r}: unknown setting(s) {keys}", name=name, keys=", ".join(sorted(body)))
        # What makes a certificate a CA, an OCSP responder or one no client may check belongs to
        # the CA's own profiles alone: a profile added beside them must not carry it.
        powers = [
            what
            for what, present in (
                ("CA:TRUE", bool(bc.get("ca", False))),
                ("ocsp_no_check", bool(flags.get("ocsp_no_check"))),
                ("the ocsp_signing EKU", "ocsp_signing" in eku),
            )
            if present
        ]
        if powers and name not in INTERNAL_PROFILES.get(tuple(powers), ()):
            raise ConfigError(
                "profile {name!r} carries {powers}, which only the CA's own profiles may",
                name=name,
                powers=" and ".join(powers),
            )
        profiles[name] = Profile(
            name=name,
            validity=validity,
            key_usage=key_usage,
            extended_key_usage=eku,
            is_ca=bool(bc.get("ca", False)),
            path_length=bc.get("path_length"),
            **flags,
        )
    return profiles


def parse_validity(text: str, profile: str) -> Validity:
    """Parses "1y" or "90d" (the validity of the profile named `profile`)."""
    match = _VALIDITY.match(text)
    if not match or int(match.group(1)) == 0:
        raise ConfigError("profile {name!r}: validity {text!r} must look like 1y or 90d", name=profile, text=text)
    count = int(match.group(1))
    return Validity(years=count) if match.group(2) == "y" else Validity(days=count)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError("{path} is missing: is this a Kinko home? (kinko init creates one)", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("{path}: invalid TOML: {reason}", path=path, reason=str(exc)) from None
    except UnicodeDecodeError:
        raise ConfigError("{path}: not UTF-8 text", path=path) from None
    except OSError as exc:
        raise ConfigError("{path} cannot be read: {reason}", path=path, reason=exc.strerror) from None


def _section(data: dict[str, Any], name: str, cls: type[Section], required: bool = False) -> Section:
    body = data.get(name)
    if body is None:
        if required:
            raise ConfigError("kinko.toml has no [{name}] section", name=name)
        return cls()
    fields = {item.name: item for item in dataclasses.fields(cls)}
    unknown = set(body) - set(fields)
    if unknown:
        raise ConfigError("[{name}] has unknown key(s): {keys}", name=name, keys=", ".join(sorted(unknown)))
    try:
        section = cls(**body)
    except TypeError as exc:
        raise ConfigError("[{name}] is incomplete: {reason}", name=name, reason=str(exc)) from None
    for key, spec in fields.items():
        value = getattr(section, key)
        expected = {"int": int, "str": str, "bool": bool}.get(str(spec.type))
        if expected and (type(value) is not expected):
            raise ConfigError(
                "[{name}] {key} must be a {type}, got {value!r}", name=name, key=key, type=spec.type, value=value
            )
    return section
