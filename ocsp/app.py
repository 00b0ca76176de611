"""The responder's HTTP application (ASGI): OCSP over POST and RFC 5019 GET, the CA
certificates and CRLs at the paths the certificates name, and /healthz.

It asks one `Source` for the response bytes and their dates; it never runs SQL or parses
DER. Bad requests get malformedRequest or a 4xx; an unexpected failure gets an OCSP
internalError, never a 5xx.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from email.utils import formatdate
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote_to_bytes

from ocsp.asgi import Receive, Scope, Send, TooLarge, lifespan, read_body, respond
from ocsp.source import INTERNAL_ERROR, MALFORMED, Answer, Source

OCSP_RESPONSE = b"application/ocsp-response"
STATIC = re.compile(rb"^/(ca|crl)/([a-z0-9-]{1,40})\.(cer|crl)$")
CONTENT_TYPES = {b"cer": b"application/pkix-cert", b"crl": b"application/pkix-crl"}


@lru_cache(maxsize=4096)
def _http_date(epoch: float) -> bytes:
    return formatdate(epoch, usegmt=True).encode("ascii")


def cache_headers(answer: Answer, now: float) -> list[tuple[bytes, bytes]]:
    """RFC 5019 section 6.2 caching headers for a pre-signed response; no-store otherwise."""
    if not answer.cacheable or answer.this_update is None or answer.next_update is None:
        return [(b"cache-control", b"no-store")]
    fixed, expires = _fixed_headers(answer)
    max_age = max(0, int(expires - now))
    return [*fixed, (b"cache-control", b"max-age=%d, public, no-transform, must-revalidate" % max_age)]


@lru_cache(maxsize=16384)
def _fixed_headers(answer: Answer) -> tuple[tuple[tuple[bytes, bytes], ...], float]:
    # The same pre-signed answer is served many times: its dates and ETag are formatted once.
    assert answer.this_update is not None and answer.next_update is not None
    expires = answer.next_update.timestamp()
    headers = (
        (b"last-modified", _http_date(answer.this_update.timestamp())),
        (b"expires", _http_date(expires)),
        (b"etag", b'"' + hashlib.sha1(answer.body, usedforsecurity=False).hexdigest().encode("ascii") + b'"'),
    )
    return headers, expires


def decode_get_path(raw_path: bytes) -> bytes | None:
    """The DER request in an RFC 5019 GET path: URL-decoded base64, '+', '/' and '=' kept."""
    encoded = unquote_to_bytes(raw_path[1:]).translate(bytes.maketrans(b"-_", b"+/"))
    encoded = encoded.strip()
    if not encoded:
        return None
    try:
        return base64.b64decode(encoded + b"=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


class ResponderApp:
    """The ASGI application."""

    def __init__(self, source: Source, public_dir: Path) -> None:
        self.source = source
        self.public_dir = public_dir

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method = scope["method"]
        # raw_path: the bytes as sent, so a '//' inside base64 is never collapsed.
        raw_path = scope.get("raw_path") or scope["path"].encode("latin-1")
        try:
            if method == "POST":
                try:
                    body = await read_body(scope, receive)
                except TooLarge:
                    await respond(send, 413, b"text/plain", b"request body over 64 KiB\n")
                    return
                except TimeoutError:
                    await respond(send, 408, b"text/plain", b"request body too slow\n")
                    return
                await self.answer(send, self.source.response(body))
            elif method == "GET":
                await self.get(send, raw_path)
            else:
                await respond(send, 405, b"text/plain", b"use GET or POST\n", [(b"allow", b"GET, POST")])
        except Exception:
            await self.answer(send, INTERNAL_ERROR)

    async def get(self, send: Send, raw_path: bytes) -> None:
        if raw_path == b"/healthz":
            await respond(send, 200, b"text/plain", b"ok\n", [(b"cache-control", b"no-store")])
            return
        static = STATIC.match(raw_path)
        if static is not None:
            await self.static(send, static)
            return
        request = decode_get_path(raw_path)
        await self.answer(send, MALFORMED if request is None else self.source.response(request))

    async def static(self, send: Send, match: re.Match[bytes]) -> None:
        folder, name, suffix = (part.decode("ascii") for part in match.groups())
        expected = {"ca": "cer", "crl": "crl"}[folder]
        path = self.public_dir / folder / f"{name}.{suffix}"
        try:
            if suffix != expected:
                raise FileNotFoundError(path)
            body = path.read_bytes()
            modified = _http_date(path.stat().st_mtime)
        except (FileNotFoundError, IsADirectoryError):
            await respond(send, 404, b"text/plain", b"not found\n")
            return
        await respond(send, 200, CONTENT_TYPES[suffix.encode()], body, [(b"last-modified", modified)])

    async def answer(self, send: Send, answer: Answer) -> None:
        await respond(send, 200, OCSP_RESPONSE, answer.body, cache_headers(answer, time.time()))


def create_app() -> ResponderApp:
    """ASGI factory for server workers: the home comes from $KINKO_HOME."""
    from ca.home import resolve_home
    from ocsp.source import DatabaseSource

    home = resolve_home(None)
    return ResponderApp(DatabaseSource(home), home / "public")
