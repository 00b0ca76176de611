"""The JSON HTTP API for the bank's login front end: a thin adapter over `ca.lifecycle`.

    GET  /v1/certificates/{serial}/status
    POST /v1/acquire      {"code", "csr"}
    POST /v1/renew        {"csr"}                          + the holder's client certificate
    POST /v1/reacquire    {"subscriber", "csr", "signature"}
    POST /v1/enrollments  {"customer", "name", "email"?}             + the administrator's client certificate
    GET  /enroll/         the holder's enrollment page (ca/enroll_page.py), without the token

Every request carries `Authorization: Bearer <token>` (compared in constant time). Wrong
enrollment codes are rate-limited per client, the address in the front end's
`X-Forwarded-For` (its right-most entry). The front
end is not trusted to speak for a holder: renewal and a user's enrollment are proved by the
client certificate its TLS layer verified, passed URL-escaped in `X-Client-Certificate`
(nginx: `proxy_set_header X-Client-Certificate $ssl_client_escaped_cert;`), which must be
the holder's current, valid certificate; re-acquisition after expiry by `signature`, the
base64 of a SHA-256 signature over the new CSR's DER made with the expired certificate's key
(`openssl dgst -sha256 -sign old.key -out sig.bin new.csr.der`). Errors are RFC 9457
problem+json with the same one-line messages as the CLI. Changes are recorded with the actor
`api:<client name>`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
import os
import re
import urllib.parse
from pathlib import Path
from typing import Any, Protocol

from kinko.ca.errors import ConfigError, Conflict, InputError, KinkoError, NotFound, PolicyError
from kinko.ca.files import read_secret
from kinko.ca.home import Home
from kinko.ca.http import (
    JSON,
    MAX_BODY,
    PROBLEM,
    Incoming,
    Receive,
    Scope,
    Send,
    TooLarge,
    lifespan,
    problem,
    read_body,
    respond,
)
from kinko.ca.locations import SOCKET_ENV, resolve_home

_STATUS_PATH = re.compile(r"^/v1/certificates/([0-9A-Fa-f:]{1,64})/status$")
MAX_TOKEN_BYTES = 1024
CLIENT_CERTIFICATE_HEADER = b"x-client-certificate"
SERVICE_TIMEOUT = 30.0
TOKEN_FILE_ENV = "KINKO_API_TOKEN_FILE"  # noqa: S105 - a variable's name, not a token
_STATUSES: dict[type[KinkoError], int] = {InputError: 400, PolicyError: 403, NotFound: 404, Conflict: 409}


def load_token(home: Home) -> bytes:
    """The bearer token from [api] token_file; no token, no service."""
    name = home.config.api.token_file
    if not name:
        raise ConfigError("no API token: set [api] token_file in kinko.toml (no token, no service)")
    # A relative name is the home's, not the directory `api serve` happened to start in.
    return read_token(home.path / name)


def read_token(path: Path) -> bytes:
    """A bearer token file: private, 16 to 1024 bytes."""
    token = read_secret(path, "API token", MAX_TOKEN_BYTES).strip()
    if len(token) > MAX_TOKEN_BYTES:
        raise ConfigError("API token in {path} is longer than {limit} bytes", path=path, limit=MAX_TOKEN_BYTES)
    if len(token) < 16:
        raise ConfigError("API token in {path} is shorter than 16 characters", path=path)
    return token


class Backend(Protocol):
    """Runs one of the front end's operations (ca/commands/frontend.py) and returns its JSON."""

    def run(self, operation: str, params: dict[str, Any]) -> dict[str, Any]: ...


