"""Time for Kinko: the system clock, and a settable clock for tests."""

from __future__ import annotations

import datetime as dt
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


BANK_ZONE = "Asia/Tokyo"  # where a date typed alone (2026-12-02) begins: the bank's day


def parse_user_time(text: str, what: str) -> dt.datetime:
    """Parses an ISO 8601 time typed by a person; it must carry a zone (Z or +09:00). A date
    alone (2026-12-02) means the start of that day in the bank's zone (JST)."""
    import re

    from kinko.ca.errors import InputError

    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
        from zoneinfo import ZoneInfo

        try:
            day = dt.date.fromisoformat(text.strip())
            return dt.datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(BANK_ZONE)).astimezone(UTC)
        except (ValueError, OverflowError):  # no such day, or one at the edge of the calendar
            raise InputError("{what} {text!r} is not a date (e.g. 2026-12-02)", what=what, text=text) from None
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
        if when.tzinfo is not None:
            when.astimezone(UTC)  # years at the edge of the calendar overflow here
    except (ValueError, OverflowError):
        raise InputError(
            "{what} {text!r} is not an ISO 8601 time (e.g. 2026-11-25T10:00:00+09:00)", what=what, text=text
        ) from None
    if when.tzinfo is None:
        raise InputError("{what} {text!r} has no time zone; add Z or an offset such as +09:00", what=what, text=text)
    return when.astimezone(UTC).replace(microsecond=0)
