"""Measuring a benchmark's child process: wall time, CPU time and peak RSS of that process alone."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GNU_TIME = "/usr/bin/time"
# Without GNU time: a small Python process runs the command and reports its child's rusage.
RUSAGE_WRAPPER = """\
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
u = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write(f"{u.ru_maxrss} {u.ru_utime} {u.ru_stime}\\n")
sys.exit(code)
"""


@dataclass(frozen=True)
class Run:
    wall_s: float  # the whole child process, start-up included
    cpu_s: float
    max_rss_kib: int
    stdout: bytes  # empty when it went to a file


def run_child(argv: list[str], env: dict[str, str] | None = None, stdout_file: Path | None = None) -> Run:
    """Runs one process and reads its max RSS and CPU time through a small parent process.

    Not wait4() on our own child: Linux carries the RSS high-water mark of the forking process
    across exec, so a child of this (large) Python process would report at least our RSS.
    """
    with tempfile.TemporaryDirectory() as tmp:
        usage_file, out_file = Path(tmp) / "rusage", stdout_file or Path(tmp) / "stdout"
        if Path(GNU_TIME).exists():
            wrapped = [GNU_TIME, "-f", "%M %U %S", "-o", str(usage_file), *argv]
        else:
            wrapped = [sys.executable, "-c", RUSAGE_WRAPPER, str(usage_file), *argv]
        with out_file.open("wb") as out, tempfile.TemporaryFile() as err:
            start = time.perf_counter()
            code = subprocess.call(wrapped, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=ROOT, env=env)
            wall = time.perf_counter() - start
            err.seek(0)
            if code != 0:
                raise RuntimeError(f"{' '.join(argv[:6])} failed ({code}): {err.read().decode(errors='replace')}")
        max_rss, user, system = usage_file.read_text().split("\n")[-2].split()
        output = b"" if stdout_file else out_file.read_bytes()
        return Run(wall, float(user) + float(system), int(max_rss), output)