class InProcess:
    """Direct mode: the operations run in this process, on a home it opens (actor api:<client name>)."""

    def __init__(self, home: Home, clock: Any = None) -> None:
        from kinko.ca.commands.registry import Context

        self.context = Context(home.path, clock=clock, actor=f"api:{home.config.api.client_name}", home_instance=home)

    def run(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        from kinko.ca.commands.registry import build_params, find

        found = find(operation)
        result: dict[str, Any] = found.run(self.context, build_params(found.params, params))
        return result


class ThroughService:
    """The API as the CA service's client: no database, no key; the service runs each operation
    for this account (its `api` role, by the kernel's word) and records it under its login."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path

    def run(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        from kinko.ca.service.client import call, raise_for

        # A holder's browser waits: a service that does not answer within this is a 503, not a hang.
        reply = call(self.socket_path, operation, params, as_json=True, timeout=SERVICE_TIMEOUT)
        raise_for(reply)
        answer: dict[str, Any] = json.loads(reply["stdout"])
        return answer


class API:
    """The ASGI application."""

    def __init__(self, backend: Backend | Home, token: bytes, clock: Any = None) -> None:
        self.backend = InProcess(backend, clock) if isinstance(backend, Home) else backend
        self.expected = b"Bearer " + token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"] == "/enroll":
            await respond(send, 308, "text/plain", b"", [(b"location", b"/enroll/")])
            return
        if scope["path"].startswith("/enroll/"):
            await self.page(scope, send)
            return
        incoming = Incoming(scope, receive)
        try:
            status, body = await self.handle(scope, incoming)
        except KinkoError as exc:
            status = _status_for(exc)
            body = problem(status, str(exc))
        except Exception as exc:  # answer every request, never with a traceback
            status, body = 500, problem(500, f"unexpected {type(exc).__name__}")
        content_type = PROBLEM if status >= 400 else JSON
        await incoming.drain()  # a refusal made before the body was read is not lost to a reset
        extra = [(b"www-authenticate", b"Bearer")] if status == 401 else None
        await respond(send, status, content_type, body, extra)

    async def page(self, scope: Scope, send: Send) -> None:
        """The enrollment page's files: public, no token (the page never sees it; nginx adds it to
        the page's API calls)."""
        from kinko.ca.enroll_page import HEADERS, page_file

        if scope["method"] not in ("GET", "HEAD"):
            await respond(send, 405, PROBLEM, problem(405, f"{scope['method']} is not allowed on {scope['path']}"))
            return
        found = page_file(scope["path"])
        if found is None:
            await respond(send, 404, PROBLEM, problem(404, f"no such resource {scope['path']}"), HEADERS)
            return
        body, content_type = found
        await respond(send, 200, content_type, b"" if scope["method"] == "HEAD" else body, HEADERS)

    async def handle(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        authorization = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), b"")
        if not hmac.compare_digest(authorization, self.expected):
            return 401, problem(401, "missing or wrong bearer token")
        method, path = scope["method"], scope["path"]
        match = _STATUS_PATH.match(path)
        if match and method == "GET":
            return 200, _json(self.backend.run("api status", {"serial": match.group(1)}))
        routes = {
            "/v1/acquire": self.acquire,
            "/v1/renew": self.renew,
            "/v1/reacquire": self.reacquire,
            "/v1/enrollments": self.enrollments,
        }
        if path not in routes and not match:
            return 404, problem(404, f"no such resource {path}")
        if method != "POST" or match:
            return 405, problem(405, f"{method} is not allowed on {path}")
        try:
            raw = await read_body(scope, receive)
        except TooLarge:
            return 413, problem(413, f"request body over {MAX_BODY // 1024} KiB")
        except TimeoutError:
            return 408, problem(408, "request body too slow")
        # Only JSON: a text/plain or form POST needs no CORS preflight, so another site could make a
        # holder's browser send one through the front end that adds the token (and the client certificate).
        content_type = next((v for k, v in scope.get("headers", ()) if k == b"content-type"), b"")
        if content_type.split(b";")[0].strip().lower() != b"application/json":
            return 415, problem(415, "the request body must be application/json")
        try:
            body = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError):
            raise InputError("the request body is not JSON") from None
        except RecursionError:
            # json.loads recurses once per nesting level: [[[[...]]]] within 64 KiB overflows it.
            raise InputError("the request body nests too deeply; send a flat JSON object") from None
        if not isinstance(body, dict):
            raise InputError("the request body must be a JSON object")
        return await routes[path](scope, body)

    async def acquire(self, scope: Scope, body: dict[str, Any]) -> tuple[int, bytes]:
        params = {"code": _field(body, "code"), "csr": _field(body, "csr").encode(), "client": _client_address(scope)}
        return 201, _json(self.backend.run("api acquire", params))

    async def renew(self, scope: Scope, body: dict[str, Any]) -> tuple[int, bytes]:
        presented = _client_certificate(scope, "renewal")
        return 201, _json(
            self.backend.run("api renew", {"certificate": presented, "csr": _field(body, "csr").encode()})
        )

    async def reacquire(self, _scope: Scope, body: dict[str, Any]) -> tuple[int, bytes]:
        params = {
            "subscriber": _field(body, "subscriber"),
            "csr": _field(body, "csr").encode(),
            "signature": _base64_field(body, "signature"),
        }
        return 201, _json(self.backend.run("api reacquire", params))

    async def enrollments(self, scope: Scope, body: dict[str, Any]) -> tuple[int, bytes]:
        presented = _client_certificate(scope, "a user's enrollment")
        email = body.get("email")
        if email is not None and not isinstance(email, str):
            raise InputError("field 'email' must be a string")
        params = {"certificate": presented, "customer": _field(body, "customer"), "name": _field(body, "name")}
        return 201, _json(self.backend.run("api enroll", {**params, "email": email}))


