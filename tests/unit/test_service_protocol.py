"""The service's progress frames are best effort: a client that does not read them never blocks
the operation that sends them (which may hold the database's write lock)."""

from __future__ import annotations

import socket

import pytest

from kinko.ca.service.protocol import receive, send_if_ready


def full_pair(timeout: float | None) -> tuple[socket.socket, socket.socket]:
    sender, reader = socket.socketpair()
    sender.setblocking(False)
    with pytest.raises(BlockingIOError):
        while True:
            sender.send(b"x" * 65536)
    sender.settimeout(timeout)
    return sender, reader


@pytest.mark.parametrize("timeout", [10.0, None], ids=["with a timeout", "blocking"])
def test_a_frame_the_socket_cannot_take_is_dropped_at_once(timeout: float | None) -> None:
    sender, reader = full_pair(timeout)
    with sender, reader:
        assert send_if_ready(sender, {"progress": {"label": "certificates", "done": 1, "total": 2}}) is False


def test_a_frame_with_room_arrives_whole() -> None:
    sender, reader = socket.socketpair()
    with sender, reader:
        sender.settimeout(10.0)
        frame = {"progress": {"label": "証明書", "done": 1, "total": 2}}
        assert send_if_ready(sender, frame) is True
        assert receive(reader) == frame
