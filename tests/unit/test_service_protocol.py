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


def test_a_request_must_arrive_whole_by_its_deadline() -> None:
    """A client sending a byte at a time once held a service thread for as long as it liked (each
    read had a timeout, the request none); at shutdown the service waits for every such thread."""
    import socket
    import time

    from kinko.ca.service.protocol import HEADER, ProtocolError, receive_with_fds

    server, client = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with server, client:
        client.sendall(HEADER.pack(10) + b'{"op"')  # half a frame, the rest never comes
        with pytest.raises(ProtocolError, match="did not arrive in time"):
            receive_with_fds(server, deadline=time.monotonic() - 1)
    server, client = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with server, client:
        client.sendall(HEADER.pack(10) + b'{"op":"x"}')
        assert receive_with_fds(server, deadline=time.monotonic() + 30) == ({"op": "x"}, [])
