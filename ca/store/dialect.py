"""What differs between the SQL of the two backends, in one place: the queries shared by both
(accounts.py, reads.py, writer.py) ask the dialect for these few fragments."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    """One backend's spelling of the constructs SQLite and PostgreSQL write differently."""

    name: str
    # `a IS NOT b` that treats NULLs as values.
    is_not: str
    # The exceptions a unique or foreign-key constraint raises.
    integrity_errors: tuple[type[Exception], ...]

    def json_text(self, column: str, key: str) -> str:
        """A top-level member of a JSON text column, as text (NULL when absent or null)."""
        if self.name == "sqlite":
            return f"json_extract({column}, '$.{key}')"
        return f"({column}::jsonb ->> '{key}')"

    def json_equals_integer(self, column: str, key: str) -> str:
        """A condition: a top-level JSON member equals the integer parameter that follows."""
        if self.name == "sqlite":
            return f"json_extract({column}, '$.{key}') = ?"
        return f"({column}::jsonb -> '{key}') = to_jsonb(?::bigint)"

    def unindexed(self, column: str) -> str:
        """A column in a condition that should not pick an index (SQLite's planner needs the hint)."""
        return f"+{column}" if self.name == "sqlite" else column


def sqlite() -> Dialect:
    import sqlite3

    return Dialect("sqlite", "IS NOT", (sqlite3.IntegrityError,))


def postgresql() -> Dialect:
    import psycopg

    return Dialect("postgresql", "IS DISTINCT FROM", (psycopg.errors.IntegrityError,))
