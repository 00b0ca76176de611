"""The registration authority: the bank's rules for who gets which certificate, and when.

`Kinko` is one operator's session with a CA home. Each public method is one officer or
front-end action: it checks the rules (`ca.windows` holds the bank's windows), then runs
the change and its ledger events in one store transaction, and publishes the CRL and
OCSP state before returning. The methods are grouped by subject in this package.
"""

from __future__ import annotations

from kinko.ca.lifecycle.accounts import Enrolled
from kinko.ca.lifecycle.base import CA_REVOCATION_REASONS, REVOCATION_REASONS, Issued, StatusChange
from kinko.ca.lifecycle.certificates import Certificates
from kinko.ca.lifecycle.reports import Reports
from kinko.ca.lifecycle.service_end import ServiceEnd

__all__ = ["CA_REVOCATION_REASONS", "REVOCATION_REASONS", "Enrolled", "Issued", "Kinko", "StatusChange"]


class Kinko(ServiceEnd, Certificates, Reports):
    """One operator's session with a CA home."""
