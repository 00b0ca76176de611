"""Schema versions and migrations, numbered the same for every backend.

Each backend ships its complete DDL for a new database (`<backend>.sql` beside this module)
and one file per migration, `migrations/<backend>/NNNN_name.sql`, which takes a database from
version NNNN - 1 to NNNN. Version 1 is the schema the first release created; it has no file.
A backend added later starts at a higher version (FIRST_VERSION): no database of it is older,
and from there on each migration number exists for every backend.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from kinko.ca.errors import SchemaVersionError

SCHEMA_VERSION = 4
# The version each backend's first databases had.
FIRST_VERSION = {"sqlite": 1, "postgresql": 4}

_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class Migration(NamedTuple):
    """One numbered step: its number (the version it produces), its name and its SQL."""

    number: int
    name: str
    sql: str


def ddl(backend: str) -> str:
    """The complete DDL of a new database for a backend (e.g. 'sqlite')."""
    from importlib import resources  # here: only creating and upgrading read the files

    return resources.files(__package__).joinpath(f"{backend}.sql").read_text(encoding="utf-8")


def migrations(backend: str) -> list[Migration]:
    """Every migration of a backend, in order: numbers FIRST_VERSION + 1..SCHEMA_VERSION, none missing."""
    from importlib import resources

    found = []
    folder = resources.files(__package__).joinpath("migrations", backend)
    for entry in folder.iterdir() if folder.is_dir() else ():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), entry.name.removesuffix(".sql"), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.number)
    # A gap or an extra step would upgrade to a schema no fresh database has: refuse to run at all.
    first = FIRST_VERSION[backend] + 1
    if [m.number for m in found] != list(range(first, SCHEMA_VERSION + 1)):
        raise RuntimeError(
            f"the {backend} migrations are not numbered {first}..{SCHEMA_VERSION}: {[m.name for m in found]}"
        )
    return found


def check_version(found: int, database: str, upgrading: bool = False) -> None:
    """Refuses a database newer than this code, or older unless it is being upgraded."""
    if found > SCHEMA_VERSION:
        raise SchemaVersionError(
            "database {path} has schema version {found}, newer than this Kinko's {version}: upgrade Kinko",
            path=database,
            found=found,
            version=SCHEMA_VERSION,
        )
    if found < SCHEMA_VERSION and not upgrading:
        raise SchemaVersionError(
            "database {path} has schema version {found}, older than this Kinko's {version}: run `kinko db upgrade`",
            path=database,
            found=found,
            version=SCHEMA_VERSION,
        )
