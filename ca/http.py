"""The HTTP layer shared by Kinko's services (the OCSP responder over RSGI, the login front
end's JSON API over ASGI): request limits, bounded body reading, responses, RFC 9457 problem
documents, and start-up under Granian.

Granian, a Rust HTTP server for Python applications, was chosen by measurement: serving
Kinko's pre-signed GET with 2 workers on this project's 2-core machine (wrk, 16
connections), it answered about 28.6k requests/s to uvicorn's 24.8k (httptools, uvloop), and
it bounds how long a client may take to send its request headers, which uvicorn does not, so
a slow client cannot hold a worker. Its native RSGI interface costs less per request again
(bench/ocsp.py).
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kinko.ca.errors import ConfigError

if TYPE_CHECKING:
    # granian.rsgi re-exports the protocol without marking it public; its own stub names it so.
    from granian._granian import RSGIHTTPProtocol as HTTPProtocol
    from granian.rsgi import Scope as RSGIScope

MAX_BODY = 64 * 1024  # bytes in a request body
BODY_TIMEOUT = 10.0  # seconds a client may take to send its request body
# A client still sending when the server closes gets a TCP reset and loses the 413, so an
# oversized body is read and discarded first, as nginx's lingering close does: up to
# DRAIN_LIMIT bytes in all, until the client pauses for DRAIN_IDLE seconds.
DRAIN_LIMIT = 512 * 1024
DRAIN_IDLE = 0.5
HEADER_TIMEOUT = 5.0  # seconds a client may take to send its request headers (Granian enforces it)

JSON = "application/json"
PROBLEM = "application/problem+json"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Interface = Literal["asgi", "rsgi"]

# RFC 9110 renamed these; Python's HTTPStatus has the new names only from 3.13.
_PHRASES = {413: "Content Too Large", 422: "Unprocessable Content"}


class TooLarge(Exception):
    """The request body is over MAX_BODY."""


async def read_body(scope: Scope, receive: Receive) -> bytes:
    """Reads an ASGI request body of at most MAX_BODY bytes within BODY_TIMEOUT seconds, or
    raises TooLarge (before reading, when Content-Length says so) or TimeoutError."""
    if _declared_length(scope) > MAX_BODY:
        raise TooLarge
    chunks = []
    size = 0
    more = True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BODY_TIMEOUT
    while more:
        # One deadline for the whole body: a client trickling a byte at a time is cut off too.
        message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise TooLarge
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _declared_length(scope: Scope) -> int:
    """The request's Content-Length, -1 for a chunked body, 0 for none."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length" and value.isdigit():
            return int(value)
        if name == b"transfer-encoding":
            return -1
    return 0


class Incoming:
    """An ASGI receive that knows whether the request body was read to its end, so that a
    refusal made before (or while) reading it can drain the rest first (see DRAIN_LIMIT)."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.receive = receive
        declared = _declared_length(scope)
        self.ended = declared == 0 or declared > DRAIN_LIMIT  # too much to drain: close at once

    async def __call__(self) -> dict[str, Any]:
        message = await self.receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            self.ended = True
        return message

    async def drain(self) -> None:
        """Discards what is left of the body, up to DRAIN_LIMIT, a DRAIN_IDLE pause or
        BODY_TIMEOUT in all (a client trickling bytes cannot hold the drain open)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BODY_TIMEOUT
        size = 0
        while not self.ended and size <= DRAIN_LIMIT and loop.time() < deadline:
            try:
                message = await asyncio.wait_for(self(), min(DRAIN_IDLE, deadline - loop.time()))
            except TimeoutError:
                return
            size += len(message.get("body", b""))


