"""Kinko's tests. Importing this package first makes the bare folder names unimportable."""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence

BARE_NAMES = frozenset({"ca", "ocsp", "crl", "config", "cli"})


class _RefuseBareNames(importlib.abc.MetaPathFinder):
    """Fails `import ca` and its kin in the test session: pytest puts the repository on sys.path, where
    the bare folder names would load second copies of Kinko's modules, and a test patching one of them
    would test nothing. Only the installed names, kinko.*, exist for the tests."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: object = None) -> None:
        if path is None and fullname in BARE_NAMES:
            raise ImportError(f"import kinko.{fullname}, not the bare {fullname!r}")
        return None


sys.meta_path.insert(0, _RefuseBareNames())
