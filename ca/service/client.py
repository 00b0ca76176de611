"""The CLI as the CA service's client: one request, one reply, printed and written as the caller."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kinko.ca.errors import KinkoError
from kinko.ca.i18n import current as current_language
from kinko.ca.i18n import fill
from kinko.ca.service.protocol import ProtocolError, receive, send

CONNECT_TIMEOUT = 5.0
# Bulk operations (a customer's termination) can take minutes: the reply is awaited that long.
REPLY_TIMEOUT = 3600.0


class ServiceUnavailable(KinkoError):
    """The CA service cannot be reached: not running, or this account may not use its socket."""

    exit_code = 3


def raise_for(reply: dict[str, Any]) -> None:
    """Raises the error a failed reply reports, as the service raised it (its class by name, its message)."""
    from kinko.ca import errors

    if reply["exit"] == 0:
        return
    error = reply.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        kinds = [getattr(errors, name, None) for name in error.get("kinds", []) if isinstance(name, str)]
        kind = next((k for k in kinds if isinstance(k, type) and issubclass(k, KinkoError)), KinkoError)
        # Only a template that makes the very message is taken (a service of another version: the message).
        template, params = error["message"], {}
        offered, values = error.get("template"), error.get("params")
        if isinstance(offered, str) and isinstance(values, dict) and fill(offered, values) == error["message"]:
            template, params = offered, values
        try:
            raised = kind(template, **params)
        except TypeError:  # a kind that carries more than its message (IntegrityError): its message only
            raised = KinkoError(template, **params)
        raise raised
    raise KinkoError(str(reply.get("stderr", "")).strip().removeprefix("kinko: error: ") or "the service refused")


def call(
    socket_path: Path,
    operation: str,
    params: dict[str, Any],
    as_json: bool,
    fds: list[int] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    timeout: float = REPLY_TIMEOUT,
) -> dict[str, Any]:
    """Sends one request (and the descriptors of the files the operation writes) and returns its
    reply; with `on_progress`, the service streams progress frames before it, each passed there."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.settimeout(CONNECT_TIMEOUT)
        try:
            connection.connect(str(socket_path))
        except FileNotFoundError:
            raise ServiceUnavailable(
                "the Kinko service is not running: no socket at {path}", path=socket_path
            ) from None
        except ConnectionRefusedError:
            raise ServiceUnavailable(
                "the Kinko service is not running: {path} refused the connection", path=socket_path
            ) from None
        except PermissionError:
            raise ServiceUnavailable(
                "permission denied on {path}: this account is not in the group that may use the service",
                path=socket_path,
            ) from None
        connection.settimeout(timeout)
        try:
            request = {
                "op": operation,
                "params": params,
                "json": as_json,
                "progress": on_progress is not None,
                "lang": current_language(),
            }
            send(connection, request, fds)
            reply = receive(connection)
            while "progress" in reply and "exit" not in reply:
                if on_progress is not None:
                    on_progress(reply["progress"])
                reply = receive(connection)
        except (OSError, ProtocolError) as exc:
            raise ServiceUnavailable(
                "the Kinko service at {path} did not answer: {reason}", path=socket_path, reason=str(exc)
            ) from None
    finally:
        connection.close()
    if not isinstance(reply.get("exit"), int):
        raise ServiceUnavailable("the Kinko service at {path} sent a reply without an exit code", path=socket_path)
    return reply
