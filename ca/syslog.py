"""Sending checkpoint heads to syslog over a datagram Unix socket (RFC 3164 framing, as /dev/log takes)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from kinko.ca.i18n import said

# authpriv.info: security records, kept by the bank's log server apart from ordinary logs.
PRIORITY = 10 * 8 + 6
# A commit has happened; a log server that stalls must not hold the command for long.
TIMEOUT_SECONDS = 0.25


def head_message(seq: int, head_hash: str, time: str, signature: bytes, signer: str) -> bytes:
    """One syslog line holding the whole anchor: seq, head hash, time, signer and signature."""
    return (
        f"<{PRIORITY}>kinko[{os.getpid()}]: ledger checkpoint seq={seq} head={head_hash} time={time} "
        f"signer={signer} signature={signature.hex()}"
    ).encode("ascii")


def send_head(path: str, seq: int, head_hash: str, time: str, signature: bytes, signer: str) -> str | None:
    """Sends one head; returns None when sent, else a one-line reason for people (never raises)."""
    if not Path(path).exists():  # the common case on a machine without syslog: no socket to make
        return _absent(path)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(TIMEOUT_SECONDS)
            sock.sendto(head_message(seq, head_hash, time, signature, signer), path)
    except (FileNotFoundError, ConnectionRefusedError):
        return _absent(path)
    except OSError as exc:
        return said(
            "cannot send the checkpoint head to syslog at {path}: {reason}", path=path, reason=exc.strerror or exc
        )
    return None


def _absent(path: str) -> str:
    return said(
        "syslog socket {path} is absent: checkpoint heads are not sent to syslog ([audit] syslog_socket)", path=path
    )
