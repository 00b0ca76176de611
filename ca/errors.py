"""One exception tree for Kinko; each error knows the CLI exit code it maps to."""

from __future__ import annotations

from kinko.ca.i18n import fill, render


class KinkoError(Exception):
    """Base of every error Kinko reports to a user: a one-line message and an exit code.

    Raised as `Kind("renewal of {serial} opens at {opens}", serial=..., opens=...)`, the message is
    a template (extracted into the catalogues) and its parameters, so that it can be shown in the
    reader's language; str() is always the English text, which logs and the ledger keep."""

    exit_code = 1

    def __init__(self, message: str = "", /, **params: object) -> None:
        self.template, self.params = message, params
        super().__init__(fill(message, params) or message)  # a brace not doubled: as written

    def localized(self) -> str:
        """The message in the reader's language (English where the catalogue has none); a parameter
        that is itself a Kinko error or a phrase (what a wider refusal wraps) is shown in that language too."""
        return render(self.template, self.params)


class InputError(KinkoError):
    """The input is malformed: a bad CSR, a bad argument, an unreadable file."""


class PolicyError(KinkoError):
    """The input is well-formed but the bank's rules refuse it."""


class NotFound(KinkoError):
    """A named object (certificate, customer, subscriber) does not exist."""


class Conflict(KinkoError):
    """The request clashes with the current state (already exists, already revoked)."""


class ConfigError(KinkoError):
    """The CA home or its configuration is missing, invalid or unusable."""


class PassphraseError(ConfigError):
    """The CA key's passphrase is missing or wrong."""


class StorageError(KinkoError):
    """The database failed in a way that is not the user's fault."""

    exit_code = 3


class Forbidden(KinkoError):
    """The operator's account lacks the role a command needs (or is not registered)."""


class SchemaVersionError(KinkoError):
    """The database's schema is older than this Kinko (run `kinko db upgrade`) or newer (upgrade Kinko)."""


class IntegrityError(KinkoError):
    """A row Kinko was about to sign over contradicts the ledger: nothing was signed."""

    def __init__(self, message: str, table: str, key: str, what: str, signing: str, /, **params: object) -> None:
        super().__init__(message, **params)
        self.table, self.key, self.what, self.signing = table, key, what, signing
