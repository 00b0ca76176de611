"""The responder's HTTP application: OCSP over POST and RFC 5019 GET, the CA certificates
and CRLs at the paths the certificates name, and /healthz.

It speaks RSGI, Granian's native interface: measured with bench/ocsp.py, an empty app
under it costs about a third less server time per request than under ASGI. It asks one
`Source` for the response bytes and their dates; it never runs SQL or parses DER. Bad
requests get malformedRequest or a 4xx; an unexpected failure gets an OCSP internalError,
never a 5xx.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import time
from email.utils import formatdate
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

from kinko.ocsp.asgi import BODY_TIMEOUT, MAX_BODY, TooLarge
from kinko.ocsp.source import INTERNAL_ERROR, MALFORMED, Answer, Source

OCSP_RESPONSE = "application/ocsp-response"
TEXT = "text/plain"
STATIC = re.compile(r"^/(ca|crl)/([a-z0-9-]{1,40})\.(cer|crl)$")
CONTENT_TYPES = {"cer": "application/pkix-cert", "crl": "application/pkix-crl"}
Headers = list[tuple[str, str]]


@lru_cache(maxsize=4096)
def _http_date(epoch: float) -> str:
    return formatdate(epoch, usegmt=True)


def cache_headers(answer: Answer, now: float) -> Headers:
    """RFC 5019 section 6.2 caching headers for a pre-signed response; no-store otherwise."""
    if not answer.cacheable or answer.this_update is None or answer.next_update is None:
        return [("content-type", OCSP_RESPONSE), ("cache-control", "no-store")]
    fixed, expires = _fixed_headers(answer)
    max_age = max(0, int(expires - now))
    return [*fixed, ("cache-control", f"max-age={max_age}, public, no-transform, must-revalidate")]


@lru_cache(maxsize=16384)
def _fixed_headers(answer: Answer) -> tuple[tuple[tuple[str, str], ...], float]:
    # The same pre-signed answer is served many times: its dates and ETag are formatted once.
    assert answer.this_update is not None and answer.next_update is not None
    expires = answer.next_update.timestamp()
    headers = (
        ("content-type", OCSP_RESPONSE),
        ("last-modified", _http_date(answer.this_update.timestamp())),
        ("expires", _http_date(expires)),
        ("etag", '"' + hashlib.sha1(answer.body, usedforsecurity=False).hexdigest() + '"'),
    )
    return headers, expires


def decode_get_path(path: str) -> bytes | None:
    """The DER request in an RFC 5019 GET path: URL-decoded base64, '+', '/' and '=' kept."""
    encoded = unquote_to_bytes(path[1:]).translate(bytes.maketrans(b"-_", b"+/")).strip()
    if not encoded:
        return None
    try:
        return base64.b64decode(encoded + b"=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


class BodyDeadlines:
    """One deadline for each request body, whole (a client trickling a byte at a time is cut
    off too), enforced by a watchdog that wakes once a second: a timer per request cost a
    tenth of the POST throughput."""

    def __init__(self, seconds: float = BODY_TIMEOUT) -> None:
        self.seconds = seconds
        self._reading: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None

    async def read(self, scope: Any, protocol: Any) -> bytes:
        """Reads at most MAX_BODY bytes; refuses a larger body from its Content-Length before
        reading it, or as soon as a chunked one grows past."""
        declared = scope.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
            raise TooLarge
        loop = asyncio.get_running_loop()
        if self._watchdog is None:
            self._watchdog = loop.create_task(self._watch())
        task = asyncio.current_task()
        assert task is not None
        self._reading[task] = loop.time() + self.seconds
        try:
            if declared is not None:
                return bytes(await protocol())
            chunks, size = [], 0
            async for chunk in protocol:
                size += len(chunk)
                if size > MAX_BODY:
                    raise TooLarge
                chunks.append(chunk)
            return b"".join(chunks)
        except asyncio.CancelledError:
            if task in self._expired:
                self._expired.discard(task)
                raise TimeoutError from None
            raise
        finally:
            self._reading.pop(task, None)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1)
            now = loop.time()
            for task, deadline in list(self._reading.items()):
                if deadline < now and task not in self._expired:
                    self._expired.add(task)
                    task.cancel()


class ResponderApp:
    """The RSGI application."""

    def __init__(self, source: Source, public_dir: Path) -> None:
        self.source = source
        self.public_dir = public_dir
        self.bodies = BodyDeadlines()

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            return
        try:
            if scope.method == "POST":
                try:
                    body = await self.bodies.read(scope, protocol)
                except TooLarge:
                    protocol.response_bytes(413, [("content-type", TEXT)], b"request body over 64 KiB\n")
                    return
                except TimeoutError:
                    protocol.response_bytes(408, [("content-type", TEXT)], b"request body too slow\n")
                    return
                self.answer(protocol, self.source.response(body))
            elif scope.method == "GET":
                # The path as sent, percent-decoding aside: a '//' inside base64 is never collapsed.
                self.get(protocol, scope.path)
            else:
                protocol.response_bytes(405, [("content-type", TEXT), ("allow", "GET, POST")], b"use GET or POST\n")
        except Exception:  # the responder answers every request, whatever failed
            self.answer(protocol, INTERNAL_ERROR)

    def get(self, protocol: Any, path: str) -> None:
        if path == "/healthz":
            protocol.response_bytes(200, [("content-type", TEXT), ("cache-control", "no-store")], b"ok\n")
            return
        static = STATIC.match(path)
        if static is not None:
            self.static(protocol, static)
            return
        request = decode_get_path(path)
        self.answer(protocol, MALFORMED if request is None else self.source.response(request))

    def static(self, protocol: Any, match: re.Match[str]) -> None:
        folder, name, suffix = match.groups()
        path = self.public_dir / folder / f"{name}.{suffix}"
        try:
            if suffix != {"ca": "cer", "crl": "crl"}[folder]:
                raise FileNotFoundError(path)
            body = path.read_bytes()
            modified = _http_date(path.stat().st_mtime)
        except (FileNotFoundError, IsADirectoryError):
            protocol.response_bytes(404, [("content-type", TEXT)], b"not found\n")
            return
        protocol.response_bytes(200, [("content-type", CONTENT_TYPES[suffix]), ("last-modified", modified)], body)

    def answer(self, protocol: Any, answer: Answer) -> None:
        protocol.response_bytes(200, cache_headers(answer, time.time()), answer.body)


def create_app() -> ResponderApp:
    """Factory for server workers: the home comes from $KINKO_HOME."""
    from kinko.ca.home import resolve_home
    from kinko.ocsp.source import DatabaseSource

    home = resolve_home(None)
    return ResponderApp(DatabaseSource(home), home / "public")
