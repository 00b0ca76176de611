"""The CA service's wire protocol: one request and one reply per connection, each a JSON object
in a frame of a 4-byte big-endian length, at most MAX_FRAME bytes. Bytes travel as
{"$bytes": base64}, paths as strings; a request names an operation of the command registry."""

from __future__ import annotations

import base64
import json
import socket
import struct
from typing import Any

from kinko.ca.errors import InputError

MAX_FRAME = 1 << 20  # a CSR is a few KiB; a frame this large is not a Kinko request
HEADER = struct.Struct(">I")


class ProtocolError(InputError):
    """A frame that is not a Kinko request or reply."""


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    """Writes one framed JSON object."""
    data = json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=_encode).encode("utf-8")
    if len(data) > MAX_FRAME:
        raise ProtocolError(f"message of {len(data)} bytes is over the {MAX_FRAME}-byte frame limit")
    sock.sendall(HEADER.pack(len(data)) + data)


def receive(sock: socket.socket) -> dict[str, Any]:
    """Reads one framed JSON object; ProtocolError for anything else (a short, huge or garbled frame)."""
    (length,) = HEADER.unpack(_exactly(sock, HEADER.size))
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes is over the {MAX_FRAME}-byte limit")
    try:
        message = json.loads(_exactly(sock, length).decode("utf-8"), object_hook=_decode)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError("the frame is not UTF-8 JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError("the frame is not a JSON object")
    return message


def _exactly(sock: socket.socket, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(min(remaining, 65536))
        if not chunk:
            raise ProtocolError("the connection closed in the middle of a frame")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _encode(value: object) -> object:
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
