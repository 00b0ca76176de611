"""Finding and running the real third-party tools the interop tests drive."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TIMEOUT = 60  # seconds any one tool run may take

_HINTS = {
    "lint_pkix_cert": "install the test extra: pip install -e '.[test]'",
    "lint_crl": "install the test extra: pip install -e '.[test]'",
    "lint_ocsp_response": "install the test extra: pip install -e '.[test]'",
    "certtool": "install GnuTLS's tools: apt-get install gnutls-bin",
    "ocsptool": "install GnuTLS's tools: apt-get install gnutls-bin",
    "curl": "install curl: apt-get install curl",
    "nginx": "install nginx: apt-get install nginx",
    "certutil": "install NSS tools: apt-get install libnss3-tools",
    "crlutil": "install NSS tools: apt-get install libnss3-tools",
    "vfychain": "install NSS tools: apt-get install libnss3-tools",
    "chromium": "install Chromium: apt-get install chromium chromium-driver fonts-ipafont-gothic",
    "chromedriver": "install Chromium's driver: apt-get install chromium-driver",
    "java": "install a JDK: apt-get install default-jdk-headless",
    "javac": "install a JDK: apt-get install default-jdk-headless",
}


def tool(name: str) -> str:
    """The path of a tool, failing (never skipping) the test when it is missing."""
    # pkilint's commands live beside the interpreter when the test extra is in a venv that is not activated.
    # nginx is in /usr/sbin, off a non-root PATH.
    path = shutil.which(name) or shutil.which(name, path=f"{Path(sys.executable).parent}:/usr/sbin:/sbin")
    if path is None:
        pytest.fail(f"{name} is not on PATH; {_HINTS.get(name, 'install OpenSSL: apt-get install openssl')}")
    return path


def run(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    """Runs a command, capturing its output, bounded in time."""
    return subprocess.run([str(a) for a in args], capture_output=True, timeout=TIMEOUT, check=False)


def output(result: subprocess.CompletedProcess[bytes]) -> str:
    """A run's stdout and stderr as text."""
    return result.stdout.decode("utf-8", "replace") + result.stderr.decode("utf-8", "replace")


def openssl(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    """Runs `openssl ARGS`."""
    return run(tool("openssl"), *args)
