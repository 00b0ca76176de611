"""The holder's enrollment page (ca/web/enroll/): static files the API serves under /enroll/, with a
Content-Security-Policy that lets the page run its own script and talk to its own origin only."""

from __future__ import annotations

from functools import cache
from pathlib import Path

PREFIX = "/enroll/"
_DIRECTORY = Path(__file__).resolve().parent / "web" / "enroll"
_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "login.html": "text/html; charset=utf-8",
    "refused.html": "text/html; charset=utf-8",
    "enroll.css": "text/css; charset=utf-8",
    "enroll.js": "text/javascript; charset=utf-8",
}
# No inline script or style, nothing from elsewhere, no framing: the key is made on this page.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode("ascii")),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cache-control", b"no-cache"),
]


@cache
def _read(name: str) -> bytes:
    return (_DIRECTORY / name).read_bytes()


def page_file(path: str) -> tuple[bytes, str] | None:
    """The body and Content-Type of a page path (`/enroll/` is the page itself); None if no such file."""
    name = path.removeprefix(PREFIX) or "index.html"
    content_type = _TYPES.get(name)
    return None if content_type is None else (_read(name), content_type)
