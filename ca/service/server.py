"""`kinko service run`: the CA service on a Unix socket.

It runs as the one account that can read the home. Each connection carries one request: an
operation of the command registry with its parameters. The caller is who the kernel says
(SO_PEERCRED's uid, never a claim in the request); its role is checked as in direct mode
(a refusal is recorded as `command.refused` under the caller's login), the operation runs with
the caller's login as the ledger's actor, and its output (and the files it writes, such as
--out) go back to the client, which prints and writes them as the caller. A malformed request
gets an error reply; nothing a client sends stops the service.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import socketserver
import struct
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kinko.ca.commands.registry import Context, Operation, build_params, find
from kinko.ca.commands.render import Output
from kinko.ca.errors import KinkoError
from kinko.ca.home import Home
from kinko.ca.service.protocol import ProtocolError, receive_with_fds, send, send_if_ready

if TYPE_CHECKING:
    from kinko.ca.service.jobs import ScheduleThread
    from kinko.ocsp.presign import Presigner

READ_TIMEOUT = 10.0  # seconds a client may take to send its request
EXIT_UNEXPECTED = 3


class CapturedOutput(Output):
    """An Output that keeps what a command prints and the files it writes, for the client."""

    def __init__(self, as_json: bool) -> None:
        self.chunks: list[str] = []
        self.files: list[dict[str, str]] = []

        def echo(text: object = "", nl: bool = True) -> None:
            self.chunks.append(f"{text}\n" if nl else str(text))

        super().__init__(as_json, echo)

    def write_file(self, path: Path, text: str) -> None:
        self.files.append({"path": str(path), "text": text})


def peer_uid(connection: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket, as the kernel tells it."""
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return int(uid)


