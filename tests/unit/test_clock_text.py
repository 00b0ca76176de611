"""Stored and printed times always have a four-digit year."""

from __future__ import annotations

import datetime as dt

from kinko.ca.clock import from_text, to_text


def test_early_years_are_written_with_four_digits() -> None:
    # An unpadded year ("1-01-01T...") reached the CRL encoder and made every CRL invalid DER.
    when = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
    assert to_text(when) == "0001-01-01T00:00:00Z"
    assert from_text(to_text(when)) == when
    assert to_text(dt.datetime(999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)) == "0999-12-31T23:59:59Z"
    assert to_text(dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)) == "2026-03-04T05:06:07Z"
