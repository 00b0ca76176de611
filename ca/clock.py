"""Time for Kinko: the system clock, and a settable clock for tests."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Protocol

UTC = dt.UTC


class Clock(Protocol):
    """Something that tells the current time as an aware UTC datetime."""

    def now(self) -> dt.datetime: ...


class SystemClock:
    """The real clock, truncated to whole seconds as X.509 times are."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC).replace(microsecond=0)


class FixedClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, start: dt.datetime) -> None:
        self._now = as_utc(start)

    def now(self) -> dt.datetime:
        return self._now

    def set(self, when: dt.datetime) -> None:
        """Sets the time."""
        self._now = as_utc(when)

    def advance(self, **delta: float) -> dt.datetime:
        """Moves the clock forward by a timedelta given as keywords."""
        self._now = self._now + dt.timedelta(**delta)
        return self._now


def as_utc(when: dt.datetime) -> dt.datetime:
    """Returns an aware UTC datetime; naive input is refused because it is ambiguous."""
    if when.tzinfo is None:
        raise ValueError("naive datetime: Kinko needs timezone-aware times")
    return when.astimezone(UTC)


def to_text(when: dt.datetime | None) -> str | None:
    """Formats a time as ISO 8601 UTC with a Z, the form stored and printed."""
    if when is None:
        return None
    utc = as_utc(when)
    # Not strftime("%Y"): glibc writes year 1 as "1", and an unpadded year in a CRL is invalid DER.
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}Z"


def from_text(text: str | None) -> dt.datetime | None:
    """Parses a stored ISO 8601 time back to an aware UTC datetime."""
    if text is None:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


BANK_ZONE = "Asia/Tokyo"  # a JP CA's zone for people (`[display] timezone`), unless kinko.toml says otherwise

# The zone people read times in, the home's `[display] timezone`: per process in the CLI, per
# request in the CA service. Stored, JSON and ledger times stay UTC whatever it is.
# A home's zone is read from its configuration only when a time is first shown: opening a home
# must not read kinko.toml before the command's own checks (a home this account cannot read).
ZoneSource = dt.tzinfo | Callable[[], dt.tzinfo | None] | None
_display_zone: ContextVar[ZoneSource] = ContextVar("kinko_display_zone", default=None)
STORED_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def zone_named(name: str) -> dt.tzinfo:
    """The IANA zone of that name (Asia/Tokyo, UTC); KeyError when there is none."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: not a zone's name at all (../x, "")
        raise KeyError(name) from None


def display_zone() -> dt.tzinfo:
    """The zone times are shown in now (UTC until a home says otherwise)."""
    source = _display_zone.get()
    if callable(source):
        source = source() or UTC
        _display_zone.set(source)  # read once
    return source or UTC


def show_times_in(zone: ZoneSource) -> None:
    """From now on in this context, times for people are in `zone` (or the zone it returns when
    first needed; None: UTC)."""
    _display_zone.set(zone)


@contextlib.contextmanager
def showing_times_in(zone: ZoneSource) -> Iterator[None]:
    """Times shown inside are in `zone`: one service request, in its home's zone."""
    token = _display_zone.set(zone)
    try:
        yield
    finally:
        _display_zone.reset(token)


def shown(when: dt.datetime | str) -> str:
    """A time as people read it: `2027-11-25 19:46:08 +09:00`, in the display zone, offset always given."""
    moment = from_text(when) if isinstance(when, str) else as_utc(when)
    assert moment is not None
    local = moment.astimezone(display_zone())
    offset = local.utcoffset() or dt.timedelta(0)
    sign, minutes = ("-" if offset < dt.timedelta(0) else "+"), abs(int(offset.total_seconds())) // 60
    return f"{local.year:04d}-{local:%m-%d %H:%M:%S} {sign}{minutes // 60:02d}:{minutes % 60:02d}"


def shown_if_time(value: object) -> object:
    """A stored time (text or datetime) as people read it; any other value as it is."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return shown(value)
    if isinstance(value, str) and STORED_TIME.fullmatch(value):
        try:
            return shown(value)
        except (ValueError, OverflowError):  # 9999-12-31T23:59:59Z in a zone east of UTC: as stored
            return value
    return value


def parse_user_time(text: str, what: str) -> dt.datetime:
    """Parses an ISO 8601 time typed by a person; it must carry a zone (Z or +09:00). A date
    alone (2026-12-02) means the start of that day in the bank's zone (JST). A time as Kinko
    shows it (2027-11-25 19:46:08 +09:00) is taken too, so an officer can paste it back."""
    from kinko.ca.errors import InputError

    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
        from zoneinfo import ZoneInfo

        try:
            day = dt.date.fromisoformat(text.strip())
            return dt.datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(BANK_ZONE)).astimezone(UTC)
        except (ValueError, OverflowError):  # no such day, or one at the edge of the calendar
            raise InputError("{what} {text!r} is not a date (e.g. 2026-12-02)", what=what, text=text) from None
    try:
        typed = re.sub(r"(\d) ([+-]\d{2}:\d{2})$", r"\1\2", text.strip())  # the shown form's space
        when = dt.datetime.fromisoformat(typed.replace("z", "Z").replace("Z", "+00:00"))
        if when.tzinfo is not None:
            when.astimezone(UTC)  # years at the edge of the calendar overflow here
    except (ValueError, OverflowError):
        raise InputError(
            "{what} {text!r} is not an ISO 8601 time (e.g. 2026-11-25T10:00:00+09:00)", what=what, text=text
        ) from None
    if when.tzinfo is None:
        raise InputError("{what} {text!r} has no time zone; add Z or an offset such as +09:00", what=what, text=text)
    return when.astimezone(UTC).replace(microsecond=0)
