"""The import rules import-linter cannot state (.importlinter): cli.py is a module, not a package."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT


def imported(path: Path) -> set[str]:
    """Every module a file imports, at any depth of the file (lazy imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_nothing_imports_cli() -> None:
    for folder in ("ca", "ocsp", "crl", "config"):
        for path in (ROOT / folder).rglob("*.py"):
            offending = {name for name in imported(path) if name == "kinko.cli" or name.startswith("kinko.cli.")}
            assert not offending, f"{path.relative_to(ROOT)} imports {offending}"


def test_cli_only_assembles_the_command_layer() -> None:
    kinko_imports = {name for name in imported(ROOT / "cli.py") if name.startswith("kinko.")}
    allowed = ("kinko.ca.commands", "kinko.ca.locations")
    assert kinko_imports, "cli.py imports nothing of Kinko: the check below would prove nothing"
    assert all(name.startswith(allowed) for name in kinko_imports), kinko_imports
