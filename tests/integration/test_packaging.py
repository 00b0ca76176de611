"""The distribution installs Kinko under kinko.* only: the wheel holds every module of the
top-level folders, and a fresh virtualenv can import kinko.ca but not the bare `ca`."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

FOLDERS = ("ca", "ocsp", "crl", "config")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (found,) = out.glob("kinko-*.whl")
    return found


def test_the_wheel_holds_every_module_under_kinko(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"kinko/cli.py"} | {
        f"kinko/{path.relative_to(ROOT).as_posix()}"
        for folder in FOLDERS
        for path in (ROOT / folder).rglob("*")
        if path.suffix in (".py", ".toml", ".sql", ".mo") and "__pycache__" not in path.parts
    }
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"
    bare = {name for name in names if name.split("/")[0] in (*FOLDERS, "cli.py")}
    assert not bare, f"installed under a bare top-level name: {sorted(bare)}"


def test_a_fresh_virtualenv_imports_kinko_ca_and_not_ca(wheel: Path, tmp_path: Path) -> None:
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    probe = (
        "import importlib.util, kinko.ca.errors, kinko.ca.clock\n"
        "assert importlib.util.find_spec('kinko.cli') is not None\n"
        "for bare in ('ca', 'ocsp', 'crl', 'config', 'cli'):\n"
        "    try:\n"
        "        __import__(bare)\n"
        "    except ImportError:\n"
        "        continue\n"
        "    raise SystemExit(f'bare {bare} imports')\n"
        "from kinko.ca.i18n import _, speaking\n"
        "with speaking('ja'):\n"
        "    assert _('Usage:') == '使い方:', 'the Japanese catalogue is not in the wheel'\n"
        "print(kinko.ca.errors.__file__)\n"
    )
    result = subprocess.run(
        [python, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().startswith(str(environment)), result.stdout


def test_the_tests_cannot_import_the_bare_names() -> None:
    with pytest.raises(ImportError, match=r"import kinko\.ca"):
        __import__("ca")
