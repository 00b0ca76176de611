"""`kinko db migrate`: a home's SQLite database moved to PostgreSQL, verified there, and the
home's kinko.toml pointed at it; a move that does not verify leaves the home as it was."""

from __future__ import annotations

from pathlib import Path

from kinko.ca import config as config_module
from kinko.ca.errors import InputError, StorageError
from kinko.ca.files import write_atomically
from kinko.ca.hierarchy import check_database_password_file
from kinko.ca.home import Home
from kinko.ca.store import is_server
from kinko.ca.store.copy import Copied, copy_store
from kinko.ca.store.postgresql import shown


def migrate_home(home: Home, url: str, password_file: Path | None, actor: str, time: str) -> tuple[Copied, str]:
    """Copies the home's database to `url` and switches the home to it: (what was copied, the URL as shown)."""
    if is_server(home.database):
        raise InputError("this home's database is already {url}", url=shown(str(home.database)))
    if password_file is not None:
        password_file = password_file.resolve()
    check_database_password_file(password_file)
    source = home.store
    sealer = home.seal_checkpoint if source.authority("audit") is not None else None
    config_file = home.config_file
    before = config_file.read_bytes()
    mode = config_file.stat().st_mode & 0o777

    def switch() -> None:
        text = config_module.set_value(before.decode("utf-8"), "url", url)
        text = config_module.set_value(text, "password_file", str(password_file or ""))
        write_atomically(config_file, text.encode("utf-8"), mode)
        try:
            _verify_moved(home.path)
        except BaseException:
            write_atomically(config_file, before, mode)
            raise

    copied = copy_store(
        source,
        url,
        password_file,
        sealer=sealer,
        actor=actor,
        time=time,
        switch=switch,
    )
    return copied, shown(url)


def _verify_moved(path: Path) -> None:
    from kinko.ca.audit import verify_database

    moved = Home(path)
    try:
        report = verify_database(moved)
    finally:
        moved.readonly_store.close()
    if report.problem is not None:
        raise StorageError(
            "the copy does not verify (seq {seq}: {finding}); nothing was moved: the home still uses kinko.db",
            seq=report.problem.seq,
            finding=report.problem.finding,
        )
