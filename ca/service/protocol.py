"""The CA service's wire protocol: one request and one reply per connection, each a JSON object
in a frame of a 4-byte big-endian length, at most MAX_FRAME bytes. Bytes travel as
{"$bytes": base64}, paths as strings; a request names an operation of the command registry.
Files that an operation writes where the caller asked travel as descriptors (SCM_RIGHTS) with
the request's length header, at most MAX_FDS of them."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from typing import Any

from kinko.ca.errors import InputError
from kinko.ca.files import FileContents

MAX_FRAME = 1 << 20  # a CSR is a few KiB; a frame this large is not a Kinko request
MAX_FDS = 8  # an export and its companions are four
HEADER = struct.Struct(">I")


class ProtocolError(InputError):
    """A frame that is not a Kinko request or reply."""


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    """Writes one framed JSON object, with descriptors beside its header."""
    data = json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=_encode).encode("utf-8")
    if len(data) > MAX_FRAME:
        raise ProtocolError(
            "message of {size} bytes is over the {limit}-byte frame limit", size=len(data), limit=MAX_FRAME
        )
    if fds:
        header = HEADER.pack(len(data))
        if socket.send_fds(sock, [header], fds) != len(header):
            raise ProtocolError("the request's header did not go out whole")
        sock.sendall(data)
    else:
        sock.sendall(HEADER.pack(len(data)) + data)


def send_if_ready(sock: socket.socket, message: dict[str, Any]) -> bool:
    """Writes one small framed object if the socket can take it now; False (nothing sent) when it
    cannot: for progress frames, which must never hold up the operation that sends them. A frame
    that went out in part is finished (a few bytes, or the reply after it would not parse); the
    caller then sends no more."""
    data = json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=_encode).encode("utf-8")
    frame = HEADER.pack(len(data)) + data
    try:
        # Not sock.send: with a timeout set, Python waits for room even under MSG_DONTWAIT. The
        # descriptor of a socket with a timeout is non-blocking, and one without gets the flag.
        sent = sock.send(frame, socket.MSG_DONTWAIT) if sock.gettimeout() is None else os.write(sock.fileno(), frame)
    except (BlockingIOError, InterruptedError):
        return False
    if sent < len(frame):
        sock.sendall(frame[sent:])
        raise BlockingIOError("the client reads its progress too slowly")
    return True


def receive(sock: socket.socket) -> dict[str, Any]:
    """Reads one framed JSON object; ProtocolError for anything else (a short, huge or garbled frame)."""
    return _body(sock, _exactly(sock, HEADER.size))


def receive_with_fds(sock: socket.socket, deadline: float | None = None) -> tuple[dict[str, Any], list[int]]:
    """Reads one framed JSON object and the descriptors sent with it, whole by `deadline`
    (time.monotonic()): a client trickling a byte at a time cannot hold a thread for longer. The
    caller closes the descriptors, also when this raises ProtocolError (they are closed here then)."""
    _until(sock, deadline)
    header, fds, flags, _address = socket.recv_fds(sock, HEADER.size, MAX_FDS)
    try:
        if flags & socket.MSG_CTRUNC:
            raise ProtocolError("more than {limit} descriptors came with the request", limit=MAX_FDS)
        if not header:
            raise ProtocolError("the connection closed in the middle of a frame")
        if len(header) < HEADER.size:
            header += _exactly(sock, HEADER.size - len(header), deadline)
        return _body(sock, header, deadline), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def _body(sock: socket.socket, header: bytes, deadline: float | None = None) -> dict[str, Any]:
    (length,) = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ProtocolError("frame of {size} bytes is over the {limit}-byte limit", size=length, limit=MAX_FRAME)
    try:
        message = json.loads(_exactly(sock, length, deadline).decode("utf-8"), object_hook=_decode)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError("the frame is not UTF-8 JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError("the frame is not a JSON object")
    return message


def _until(sock: socket.socket, deadline: float | None) -> None:
    if deadline is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProtocolError("the request did not arrive in time")
        sock.settimeout(left)


def _exactly(sock: socket.socket, size: int, deadline: float | None = None) -> bytes:
    chunks, remaining = [], size
    while remaining:
        _until(sock, deadline)
        chunk = sock.recv(min(remaining, 65536))
        if not chunk:
            raise ProtocolError("the connection closed in the middle of a frame")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _encode(value: object) -> object:
    if isinstance(value, FileContents):
        return {"name": value.name, "data": value.data}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if hasattr(value, "__fspath__"):
        return str(value)
    raise TypeError(f"{type(value).__name__} does not travel over the service's socket")


def _decode(obj: dict[str, Any]) -> object:
    if set(obj) == {"$bytes"} and isinstance(obj["$bytes"], str):
        try:
            return base64.b64decode(obj["$bytes"], validate=True)
        except ValueError:
            raise ProtocolError("a $bytes value is not base64") from None
    return obj