def _status_for(error: KinkoError) -> int:
    for kind, status in _STATUSES.items():
        if isinstance(error, kind):
            return status
    # The CA service down or the store failing (exit 3 on the CLI): the front end may try again.
    return 503 if error.exit_code == 3 else 500


def _field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise InputError("field {name!r} is required (a string)", name=name)
    return value


def _client_address(scope: Scope) -> str:
    """Who typed a code, for the rate limit: the address the front end forwards, else the peer's."""
    forwarded = next((v for k, v in scope.get("headers", ()) if k == b"x-forwarded-for"), b"")
    # The right-most entry is the one the front end itself added; those before it the client may forge.
    text = forwarded.decode("latin-1").rsplit(",", 1)[-1].strip()
    if not text:
        peer = scope.get("client") or ("unknown", 0)
        return f"api:{peer[0]}"
    try:
        return f"api:{ipaddress.ip_address(text)}"
    except ValueError:
        raise InputError("X-Forwarded-For does not end with an IP address") from None


def _client_certificate(scope: Scope, what: str) -> bytes:
    """The client certificate the front end's TLS layer verified, from its URL-escaped PEM header."""
    escaped = next((v for k, v in scope.get("headers", ()) if k == CLIENT_CERTIFICATE_HEADER), b"")
    if not escaped.strip() and what == "renewal":
        raise PolicyError(
            "renewal is proved by the holder's client certificate: the front end passes the one its TLS "
            "layer verified in X-Client-Certificate"
        )
    if not escaped.strip():
        raise PolicyError(
            "a user's enrollment is proved by the holder's client certificate: the front end passes the one "
            "its TLS layer verified in X-Client-Certificate"
        )
    return urllib.parse.unquote_to_bytes(escaped)


def _base64_field(body: dict[str, Any], name: str) -> bytes:
    try:
        return base64.b64decode(_field(body, name), validate=True)
    except binascii.Error:
        raise InputError("field {name!r} must be base64", name=name) from None


def _json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def create_app() -> API:
    """ASGI factory for server workers: through the CA service when $KINKO_SOCKET is set (the
    token from $KINKO_API_TOKEN_FILE), else on the home in $KINKO_HOME."""
    socket_path = os.environ.get(SOCKET_ENV)
    if socket_path:
        return API(ThroughService(Path(socket_path)), read_token(Path(os.environ[TOKEN_FILE_ENV])))
    home = Home(resolve_home(None))
    home.require()
    return API(home, load_token(home))
