"""The CA service's schedule, so that no cron is needed: the configuration's record, CRLs, OCSP
responses, service ends, OCSP signers and expiry warnings, each due by the injected clock.

A job that did something, or failed, is recorded in the ledger (`job.ran`, `job.failed`); a check
that found nothing due is not (it runs every few seconds) but shows in `kinko service status`.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from kinko.ca import config
from kinko.ca.clock import Clock, from_text, to_text
from kinko.ca.errors import KinkoError
from kinko.ca.i18n import N_

if TYPE_CHECKING:
    from kinko.ca.lifecycle import Kinko
    from kinko.crl.publisher import Published

TICK_SECONDS = 1.0  # how often the service's schedule thread looks at the clock


@dataclass(frozen=True)
class Job:
    """One scheduled job: what it does, how often it is checked, and the check itself (a summary
    of what it did, or None when nothing was due)."""

    name: str
    every: dt.timedelta
    run: Callable[[Kinko], str | None]
    description: str


@dataclass(frozen=True)
class JobStatus:
    """What `kinko service status` shows of a job (UTC times as stored)."""

    name: str
    description: str
    every_seconds: int
    last_run: str | None = None
    next_run: str | None = None
    last_result: str | None = None
    last_error: str | None = None


# -- the jobs -------------------------------------------------------------------------------------


def keep_full_crl_current(kinko: Kinko) -> str | None:
    """A status change that went only into a delta CRL (the full CRL is large) reaches a new full
    CRL soon after: NSS and Java's PKIX never fetch deltas."""
    issuer = kinko.home.issuing_role
    store = kinko.home.store
    now = kinko.clock.now()
    base = store.latest_crl(issuer, "full")
    if base is None or store.last_status_change_seq(issuer) <= (base.ledger_seq or 0):
        return None
    # Batched: at most one full CRL per interval, however many changes a burst brings.
    if now - _time(base.this_update) < dt.timedelta(seconds=kinko.home.config.service.full_crl_seconds):
        return None
    published = kinko.session.crls.full_and_delta(issuer, now, kinko.actor)
    return _published(published)


def republish_crls(kinko: Kinko) -> str | None:
    """Every CRL (and the root's ARL) is published again once half its life is gone."""
    now = kinko.clock.now()
    done: list[Published] = []
    for issuer in _crl_issuers(kinko):
        latest = kinko.home.store.latest_crl(issuer, "full")
        if latest is not None:
            begun, ends = _time(latest.this_update), _time(latest.next_update)
            if now < begun + (ends - begun) / 2:
                continue
        if issuer == kinko.home.issuing_role:
            done += kinko.session.crls.full_and_delta(issuer, now, kinko.actor)
        else:
            done.append(kinko.session.crls.publish(issuer, "full", now, kinko.actor))
    return _published(done) if done else None


def refresh_ocsp(kinko: Kinko) -> str | None:
    """Re-signs the pre-signed OCSP responses past half their life."""
    refreshed = kinko.refresh_ocsp()
    if not refreshed.responses:
        return None
    return f"re-signed {refreshed.responses} OCSP responses of {refreshed.certificates} certificates"


def apply_service_ends(kinko: Kinko) -> str | None:
    """Applies the scheduled customer terminations whose date has come, and notes lapsed codes."""
    ended = kinko.apply_due_terminations()
    lapsed = kinko.note_lapsed_enrollments()
    parts = []
    if ended:
        parts.append(f"terminated {', '.join(ended)}")
    if lapsed:
        parts.append(f"{lapsed} enrollment codes lapsed unused")
    return "; ".join(parts) or None


def renew_ocsp_signers(kinko: Kinko) -> str | None:
    """Replaces each delegated OCSP signer at two-thirds of its life."""
    renewed = kinko.renew_due_ocsp_signers()
    if not renewed:
        return None
    return "new OCSP signers " + ", ".join(f"{r.issuer} {r.serial}" for r in renewed)


