"""The registration authority: the bank's rules for who gets which certificate, and when.

`Kinko` assembles one actor's session from parts that each receive the injected `Session`
(store, key backend, CRL publisher, OCSP pre-signer, config, clock, actor): `Revocation`,
`Accounts`, `ServiceEnd`, `Reports` and `Certificates`, with `Issuance` as the step they
share. Each public method is one officer or front-end action: it checks the rules
(`kinko.ca.windows` holds the bank's windows), runs the change and its ledger events in one
store transaction, and publishes the CRL and OCSP state before returning.
"""

from __future__ import annotations

from kinko.ca.clock import Clock
from kinko.ca.home import Home
from kinko.ca.lifecycle.accounts import Accounts, Enrolled
from kinko.ca.lifecycle.certificates import Certificates, OCSPRefresh
from kinko.ca.lifecycle.issuing import Issuance
from kinko.ca.lifecycle.reports import CustomerOverview, ExpiringCertificate, ExpiringEnrollment, HolderStatus, Reports
from kinko.ca.lifecycle.revocation import Revocation
from kinko.ca.lifecycle.service_end import BulkChange, Incident, ServiceEnd
from kinko.ca.lifecycle.session import (
    CA_REVOCATION_REASONS,
    REVOCATION_REASONS,
    Issued,
    OCSPPresigner,
    Session,
    StatusChange,
)

__all__ = [
    "CA_REVOCATION_REASONS",
    "REVOCATION_REASONS",
    "BulkChange",
    "CustomerOverview",
    "Enrolled",
    "ExpiringCertificate",
    "ExpiringEnrollment",
    "HolderStatus",
    "Incident",
    "Issued",
    "Kinko",
    "OCSPRefresh",
    "Session",
    "StatusChange",
]


class Kinko:
    """One actor's session with a CA: every registration-authority action, from its part."""

    def __init__(
        self, home: Home, clock: Clock | None = None, actor: str | None = None, presigner: OCSPPresigner | None = None
    ) -> None:
        self.session = session = Session.for_home(home, clock, actor, presigner)
        self.home, self.clock, self.actor = home, session.clock, session.actor
        issuance = Issuance(session)
        self.revocation = revocation = Revocation(session)
        self.accounts = accounts = Accounts(session, issuance, revocation)
        self.service_end = service_end = ServiceEnd(session, revocation)
        self.reports = reports = Reports(session, locks=accounts.code_locks)
        self.certificates = certificates = Certificates(session, issuance, upkeep=service_end.upkeep)
        # The daily jobs' upkeep: scheduled service ends, lapsed enrollments, OCSP signers due for renewal.
        certificates.upkeep = self._upkeep
        session.before_signing.append(certificates.renew_due_ocsp_signers)

        self.issue = certificates.issue
        self.publish_crl = certificates.publish_crl
        self.refresh_ocsp = certificates.refresh_ocsp
        self.rotate_ocsp_signers = certificates.rotate_ocsp_signers

        self.revoke = revocation.revoke
        self.hold = revocation.hold
        self.release = revocation.release

        self.add_customer = accounts.add_customer
        self.enroll_administrator = accounts.enroll_administrator
        self.enroll_user = accounts.enroll_user
        self.enroll_user_by_administrator = accounts.enroll_user_by_administrator
        self.reissue = accounts.reissue
        self.acquire = accounts.acquire
        self.code_locks = accounts.code_locks
        self.clear_code_lock = accounts.clear_code_lock
        self.renew = accounts.renew
        self.renew_by_holder = accounts.renew_by_holder
        self.reacquire = accounts.reacquire
        self.reacquire_by_holder = accounts.reacquire_by_holder

        self.report_incident = service_end.report_incident
        self.incidents = service_end.incidents
        self.suspend_customer = service_end.suspend_customer
        self.resume_customer = service_end.resume_customer
        self.terminate_customer = service_end.terminate_customer
        self.apply_due_terminations = service_end.apply_due_terminations
        self.note_lapsed_enrollments = service_end.note_lapsed_enrollments
        self.upkeep = self._upkeep
        self.renew_due_ocsp_signers = certificates.renew_due_ocsp_signers

        self.certificate_status = reports.certificate_status
        self.subscriber_status = reports.subscriber_status
        self.customer_overview = reports.customer_overview
        self.expiring = reports.expiring
        self.enrollments_expiring = reports.enrollments_expiring

    def _upkeep(self) -> None:
        """What the daily jobs (crl publish, ocsp refresh) do first."""
        self.service_end.upkeep()
        self.certificates.renew_due_ocsp_signers()
