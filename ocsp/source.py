"""Where the HTTP layer gets OCSP answers: a `Source` returns the response bytes and dates.

The database source serves pre-signed responses when it can (one CertID, no nonce) and
signs on demand otherwise (nonces, several CertIDs, SHA-384/512 CertIDs, unknown serials,
stale or missing responses). It opens the database read-only and loads the delegated
OCSP signer keys only: never a CA key.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kinko.ca.clock import Clock, SystemClock, from_text, to_text
from kinko.ca.errors import KinkoError
from kinko.ca.home import Home
from kinko.ca.i18n import said
from kinko.ca.replay import confirm
from kinko.ca.serials import format_serial
from kinko.ca.store import Reader, RevocationState
from kinko.ocsp.presign import (
    IssuerContext,
    issuer_roles,
    load_context,
    response_window,
    status_for,
    within_validity,
)
from kinko.ocsp.protocol import (
    CertID,
    MalformedRequest,
    Request,
    build_response,
    encode_cert_status,
    error_response,
    parse_request,
    says,
)

# How often a worker asks the store whether anything was committed since it last looked (its
# change token, one row read): a revocation reaches every worker within this, far inside the
# one second the bank asks for.
CHECK_SECONDS = 0.05
CACHE_SIZE = 16384


@dataclass(frozen=True)
class Answer:
    """An OCSP response and what HTTP caching needs to know about it."""

    body: bytes
    this_update: dt.datetime | None = None
    next_update: dt.datetime | None = None
    cacheable: bool = False


class Source(Protocol):
    """Anything that answers DER OCSP requests (from a client, by its address)."""

    def response(self, request: bytes, client: str = "") -> Answer: ...

    def problem(self) -> str | None:
        """Why the responder cannot answer as it should (for /healthz), or None when it can."""
        ...


class SigningBudget:
    """Signatures on demand per client: a token bucket each, `rate` a second, bursts of twice that.
    A client asking for one signature after another (a fresh nonce every time) spends its own
    budget, not the responder's: pre-signed answers keep flowing to everyone."""

    def __init__(self, rate: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, 2 * rate, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> bool:
        """Spends one signature of the client's budget; False when it has none left."""
        if self.rate <= 0:
            return True
        now = self.clock()
        tokens, then = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        allowed = tokens >= 1
        self._buckets[client] = (tokens - 1 if allowed else tokens, now)
        if len(self._buckets) > CACHE_SIZE:  # the least recently seen clients are forgotten
            self._buckets.popitem(last=False)
        return allowed


MALFORMED = Answer(error_response("malformed_request"))
UNAUTHORIZED = Answer(error_response("unauthorized"))
TRY_LATER = Answer(error_response("try_later"))
INTERNAL_ERROR = Answer(error_response("internal_error"))


class DatabaseSource:
    """Answers from the registry and its pre-signed responses, read-only."""

    def __init__(
        self,
        home_path: Path,
        clock: Clock | None = None,
        monotonic: Callable[[], float] | None = None,
        database: str | None = None,
        database_password_file: Path | None = None,
    ) -> None:
        self.home = Home(home_path, readonly=True, database=database, database_password_file=database_password_file)
        self.home.require()
        self.store: Reader = self.home.readonly_store
        self.clock = clock or SystemClock()
        self.nonces = self.home.config.ocsp.nonces
        self.max_cert_ids = self.home.config.ocsp.max_cert_ids
        self.budget = SigningBudget(self.home.config.ocsp.on_demand_per_client, monotonic or time.monotonic)
        self.days = self.home.config.ocsp.next_update_days
        self.lag_bound = self.home.config.ocsp.replica_lag_seconds
        self._parsed: OrderedDict[bytes, Request | None] = OrderedDict()
        self._answers: dict[bytes, tuple[Answer, float]] = {}
        self._issuers: dict[tuple[str, bytes, bytes], IssuerContext] = {}
        self._authorities: dict[str, tuple[str, str]] = {}
        self._token = self.store.change_token()
        self._next_check = 0.0
        self._refused: set[str] = set()
        self._reload()

    def _check_for_changes(self) -> None:
        self._next_check = time.monotonic() + CHECK_SECONDS
        token = self.store.change_token()
        if token != self._token:
            self._token = token
            self._answers.clear()
            self._reload()

    def _reload(self) -> None:
        authorities = self.store.authorities()
        if authorities == self._authorities:
            return
        issuers = {}
        for role in issuer_roles(self.home):
            context = load_context(self.home, role)
            for key in context.cert_id_keys():
                issuers[key] = context
        self._issuers, self._authorities = issuers, authorities

    def _parse(self, data: bytes) -> Request | None:
        # Clients repeat the same request bytes (no nonce) for every login: parse each once.
        cached = self._parsed.get(data, False)
        if cached is not False:
            return cached  # type: ignore[return-value]
        try:
            request: Request | None = parse_request(data)
        except MalformedRequest:
            request = None
        if request is None or request.nonce is None:
            self._parsed[data] = request
            if len(self._parsed) > CACHE_SIZE:
                self._parsed.popitem(last=False)
        return request

    def problem(self) -> str | None:
        """A database it cannot read, a replica too far behind its primary, or a delegated signer
        outside its validity (every answer it would sign is refused by clients, and nginx then
        refuses every login): /healthz says so, so that a load balancer sends requests elsewhere."""
        try:
            if time.monotonic() >= self._next_check:
                self._check_for_changes()
            lag = self.store.replica_lag()
        except KinkoError as exc:
            return said("the database cannot be read: {error}", error=exc)
        if lag is not None and lag > self.lag_bound:
            behind = f"{lag:.1f}" if lag != float("inf") else "∞"
            return said(
                "the database replica is {lag} s behind its primary (more than [ocsp] replica_lag_seconds, "
                "{bound} s): answers may miss recent revocations",
                lag=behind,
                bound=self.lag_bound,
            )
        now = self.clock.now()
        for context in {id(c): c for c in self._issuers.values()}.values():
            if not within_validity(context, now):
                ends = to_text(context.signer_not_after)
                fix = "run `kinko ocsp signer rotate`"
                return f"the OCSP signer of {context.role} is not valid now (it ends {ends}): {fix}"
        return None

    def response(self, request_der: bytes, client: str = "") -> Answer:
        """The response for one DER request from a client; never raises for bad input. A database
        it cannot read leaves it the answers it cached (signed, within their validity) and
        tryLater for the rest: never "good" for what it cannot see."""
        if time.monotonic() >= self._next_check:
            # Unreadable: the cached answers stand until their nextUpdate; /healthz says what is wrong.
            with contextlib.suppress(KinkoError):
                self._check_for_changes()
        cached = self._answers.get(request_der)
        if cached is not None and time.time() < cached[1]:
            return cached[0]
        try:
            answer = self._answer(request_der, client)
        except KinkoError:
            return TRY_LATER
        if answer.cacheable and answer.next_update is not None:
            if len(self._answers) >= CACHE_SIZE:
                self._answers.clear()
            self._answers[request_der] = (answer, answer.next_update.timestamp())
        return answer

    def _answer(self, request_der: bytes, client: str) -> Answer:
        request = self._parse(request_der)
        if request is None or len(request.cert_ids) > self.max_cert_ids:
            return MALFORMED  # more CertIDs than any client needs cost a lookup each: none is made
        contexts = {
            self._issuers.get((c.hash_algorithm, c.issuer_name_hash, c.issuer_key_hash)) for c in request.cert_ids
        }
        if None in contexts or len(contexts) != 1:
            # Not this CA's certificate (or CertIDs of two CAs, which no one key can sign for).
            return UNAUTHORIZED
        context = contexts.pop()
        assert context is not None
        now = self.clock.now()
        nonce = request.nonce if self.nonces else None
        stored_answer = None
        if len(request.cert_ids) == 1:
            cert_id = request.cert_ids[0]
            serial = format_serial(cert_id.serial)
            stored = self.store.ocsp_response(serial, cert_id.hash_algorithm)
            now_text = to_text(now) or ""
            # Serials are unique across the CA's life, but a CertID may name the other CA: such a
            # stored answer is not for this question (the on-demand path says unknown). And a
            # stored answer is served only if it says what the registry row says: bytes written
            # into the table (an earlier, genuine "good") are answered as if there were none.
            if (
                stored is not None
                and stored.issuer == context.role
                and stored.this_update <= now_text < stored.next_update
                and self._agrees(stored.der, cert_id, self.store.revocation_status(serial))
            ):
                stored_answer = Answer(
                    stored.der, from_text(stored.this_update), from_text(stored.next_update), cacheable=True
                )
        if stored_answer is not None and nonce is None:
            return stored_answer
        if not self.budget.take(client):
            # Past this client's share of signatures on demand: the pre-signed answer where there
            # is one (its nonce not echoed, as RFC 5019 allows), else tryLater.
            return stored_answer or TRY_LATER
        if not within_validity(context, now):
            # Never sign with a signer outside its validity (the daily jobs renew it at 2/3 of its life).
            return TRY_LATER
        this_update, next_update = response_window(context, now, self.days)
        statuses = []
        for cert_id in request.cert_ids:
            serial = format_serial(cert_id.serial)
            record = self.store.revocation_status(serial)
            if record is not None and record.issuer != context.role:
                record = None  # a serial of the other CA is unknown to this one
            if record is not None and not self._confirmed(serial, record):
                return TRY_LATER  # never sign a status the ledger does not confirm
            statuses.append(status_for(record, cert_id, this_update, next_update))
        body = build_response(statuses, responder=context.responder, produced_at=now, nonce=nonce)
        return Answer(body, this_update, next_update, cacheable=False)

    @staticmethod
    def _agrees(stored: bytes, cert_id: CertID, record: RevocationState | None) -> bool:
        if record is None:
            return False
        status = "revoked" if record.status in ("revoked", "held") else "good"
        return says(stored, cert_id, encode_cert_status(status, from_text(record.revoked_at), record.revocation_reason))

    def _confirmed(self, serial: str, record: RevocationState) -> bool:
        facts = {
            "status": record.status,
            "revocation_reason": record.revocation_reason,
            "revoked_at": record.revoked_at,
            "changed_seq": record.changed_seq,
        }
        mismatch = confirm(serial, facts, self.store.last_status_event(serial))
        if mismatch is not None:
            # The responder cannot write the ledger: it says so on stderr, once per contradiction.
            if str(mismatch) not in self._refused:
                self._refused.add(str(mismatch))
                print(f"kinko ocsp: refused to sign: {mismatch} (run `kinko ledger verify`)", file=sys.stderr)
            return False
        return True