def warn_of_expiry(kinko: Kinko) -> str | None:
    """Warns ahead of the end of the audit signer and of the CA certificates."""
    now = kinko.clock.now()
    horizon = dt.timedelta(days=kinko.home.config.service.expiry_warning_days)
    roles = ["audit", *_crl_issuers(kinko)]
    warnings = []
    for role in roles:
        if kinko.home.store.authority(role) is None:
            continue
        ends = kinko.home.ca_certificate(role).not_valid_after_utc
        if ends - now <= horizon:
            what = "the audit signer" if role == "audit" else f"the {role} CA certificate"
            warnings.append(f"{what} ends {to_text(ends)} ({max((ends - now).days, 0)} days)")
    return ("warning: " + "; ".join(warnings)) if warnings else None


def record_config_changes(kinko: Kinko) -> str | None:
    """Records in the ledger (config.changed, with each file's SHA-256) a configuration that differs
    from the one last recorded, and runs the schedule under it: what the CA ran under is evidence,
    whoever changed the files (`config apply` records its own change; root may edit them)."""
    from kinko.ca import configuration

    digests = configuration.digests(kinko.home.path)
    # The files must still load: a configuration the CA cannot run under is reported, not recorded.
    config.load(kinko.home.path)
    # Re-read only when the files changed: a reload makes the schedule start a new session.
    kinko.home.refresh_config()
    last = configuration.recorded(kinko.home)
    said = json.loads(last.details).get("sha256") if last is not None else None
    if said == digests:
        return None
    changed = sorted(name for name in digests if said is None or said.get(name) != digests[name])
    now = to_text(kinko.clock.now()) or ""
    with kinko.home.store.transaction(kinko.actor, now) as tx:
        tx.append_event("config.changed", details={"sha256": digests, "changed": changed})
    return "configuration recorded: " + ", ".join(changed)


def _time(text: str | None) -> dt.datetime:
    when = from_text(text)
    assert when is not None, "a published CRL has its times"
    return when


def _crl_issuers(kinko: Kinko) -> list[str]:
    return ["root"] if kinko.home.config.ca.single_tier else ["issuing", "root"]


def _published(published: list[Published]) -> str:
    return ", ".join(f"{p.issuer} {p.kind} CRL #{p.number}" for p in published)


def jobs(full_crl_seconds: int) -> list[Job]:
    """The service's jobs; the full CRL is checked every [service] full_crl_seconds."""
    minute, hour = dt.timedelta(minutes=1), dt.timedelta(hours=1)
    return [
        Job("config-watch", minute, record_config_changes, N_("Records each new kinko.toml and profiles.toml.")),
        Job(
            "crl-current",
            dt.timedelta(seconds=full_crl_seconds),
            keep_full_crl_current,
            N_("Puts every change into a new full CRL within [service] full_crl_seconds."),
        ),
        Job(
            "crl-republish", 10 * minute, republish_crls, N_("Publishes each CRL and the ARL again at half their life.")
        ),
        Job("service-ends", minute, apply_service_ends, N_("Applies due terminations; notes lapsed enrollment codes.")),
        # Signers first: the refresh then signs with the new one.
        Job("ocsp-signers", hour, renew_ocsp_signers, N_("Renews each OCSP signer at two-thirds of its life.")),
        Job("ocsp-refresh", 15 * minute, refresh_ocsp, N_("Re-signs OCSP responses past half their life.")),
        Job("expiry-warnings", 6 * hour, warn_of_expiry, N_("Warns before the audit signer or a CA certificate ends.")),
    ]


# -- the schedule ---------------------------------------------------------------------------------


