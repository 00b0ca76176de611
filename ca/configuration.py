"""Changing kinko.toml and profiles.toml through Kinko: checked, written by the home's own account,
and recorded in the ledger (`config.changed`, each file's SHA-256, the officer who changed it).

Under the CA service the home is the service account's alone: officers never write these files,
they send a new version with `kinko config apply`. What names a file or socket the CA opens
([ca], [api] token_file, [audit] syslog_socket) is set by root at set-up, never over the socket.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kinko.ca import config
from kinko.ca.errors import ConfigError, InputError, StorageError
from kinko.ca.files import write_atomically

if TYPE_CHECKING:
    from kinko.ca.home import Home
    from kinko.ca.ledger import Event

CONFIG_FILES = ("kinko.toml", "profiles.toml")
# The CA's own profiles: it signs its CAs, responders and ledger signers with them.
OWN_PROFILES = ("root-ca", "issuing-ca", "ocsp-signer", "audit-signer")
MAX_FILE_BYTES = 1 << 20


@dataclass(frozen=True)
class Change:
    """What `config apply` changed: the files, their new SHA-256, and the ledger event (0: none)."""

    changed: list[str]
    sha256: dict[str, str]
    seq: int


def digests(home_path: Path) -> dict[str, str]:
    """Each configuration file's SHA-256, as the ledger records it."""
    return {name: hashlib.sha256(_read(home_path / name)).hexdigest() for name in CONFIG_FILES}


def recorded(home: Home) -> Event | None:
    """The newest `config.changed` event: the configuration the ledger says the CA runs under."""
    return home.store.last_event("config.changed")


def apply(home: Home, new: dict[str, bytes], actor: str, time: str) -> Change:
    """Replaces the named files (kinko.toml, profiles.toml) after checking that the whole new
    configuration loads and keeps what is fixed; one ledger event records it."""
    current = {name: _read(home.path / name) for name in CONFIG_FILES}
    proposed = {**current, **new}
    changed = [name for name in CONFIG_FILES if proposed[name] != current[name]]
    sha256 = {name: hashlib.sha256(proposed[name]).hexdigest() for name in CONFIG_FILES}
    if not changed:
        return Change([], sha256, 0)
    before, after = _parsed(current, new=False), _parsed(proposed, new=True)
    _keep_fixed(before, after)
    try:
        with home.store.transaction(actor, time) as tx:
            seq = tx.append_event("config.changed", details={"sha256": sha256, "changed": changed}).seq
            _write(home.path, {name: proposed[name] for name in changed}, current)
    except BaseException:
        # Not committed (the seal refused, the disk, an interrupt): the files go back with the event.
        # A crash between the writes and the commit leaves them for config-watch to record.
        _restore(home.path, {name: current[name] for name in changed})
        raise
    home.reload_config()
    return Change(changed, sha256, seq)


def _parsed(files: dict[str, bytes], new: bool) -> config.Config:
    """The configuration in `files`: the new one (`new`) or the current one, each refused in its own words."""
    texts = {}
    for name, data in files.items():
        if len(data) > MAX_FILE_BYTES and new:
            raise InputError(
                "the new configuration: {name} is larger than {limit} bytes", name=name, limit=MAX_FILE_BYTES
            )
        if len(data) > MAX_FILE_BYTES:
            raise InputError(
                "the current configuration: {name} is larger than {limit} bytes", name=name, limit=MAX_FILE_BYTES
            )
        try:
            texts[name] = tomllib.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            if new:
                raise InputError("the new configuration: {name} is not UTF-8 text", name=name) from None
            raise InputError("the current configuration: {name} is not UTF-8 text", name=name) from None
        except tomllib.TOMLDecodeError as exc:
            if new:
                raise InputError(
                    "the new configuration: {name} is not valid TOML: {reason}", name=name, reason=str(exc)
                ) from None
            raise InputError(
                "the current configuration: {name} is not valid TOML: {reason}", name=name, reason=str(exc)
            ) from None
    try:
        return config.parse(texts["kinko.toml"], config.parse_profiles(texts["profiles.toml"]))
    except ConfigError as exc:
        if new:
            raise InputError("the new configuration is refused: {reason}", reason=exc) from None
        raise InputError("the current configuration is refused: {reason}", reason=exc) from None


def _keep_fixed(before: config.Config, after: config.Config) -> None:
    """Refuses a change to what root set at set-up, or the loss of one of the CA's own profiles."""
    if after.ca != before.ca:
        raise InputError("the [ca] section is fixed when the CA is created: it cannot be changed")
    if after.api.token_file != before.api.token_file:
        raise InputError("[api] token_file names a file the API opens: root sets it, not `config apply`")
    if after.crl.retention_days != before.crl.retention_days:
        # The replay recounts every full CRL published with the retention in force: a new one would
        # make the ledger contradict the CRLs already signed.
        raise InputError("[crl] retention_days is fixed once CRLs are published: it cannot be changed")
    if after.audit.syslog_socket != before.audit.syslog_socket:
        raise InputError("[audit] syslog_socket names a socket the CA opens: root sets it, not `config apply`")
    missing = [name for name in OWN_PROFILES if name in before.profiles and name not in after.profiles]
    if missing:
        raise InputError("the CA's own profile(s) {names} cannot be removed", names=", ".join(missing))


def _write(home_path: Path, files: dict[str, bytes], previous: dict[str, bytes]) -> None:
    """Writes the files (0600, or 0640 where the responder's group may read them now); a failure
    puts back those already written, and the transaction around this then records nothing."""
    modes = {name: 0o640 if (home_path / name).stat().st_mode & 0o040 else 0o600 for name in files}
    written: list[str] = []
    try:
        for name, data in files.items():
            write_atomically(home_path / name, data, modes[name])
            written.append(name)
    except OSError as exc:
        for name in written:
            write_atomically(home_path / name, previous[name], modes[name])
        raise StorageError(
            "cannot write {path}: {reason}", path=exc.filename or "the configuration", reason=exc.strerror
        ) from None


def _restore(home_path: Path, previous: dict[str, bytes]) -> None:
    for name, data in previous.items():
        path = home_path / name
        if path.read_bytes() != data:
            write_atomically(path, data, 0o640 if path.stat().st_mode & 0o040 else 0o600)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StorageError("cannot read {path}: {reason}", path=path.name, reason=exc.strerror) from None


def summary(home: Home) -> list[dict[str, object]]:
    """Each file, its SHA-256 now, and whether the ledger's newest config.changed records it."""
    event = recorded(home)
    said = json.loads(event.details).get("sha256", {}) if event is not None else {}
    rows: list[dict[str, object]] = []
    for name, digest in digests(home.path).items():
        rows.append(
            {
                "file": name,
                "sha256": digest,
                "recorded": said.get(name) == digest,
                "recorded_seq": event.seq if event is not None else None,
                "recorded_by": event.actor if event is not None else None,
                "recorded_at": event.time if event is not None else None,
            }
        )
    return rows