class BodyDeadlines:
    """One deadline for each whole RSGI request body, so a client trickling a byte at a time
    is cut off too."""

    # A watchdog waking once a second enforces them: a timer per request cost a tenth of the
    # responder's POST throughput.

    def __init__(self, seconds: float = BODY_TIMEOUT) -> None:
        self.seconds = seconds
        self._reading: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None

    async def read(self, scope: RSGIScope, protocol: HTTPProtocol) -> bytes:
        """Reads at most MAX_BODY bytes, or raises TooLarge (from Content-Length, or as soon as
        a chunked body grows past, after draining the rest) or TimeoutError."""
        declared = scope.headers.get("content-length")
        oversized = declared is not None and declared.isdigit() and int(declared) > MAX_BODY
        if oversized and int(declared or 0) > DRAIN_LIMIT:
            raise TooLarge  # too much to drain: close at once
        loop = asyncio.get_running_loop()
        if self._watchdog is None:
            self._watchdog = loop.create_task(self._watch())
        task = asyncio.current_task()
        assert task is not None
        self._reading[task] = loop.time() + self.seconds
        chunks: list[bytes] = []
        size = 0
        try:
            if declared is not None and not oversized:
                return bytes(await protocol())
            incoming = aiter(protocol)
            while size <= MAX_BODY and not oversized:
                try:
                    chunk = await anext(incoming)
                except StopAsyncIteration:
                    return b"".join(chunks)
                size += len(chunk)
                chunks.append(chunk)
            chunks.clear()
            while size <= DRAIN_LIMIT:
                size += len(await asyncio.wait_for(anext(incoming), DRAIN_IDLE))
        except (StopAsyncIteration, TimeoutError):
            pass  # the drain ended: the client sent it all, or paused
        except asyncio.CancelledError:
            if task in self._expired:
                self._expired.discard(task)
                if oversized or size > MAX_BODY:
                    raise TooLarge from None
                raise TimeoutError from None
            raise
        finally:
            self._reading.pop(task, None)
        raise TooLarge

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1)
            now = loop.time()
            for task, deadline in list(self._reading.items()):
                if deadline < now and task not in self._expired:
                    self._expired.add(task)
                    task.cancel()


def problem(status: int, detail: str) -> bytes:
    """An RFC 9457 problem document (type about:blank, so the title is the status phrase)."""
    if not 400 <= status <= 599:
        raise ValueError(f"a problem document needs an error status, not {status}")
    title = _PHRASES.get(status) or HTTPStatus(status).phrase
    document = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


async def respond(
    send: Send, status: int, content_type: str, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Sends a whole ASGI response with its Content-Type and Content-Length."""
    headers = [(b"content-type", content_type.encode("ascii")), (b"content-length", str(len(body)).encode("ascii"))]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def lifespan(receive: Receive, send: Send) -> None:
    """Answers the ASGI lifespan protocol: nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def check_port(host: str, port: int) -> None:
    """Raises ConfigError when the address cannot be listened on, a port in use above all."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigError("cannot listen on {address}: {reason}", address=where, reason=exc.strerror) from None
    with socket.socket(family, kind, proto) as probe:
        # Granian binds with SO_REUSEPORT, so next to another such listener its bind succeeds
        # and the two silently share the port; this probe does without it, and so fails.
        # SO_REUSEADDR keeps a port whose old connections linger in TIME_WAIT usable.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError("{address} is already in use; choose another --port", address=where) from None
            raise ConfigError("cannot listen on {address}: {reason}", address=where, reason=exc.strerror) from None


@dataclass(frozen=True)
class TLSFiles:
    """The files of a TLS listener: certificate chain, its key, and the CA that client certificates must chain to."""

    cert: Path
    key: Path
    client_ca: Path | None = None


def load_tls(tls: TLSFiles) -> TLSFiles:
    """Checks before serving that the files make a TLS context (the key matches, the key file is
    private), so a mistake is one line rather than a worker that never starts."""
    import ssl

    from kinko.ca.files import check_private

    check_private(tls.key, "TLS key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(tls.cert, tls.key)
        if tls.client_ca is not None:
            context.load_verify_locations(cafile=tls.client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            "cannot use the TLS files {cert}, {key}: {reason}",
            cert=tls.cert,
            key=tls.key,
            reason=exc.strerror or str(exc),
        ) from None
    return TLSFiles(tls.cert.resolve(), tls.key.resolve(), tls.client_ca.resolve() if tls.client_ca else None)


def run_app(
    target: str,
    env: dict[str, str],
    host: str,
    port: int,
    workers: int,
    log_level: str = "warning",
    interface: Interface = "asgi",
    tls: TLSFiles | None = None,
) -> None:
    """Runs an app factory (module:function) under Granian until interrupted, its workers finding
    their home or socket in `env`; first raises ConfigError, before any worker starts, when
    host:port cannot be listened on."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    check_port(host, port)
    # Workers are separate processes: they find the home (or the service) through the environment.
    os.environ.update(env)
    Granian(
        target,
        factory=True,
        address=host,
        port=port,
        interface=Interfaces(interface),
        workers=workers,
        http=HTTPModes.http1,
        loop=Loops.uvloop,
        websockets=False,
        http1_settings=HTTP1Settings(header_read_timeout=int(HEADER_TIMEOUT * 1000), keep_alive=True),
        log_access=False,
        log_level=LogLevels(log_level),
        respawn_failed_workers=True,
        ssl_cert=tls.cert if tls else None,
        ssl_key=tls.key if tls else None,
        ssl_ca=tls.client_ca if tls else None,
        ssl_client_verify=bool(tls and tls.client_ca),
    ).serve()