class Schedule:
    """Runs each job when it is due on the clock (all at once on start: a service that was down
    catches up). Thread-safe: `status` and `trigger` may be called from any thread."""

    def __init__(self, kinko: Kinko, clock: Clock, jobs: list[Job]) -> None:
        self.kinko, self.clock, self.jobs = kinko, clock, jobs
        self._lock = threading.Lock()
        self._status = {job.name: JobStatus(job.name, job.description, int(job.every.total_seconds())) for job in jobs}
        self._next: dict[str, dt.datetime] = {}
        self._triggered: set[str] = set()

    def trigger(self, name: str) -> None:
        """Makes a job due now (the service calls it after a status change, for crl-current)."""
        with self._lock:
            self._triggered.add(name)

    def status(self) -> list[JobStatus]:
        """Every job's last run, next run, last result and last error."""
        with self._lock:
            return list(self._status.values())

    def run_due(self) -> list[str]:
        """Runs every job that is due; returns the names of those that ran."""
        from kinko.ca.lifecycle import Kinko

        ran = []
        home = self.kinko.home
        if home.refresh_config() or self.kinko.session.config is not home.config:
            # A session keeps the configuration it began with: a new one runs under the new files.
            self.kinko = Kinko(home, clock=self.kinko.clock, actor=self.kinko.actor)
        for job in self.jobs:
            now = self.clock.now()
            with self._lock:
                due = job.name in self._triggered or self._next.get(job.name, now) <= now
                self._triggered.discard(job.name)
            if due:
                self._run(job, now)
                ran.append(job.name)
        return ran

    def _run(self, job: Job, now: dt.datetime) -> None:
        previous = self._status[job.name]
        result, error = None, None
        try:
            result = job.run(self.kinko)
        except (KinkoError, OSError) as exc:  # one job's failure never stops the others
            error = str(exc) if isinstance(exc, KinkoError) else f"{exc.strerror or exc} ({exc.filename or ''})"
        except Exception as exc:  # a bug in a job is reported, not fatal to the service
            error = f"unexpected {type(exc).__name__}: {exc}"
        self._next[job.name] = now + job.every
        if result is not None:
            self._record("job.ran", job.name, {"result": result}, now)
        # A run of failures is recorded once, when it begins, not at every check (the status shows
        # the latest error); the next success ends it.
        if error is not None and previous.last_error is None:
            self._record("job.failed", job.name, {"error": error}, now)
        with self._lock:
            self._status[job.name] = replace(
                previous,
                last_run=to_text(now),
                next_run=to_text(self._next[job.name]),
                last_result=result if result is not None else previous.last_result,
                last_error=error,
            )

    def _record(self, action: str, name: str, details: dict[str, str], now: dt.datetime) -> None:
        line = details.get("result") or details.get("error")
        print(f"kinko: service: {name}: {line}", file=sys.stderr, flush=True)
        try:
            with self.kinko.home.store.transaction(self.kinko.actor, to_text(now) or "") as tx:
                tx.append_event(action, details={"job": name, **details})
        except Exception as exc:  # a full disk fails the record too: the schedule must outlive it
            print(f"kinko: service: {name}: could not record {action}: {exc}", file=sys.stderr, flush=True)


class ScheduleThread(threading.Thread):
    """Runs a schedule in the background until stopped. The schedule's Kinko is made in this thread
    from `make_kinko`, with its own connection: a full CRL built here never holds up a request."""

    def __init__(self, make_kinko: Callable[[], Kinko], clock: Clock) -> None:
        super().__init__(name="kinko-schedule", daemon=True)
        self.make_kinko, self.clock = make_kinko, clock
        self.schedule: Schedule | None = None
        self.started_up = threading.Event()
        self.stopping = threading.Event()
        self.wake = threading.Event()

    def run(self) -> None:
        try:
            kinko = self.make_kinko()
            self.schedule = Schedule(kinko, self.clock, jobs(kinko.home.config.service.full_crl_seconds))
        except KinkoError as exc:
            print(f"kinko: service: the schedule cannot start: {exc}", file=sys.stderr, flush=True)
            return
        finally:
            self.started_up.set()
        while not self.stopping.is_set():
            if self.wake.is_set():
                self.wake.clear()
                self.schedule.trigger("crl-current")
            try:
                self.schedule.run_due()
            except Exception as exc:  # never seen; but a dead schedule would let every CRL expire
                print(f"kinko: service: the schedule went on after: {exc!r}", file=sys.stderr, flush=True)
            self.wake.wait(TICK_SECONDS)

    def changed(self) -> None:
        """A request committed a change: check the full CRL now rather than at the next interval."""
        self.wake.set()

    def stop(self, timeout: float = 60) -> None:
        """Stops after the job in progress (a signer rotation deletes the old key only at its end)."""
        self.stopping.set()
        self.wake.set()
        if self.is_alive():
            self.join(timeout)
