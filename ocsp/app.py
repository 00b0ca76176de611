"""The responder's HTTP application: OCSP over POST and RFC 5019 GET, the CA certificates
and CRLs at the paths the certificates name, and /healthz.

It speaks RSGI, Granian's native interface: measured with bench/ocsp.py, an empty app
under it costs about a third less server time per request than under ASGI. It asks one
`Source` for the response bytes and their dates; it never runs SQL or parses DER. Bad
requests get malformedRequest or a 4xx problem document (kinko.ca.http); an unexpected
failure gets an OCSP internalError, never a 5xx.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import os
import re
import stat
import time
from email.utils import formatdate, parsedate_to_datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes

from kinko.ca.http import MAX_BODY, PROBLEM, BodyDeadlines, TooLarge, problem
from kinko.ocsp.source import INTERNAL_ERROR, MALFORMED, Answer, Source

if TYPE_CHECKING:
    # granian.rsgi re-exports the protocol without marking it public; its own stub names it so.
    from granian._granian import RSGIHTTPProtocol as HTTPProtocol
    from granian.rsgi import Scope

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


class Reply:
    """Answers a GET or HEAD: HEAD gets the headers alone (with the GET's length), and a
    conditional GET whose ETag or date still matches gets 304, as caches and CDNs expect."""

    def __init__(self, protocol: HTTPProtocol, scope: Scope, address: str) -> None:
        self.protocol = protocol
        self.head = scope.method == "HEAD"
        self.if_none_match = scope.headers.get("if-none-match")
        self.if_modified_since = scope.headers.get("if-modified-since")
        self.client = address

    def send(self, status: int, headers: Headers, body: bytes, conditional: bool = False) -> None:
        """Sends the answer, or 304 / headers only where that is what was asked."""
        if conditional and status == 200 and self._not_modified(headers):
            kept = [(k, v) for k, v in headers if k in ("etag", "last-modified", "expires", "cache-control")]
            self.protocol.response_empty(304, kept)
        elif self.head:
            self.protocol.response_empty(status, [*headers, ("content-length", str(len(body)))])
        else:
            self.protocol.response_bytes(status, headers, body)

    def _not_modified(self, headers: Headers) -> bool:
        values = dict(headers)
        if self.if_none_match is not None:  # RFC 9110 13.1.2: If-None-Match wins over the date
            tags = {tag.strip().removeprefix("W/") for tag in self.if_none_match.split(",")}
            return values.get("etag") in tags or "*" in tags
        if self.if_modified_since is not None and "last-modified" in values:
            try:
                since = parsedate_to_datetime(self.if_modified_since)
                modified = parsedate_to_datetime(values["last-modified"])
            except (TypeError, ValueError):
                return False
            return modified <= since
        return False


class ResponderApp:
    """The RSGI application."""

    def __init__(self, source: Source, public_dir: Path, trusted_proxies: tuple[str, ...] = ()) -> None:
        self.source = source
        self.public_dir = public_dir
        self.bodies = BodyDeadlines()
        self.trusted_proxies = frozenset(ipaddress.ip_address(a) for a in trusted_proxies)

    def client_of(self, scope: Scope) -> str:
        """The client a request's budget is kept for: the peer, or, when the peer is a trusted
        front end, the last address of its X-Forwarded-For (the one it added itself), if it is one."""
        peer = _address(scope)
        if self.trusted_proxies and _ip(peer) in self.trusted_proxies:
            forwarded = scope.headers.get("x-forwarded-for") or ""
            named = _ip(forwarded.rsplit(",", 1)[-1])
            if named is not None:
                return str(named)
        return peer

    async def __rsgi__(self, scope: Scope, protocol: HTTPProtocol) -> None:
        if scope.proto != "http":
            return
        try:
            if scope.method == "POST":
                try:
                    body = await self.bodies.read(scope, protocol)
                except TooLarge:
                    self.refuse(protocol, 413, f"request body over {MAX_BODY // 1024} KiB")
                    return
                except TimeoutError:
                    self.refuse(protocol, 408, "request body too slow")
                    return
                self.answer(protocol, self.source.response(body, self.client_of(scope)))
            elif scope.method in ("GET", "HEAD"):
                # The path as sent, percent-decoding aside: a '//' inside base64 is never collapsed.
                self.get(Reply(protocol, scope, self.client_of(scope)), scope.path)
            else:
                allow = [("allow", "GET, HEAD, POST")]
                self.refuse(protocol, 405, f"{scope.method} is not allowed; use GET, HEAD or POST", allow)
        except Exception:  # the responder answers every request, whatever failed
            self.answer(protocol, INTERNAL_ERROR)

    def get(self, reply: Reply, path: str) -> None:
        if path == "/healthz":
            problem = self.source.problem()
            status, text = (200, "ok") if problem is None else (503, problem)
            reply.send(status, [("content-type", TEXT), ("cache-control", "no-store")], f"{text}\n".encode())
            return
        static = STATIC.match(path)
        if static is not None:
            self.static(reply, static)
            return
        request = decode_get_path(path)
        answer = MALFORMED if request is None else self.source.response(request, reply.client)
        reply.send(200, cache_headers(answer, time.time()), answer.body, conditional=answer.cacheable)

    def static(self, reply: Reply, match: re.Match[str]) -> None:
        folder, name, suffix = match.groups()
        found = None
        if suffix == {"ca": "cer", "crl": "crl"}[folder]:
            found = read_published(self.public_dir, folder, f"{name}.{suffix}")
        if found is None:
            self.refuse(reply.protocol, 404, f"no such file {folder}/{name}.{suffix}")
            return
        body, mtime = found
        headers = [
            ("content-type", CONTENT_TYPES[suffix]),
            ("last-modified", _http_date(mtime)),
            ("etag", '"' + hashlib.sha1(body, usedforsecurity=False).hexdigest() + '"'),
        ]
        reply.send(200, headers, body, conditional=True)

    def answer(self, protocol: HTTPProtocol, answer: Answer) -> None:
        protocol.response_bytes(200, cache_headers(answer, time.time()), answer.body)

    def refuse(self, protocol: HTTPProtocol, status: int, detail: str, extra: Headers | None = None) -> None:
        """A 4xx with a problem document: the request, not the responder, is at fault."""
        protocol.response_bytes(status, [("content-type", PROBLEM), *(extra or [])], problem(status, detail))


def _address(scope: Scope) -> str:
    """The client's address, without its port (nor an IPv6 address's brackets): one budget per host."""
    return scope.client.rsplit(":", 1)[0].strip("[]")


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def read_published(public_dir: Path, folder: str, name: str) -> tuple[bytes, float] | None:
    """(bytes, mtime) of a regular file really inside public_dir/folder, or None."""
    # Opened component by component without following a symlink (O_NOFOLLOW fails with ELOOP):
    # a link public/ca/leak.cer -> ../../keys/... once served the OCSP signer's private key.
    # fstat on the descriptor: a FIFO or device planted there is refused, never read.
    try:
        top = os.open(public_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            inner = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=top)
        finally:
            os.close(top)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=inner)
        finally:
            os.close(inner)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(), info.st_mtime
    finally:
        os.close(fd)


def create_app() -> ResponderApp:
    """Factory for server workers: the home comes from $KINKO_HOME."""
    from kinko.ca.locations import resolve_home
    from kinko.ocsp.server import DATABASE_ENV, PASSWORD_FILE_ENV
    from kinko.ocsp.source import DatabaseSource

    home = resolve_home(None)
    password_file = os.environ.get(PASSWORD_FILE_ENV)
    source = DatabaseSource(
        home,
        database=os.environ.get(DATABASE_ENV),
        database_password_file=Path(password_file) if password_file else None,
    )
    return ResponderApp(source, home / "public", source.home.config.ocsp.trusted_proxies)
