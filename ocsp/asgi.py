"""Small ASGI building blocks shared by Kinko's HTTP services (the OCSP responder, the API):
bounded body reading, responses, lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

MAX_BODY = 64 * 1024
BODY_TIMEOUT = 10.0  # seconds a client may take to send its request body

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class TooLarge(Exception):
    """The request body is over MAX_BODY."""


async def read_body(scope: Scope, receive: Receive) -> bytes:
    """Reads a request body of at most MAX_BODY bytes; refuses larger ones before reading them."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY:
            raise TooLarge
    chunks = []
    size = 0
    more = True
    deadline = asyncio.get_running_loop().time() + BODY_TIMEOUT
    while more:
        # One deadline for the whole body: a client trickling a byte at a time is cut off too.
        message = await asyncio.wait_for(receive(), max(0.0, deadline - asyncio.get_running_loop().time()))
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise TooLarge
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


async def respond(
    send: Send, status: int, content_type: bytes, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode("ascii"))]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