def login_of(uid: int) -> str:
    """The login name of a uid; 'uid:N' for an account without one."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


class Service:
    """Runs registry operations for callers identified by their uid, one at a time, on one home
    (opened once: its connection and its decrypted keys serve every request)."""

    def __init__(self, home_path: Path, clock: Any = None) -> None:
        self.home_path = home_path
        self.clock = clock
        self._home: Home | None = None
        self._presigner: Presigner | None = None
        self.schedule: ScheduleThread | None = None  # the jobs, run beside the requests
        self._status_seq = -1  # the last status change the schedule was told of
        # Connections are read and answered by their own threads; operations run on this one,
        # which owns the home's SQLite connection.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kinko-service")

    def handle(
        self,
        request: dict[str, Any],
        uid: int,
        fds: list[int] | None = None,
        stream: Callable[[dict[str, Any]], object] | None = None,
    ) -> dict[str, Any]:
        """One request's reply: exit code, standard output, standard error, files to write, and
        which of the files the caller opened (`fds`, which the caller of this closes) were produced."""
        from kinko.ca.i18n import speaking

        # Text for people is made here in the caller's language, which travels with the request.
        with speaking(str(request.get("lang") or "en")):
            return self._handle(request, uid, fds, stream)

    def _handle(
        self,
        request: dict[str, Any],
        uid: int,
        fds: list[int] | None,
        stream: Callable[[dict[str, Any]], object] | None,
    ) -> dict[str, Any]:
        from kinko.ca.outputs import received

        name = request.get("op")
        try:
            if not isinstance(name, str):
                raise ProtocolError("the request names no operation")
            operation = _operation(name)
            params = build_params(operation.params, request.get("params", {}))
            if operation.runs_here(params):
                raise ProtocolError("`kinko {name}` with these options runs in the caller's own process", name=name)
            # The service never opens a path a caller names: the files an operation writes come open.
            destinations = operation.writes(params) if operation.writes is not None else []
            outputs = received(list(fds or []), [d.path.name for d in destinations])
        except KinkoError as exc:
            return _refusal(2, exc)
        return self.run(operation, params, login_of(uid), bool(request.get("json")), outputs, stream)

    def _note_status_change(self, home: Home) -> None:
        """Wakes the schedule when a request changed a certificate's status (one index lookup):
        a change that went only into a delta CRL then reaches a full one at once."""
        if self.schedule is None:
            return
        seq = home.store.last_status_change_seq(home.issuing_role)
        if seq != self._status_seq:
            self._status_seq = seq
            self.schedule.changed()

    def run(
        self,
        operation: Operation[Any, Any],
        params: Any,
        login: str,
        as_json: bool,
        outputs: Any = None,
        stream: Callable[[dict[str, Any]], object] | None = None,
    ) -> dict[str, Any]:
        """Checks the caller's role, runs the operation as that caller, and captures its output."""
        from kinko.ca.clock import showing_times_in
        from kinko.ocsp.presign import Presigner

        out = CapturedOutput(as_json)
        if self._home is None:
            self._home = Home(self.home_path)
            self._presigner = Presigner(self._home)
        elif self._home.refresh_config():  # root edited the files: the next operation runs under them
            self._presigner = Presigner(self._home)
        context = Context(
            self.home_path,
            clock=self.clock,
            actor=login,
            home_instance=self._home,
            presigner=self._presigner,
            schedule=self.schedule.schedule if self.schedule is not None else None,
            outputs=outputs if outputs else None,
            progress=(lambda label: Streamed(label, stream).step) if stream else (lambda _label: None),
            counter=(lambda label: Streamed(label, stream).count) if stream else (lambda _label: None),
        )
        # Times for people in the home's zone, whatever the service's own environment says.
        with showing_times_in(self._home.display_zone):
            return self._run_as(operation, params, login, context, out, outputs)

    def _run_as(
        self, operation: Operation[Any, Any], params: Any, login: str, context: Context, out: Any, outputs: Any
    ) -> dict[str, Any]:
        from kinko.ca.officers import authorize

        try:
            home = context.home()
            home.require()
            checks = [(operation.path, operation.role)] if operation.role else []
            for label, needed in [*checks, *operation.extra_roles(params), *operation.state_roles(context, params)]:
                authorize(home, login, label, needed, context.now_text())
            operation.render(operation.run(context, params), out, params)
            self._note_status_change(home)
            reply = _reply(0, "".join(out.chunks), files=out.files)
            if outputs:
                reply["produced"] = [f.produced for f in outputs]
            return reply
        except KinkoError as exc:
            return _refusal(exc.exit_code, exc, "".join(out.chunks))
        except click.UsageError as exc:
            return _reply(2, stderr=f"kinko: error: {exc.message}\n")
        except Exception as exc:  # one request that fails never stops the service
            return _reply(EXIT_UNEXPECTED, stderr=f"kinko: error: unexpected {type(exc).__name__}: {exc}\n")


class Streamed:
    """Progress of a bulk operation, sent to the client as frames, at most ten a second (and the
    last); a frame the client's socket cannot take at once is dropped."""

    INTERVAL = 0.1

    def __init__(self, label: str, stream: Callable[[dict[str, Any]], object]) -> None:
        self.label, self.stream = label, stream
        self.sent_at = 0.0
        self.stopped = False

    def step(self, done: int, total: int) -> None:
        """A progress bar's step: `done` of `total`."""
        self._send({"label": self.label, "done": done, "total": total}, final=done == total)

    def count(self, done: int) -> None:
        """A counter's step (an export's events so far)."""
        self._send({"label": self.label, "done": done}, final=False)

    def _send(self, frame: dict[str, Any], final: bool) -> None:
        now = time.monotonic()
        if not self.stopped and (final or now - self.sent_at >= self.INTERVAL):
            self.sent_at = now
            try:
                self.stream({"progress": frame})
            except (OSError, ProtocolError):  # a slow or gone client: no more progress, the operation goes on
                self.stopped = True


def _operation(name: str) -> Operation[Any, Any]:
    try:
        operation = find(name)
    except KeyError:
        raise ProtocolError("no operation {name!r}", name=name) from None
    if operation.local:
        raise ProtocolError("`kinko {name}` runs in the caller's own process, not through the service", name=name)
    return operation


def _refusal(code: int, exc: KinkoError, stdout: str = "") -> dict[str, Any]:
    """A refusal's reply; for a client that acts on the kind (the API's HTTP status) it names the
    error's classes, nearest first."""
    from kinko.ca.i18n import N_, render

    # For people, in the caller's language (the request's); for programs, the English message below.
    reply = _reply(code, stdout, render(N_("kinko: error: {message}"), {"message": exc.localized()}) + "\n")
    reply["error"] = {
        "kinds": [cls.__name__ for cls in type(exc).__mro__ if issubclass(cls, KinkoError)],
        "message": str(exc),
        # For the caller to show it in its own language: the template and its values, as text.
        "template": exc.template,
        "params": {name: str(value) for name, value in exc.params.items()},
    }
    return reply


def _reply(code: int, stdout: str = "", stderr: str = "", files: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"exit": code, "stdout": stdout, "stderr": stderr, "files": files or []}


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        connection: socket.socket = self.request
        connection.settimeout(READ_TIMEOUT)
        fds: list[int] = []
        try:
            uid = peer_uid(connection)
            try:
                request, fds = receive_with_fds(connection, deadline=time.monotonic() + READ_TIMEOUT)
            except ProtocolError as exc:
                send(connection, _reply(2, stderr=f"kinko: error: malformed request: {exc}\n"))
                return
            service = self.server.service
            # Progress is best effort: a client that does not read it never slows the operation.
            stream = (lambda frame: send_if_ready(connection, frame)) if request.get("progress") is True else None
            send(connection, service.executor.submit(service.handle, request, uid, fds, stream).result())
        except (OSError, ProtocolError):
            pass  # the client went away or stalled: nothing to answer, the service goes on
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    # Not daemons, and joined at close: a request in progress when SIGTERM came is finished and
    # its reply sent, so no client is told "no answer" for a change that committed. A client
    # stalling its request has READ_TIMEOUT for the whole of it (receive_with_fds's deadline).
    daemon_threads = False
    block_on_close = True
    service: Service


def serve(home_path: Path, socket_path: Path, clock: Any = None, ready: Any = None) -> None:
    """Serves the home on a Unix socket (mode 0660: the socket's directory decides who may
    connect) until interrupted."""
    with contextlib.suppress(FileNotFoundError):
        if socket_path.is_socket():
            socket_path.unlink()  # left by a service that died; anything else there is not ours
    previous = os.umask(0o117)  # the socket is born 0660: never briefly open to others
    try:
        server = _Server(str(socket_path), _Handler)
    finally:
        os.umask(previous)
    server.service = service = Service(home_path, clock)
    service.schedule = _start_schedule(home_path, clock)
    print(f"kinko: service for {home_path} on {socket_path}", file=sys.stderr, flush=True)
    if ready is not None:
        ready()
    # systemd stops a unit with SIGTERM: leave as Ctrl-C does, after the job and the request in progress.
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("kinko: service stopping", file=sys.stderr, flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()  # no new connections
        server.server_close()  # joins the requests in progress: each gets its reply
        service.schedule.stop()
        service.executor.shutdown(wait=True)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _start_schedule(home_path: Path, clock: Any) -> ScheduleThread:
    """The jobs' thread, with its own home (its own database connection and loaded keys)."""
    from kinko.ca.clock import SystemClock
    from kinko.ca.lifecycle import Kinko
    from kinko.ca.service.jobs import ScheduleThread

    clock = clock or SystemClock()
    thread = ScheduleThread(lambda: Kinko(Home(home_path), clock=clock), clock)
    thread.start()
    thread.started_up.wait()
    return thread
