"""The README's officer's day, run for real: every command of its console examples, in order, in a
fresh directory outside the clone, each output compared in shape with the one the README shows.

Shape is the fields, the messages and the exit code. Serials, fingerprints, codes and times stand for
whatever this run made, but a serial the README showed before must be the same certificate again,
and a command that names one gets this run's. Run from the clone, after `sh tests/run.sh`:

    .venv/bin/python tests/readme_walk.py [--readme README.md] [--keep]
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLONE = Path(__file__).resolve().parent.parent
SECTION = "## An officer's day"
WILDCARD = "..."
COMMAND_TIMEOUT = 120
SERVER_START = 30.0
# What a machine without a syslog daemon (a container) adds to every command; the README says so once.
NOISE = re.compile(r"^kinko: (?:warning|警告): syslog ?ソケット|^kinko: warning: syslog socket .* is absent")

# Values that differ from run to run. Order matters: the longer forms first.
TOKENS = {
    "fingerprint": r"(?:[0-9A-F]{2}:){31}[0-9A-F]{2}",
    "colon_serial": r"(?:[0-9A-Fa-f]{2}:){14,19}[0-9A-Fa-f]{2}",
    # A time as people read it, in the bank's zone ([display] timezone), then as stored and in JSON.
    "shown_time": r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [+-]\d{2}:\d{2}",
    "time": r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:Z|[+-]\d{2}:\d{2})",
    "gmt_time": r"[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4} GMT",
    "code": r"[0-9A-Z]{4}(?:-[0-9A-Z]{4}){6}",
    "hash": r"[0-9a-f]{64}",
    "serial": r"[0-9A-F]{30,40}",
    # A certificate's days left: 365 or 366, by the calendar of the day the walk runs.
    "year_days": r"36[56]",
}
# Tokens a later command or output may name again: learnt from the README's output and this run's.
NAMED = {"fingerprint", "colon_serial", "code", "hash", "serial"}
TOKEN = re.compile("|".join(rf"(?P<{kind}>(?<![0-9A-Za-z]){rx}(?![0-9A-Za-z]))" for kind, rx in TOKENS.items()))


@dataclass
class Step:
    """One command of the README and the output it shows."""

    line: int
    command: str
    as_root: bool
    expected: list[str] = field(default_factory=list)

    @property
    def expected_rc(self) -> str:
        """'0', '1', '2' or 'non-zero', from the output shown: an error line means a refusal."""
        for text in self.expected:
            if text.startswith(("kinko: error:", "kinko: エラー:")):  # English or Japanese
                return "2" if "--help" in text else "1"
            if text.startswith("error "):
                return "non-zero"
        return "0"

    @property
    def serves(self) -> bool:
        """A server the examples after it talk to: it runs in the background until the example ends."""
        return re.search(r"\bkinko\b.* (ocsp|api) serve\b|\btry-locally\.sh\b", self.command) is not None


def canonical(token: str) -> str:
    """The form a token is known by: a serial with or without colons, in either case, is one serial."""
    return token.upper() if re.fullmatch(TOKENS["fingerprint"], token.upper()) else token.replace(":", "").upper()


def examples(readme: str) -> list[list[Step]]:
    """The console examples of the officer's day, each a list of steps."""
    lines = readme.splitlines()
    start = next((i for i, text in enumerate(lines) if text.strip() == SECTION), None)
    if start is None:
        raise SystemExit(f"README walk: the README has no section {SECTION!r}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    blocks: list[list[Step]] = []
    block: list[Step] | None = None
    pending = ""
    for number in range(start, end):
        text = lines[number]
        if block is None:
            if text.strip() == "```console":
                block = []
            continue
        if text.strip() == "```":
            blocks.append(block)
            block = None
            continue
        if pending:  # a continued command line
            pending += " " + text.strip()
            if pending.endswith("\\"):
                pending = pending[:-1].rstrip()
            else:
                block[-1].command, pending = pending, ""
            continue
        if text.startswith(("$ ", "# ")):
            command = text[2:].strip()
            block.append(Step(number + 1, command, text.startswith("# ")))
            if command.endswith("\\"):
                pending = command[:-1].rstrip()
            continue
        if not block:
            raise SystemExit(f"README.md:{number + 1}: output before any command in a console example")
        block[-1].expected.append(text.rstrip())
    return blocks


class Walk:
    """The run's state: the directory, the values learnt so far and the differences found."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.known: dict[str, str] = {}  # README's token (canonical) -> this run's
        self.differences: list[str] = []
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("KINKO_")}
        # What `. .venv/bin/activate` does.
        self.env["PATH"] = f"{CLONE / '.venv' / 'bin'}:{self.env.get('PATH', '/usr/bin:/bin')}"
        self.env["VIRTUAL_ENV"] = str(CLONE / ".venv")
        self.env["LANG"] = self.env["LC_ALL"] = "C.UTF-8"

    def shell(self) -> dict[str, Any]:
        """How every command runs: in the work directory, no terminal, stderr with stdout as a terminal shows."""
        return {
            "cwd": self.work,
            "env": self.env,
            "stdin": subprocess.DEVNULL,
            "stdout": subprocess.PIPE,
            "stderr": subprocess.STDOUT,
            "text": True,
        }

    def differ(self, step: Step, what: str) -> None:
        self.differences.append(f"README.md:{step.line}: `{step.command}`: {what}")

    def substitute(self, step: Step) -> str | None:
        """The command with this run's values for the README's; None if it names one never shown."""
        unknown: list[str] = []

        def replace(match: re.Match[str]) -> str:
            kind = match.lastgroup or ""
            token = match.group()
            if kind not in NAMED:
                return token
            value = self.known.get(canonical(token))
            if value is None:
                unknown.append(token)
                return token
            if kind == "colon_serial":  # said again in the form the README typed it
                value = ":".join(value[i : i + 2] for i in range(0, len(value), 2))
                return value.lower() if token == token.lower() else value
            return value

        command = TOKEN.sub(replace, step.command)
        if unknown:
            self.differ(step, f"names {', '.join(unknown)}, which no output before it shows")
            return None
        return command

    def pattern(self, expected: str) -> tuple[re.Pattern[str], dict[str, str]]:
        """A regular expression for one line of the README's output, and its groups' README tokens."""
        groups: dict[str, str] = {}
        pieces: list[str] = []
        position = 0
        for match in TOKEN.finditer(expected):
            pieces.append(literal(expected[position : match.start()]))
            kind, token = match.lastgroup or "", match.group()
            value = self.known.get(canonical(token)) if kind in NAMED else None
            if value is not None:  # shown before: must be the same value again
                pieces.append(re.escape(value))
            elif kind in NAMED:
                name = f"g{len(groups)}"
                groups[name] = token
                pieces.append(f"(?P<{name}>{TOKENS[kind]})")
            else:
                pieces.append(f"(?:{TOKENS[kind]})")
            position = match.end()
        pieces.append(literal(expected[position:]))
        return re.compile(rf"\s*{''.join(pieces)}\s*"), groups

    def match(self, expected: list[str], actual: list[str]) -> dict[str, str] | None:
        """Matches the README's lines (with `...` for any lines) against the run's; the tokens learnt."""
        patterns = [None if text.strip() == WILDCARD else self.pattern(text) for text in expected]

        def at(i: int, j: int) -> dict[str, str] | None:
            if i == len(patterns):
                return {} if j == len(actual) else None
            here = patterns[i]
            if here is None:
                for k in range(j, len(actual) + 1):
                    rest = at(i + 1, k)
                    if rest is not None:
                        return rest
                return None
            if j == len(actual):
                return None
            regex, groups = here
            found = regex.fullmatch(actual[j])
            if found is None:
                return None
            rest = at(i + 1, j + 1)
            if rest is None:
                return None
            for name, value in found.groupdict().items():
                token = groups[name]
                if rest.get(token, value) != value:
                    return None  # one README value, two of this run's
                rest[token] = value
            return rest

        return at(0, 0)

    def learn(self, step: Step, learnt: dict[str, str]) -> None:
        for token, made in learnt.items():
            key, value = canonical(token), canonical(made)
            clash = next((readme for readme, ours in self.known.items() if ours == value and readme != key), None)
            if clash is not None:
                self.differ(step, f"the README shows {token} here and {clash} before; this run made one value")
            self.known[key] = value

    def compare(self, step: Step, output: str, rc: int | None) -> None:
        actual = [line.rstrip() for line in output.splitlines() if not NOISE.match(line)]
        while actual and not actual[-1]:
            actual.pop()
        expected = list(step.expected)
        while expected and not expected[-1]:
            expected.pop()
        want = step.expected_rc
        if rc is not None and not (str(rc) == want or (want == "non-zero" and rc != 0)):
            self.differ(step, f"exit code {rc}, the README implies {want}; it printed:\n{indent(actual)}")
            return
        if not expected:
            return  # the README shows no output: only the exit code counts
        learnt = self.match(expected, actual)
        if learnt is None:
            self.differ(step, f"the output differs.\n  README:\n{indent(expected)}\n  this run:\n{indent(actual)}")
            return
        self.learn(step, learnt)

    def run(self, step: Step, servers: list[subprocess.Popen[str]]) -> None:
        command = self.substitute(step)
        if command is None:
            return
        login = account_of(step)
        if login is not None and exists(login):
            return  # "if the auditor has no OS account yet": this machine has it
        if step.as_root and os.geteuid() != 0:
            self.differ(step, "the README runs this as root (#); run the walk as root")
            return
        if step.serves:
            self.serve(step, command, servers)
            return
        try:
            done = subprocess.run(["bash", "-c", command], **self.shell(), timeout=COMMAND_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            self.differ(step, f"did not finish within {COMMAND_TIMEOUT} s")
            return
        self.compare(step, done.stdout, done.returncode)

    def serve(self, step: Step, command: str, servers: list[subprocess.Popen[str]]) -> None:
        """Starts a server in the background and compares what it says once it listens."""
        port = re.search(r"--port (\d+)", command)
        if port is None:
            self.differ(step, "a server example must name its --port")
            return
        if listening(int(port.group(1))):  # something else would answer in its place
            self.differ(step, f"port {port.group(1)} is in use before the example starts its server")
            return
        process = subprocess.Popen(["bash", "-c", f"exec {command}"], **self.shell(), start_new_session=True)
        servers.append(process)
        said: list[str] = []
        reader = threading.Thread(target=lambda: said.extend(process.stdout or []), daemon=True)
        reader.start()
        deadline = time.monotonic() + SERVER_START
        while time.monotonic() < deadline and process.poll() is None and not listening(int(port.group(1))):
            time.sleep(0.1)
        if process.poll() is not None:
            reader.join(5)
            self.compare(step, "".join(said), process.returncode)
            return
        if not listening(int(port.group(1))):
            self.differ(step, f"nothing listens on port {port.group(1)} after {SERVER_START:.0f} s")
            return
        time.sleep(0.5)  # its first line is written before it binds; give the pipe a moment
        if process.poll() is not None:
            self.differ(step, f"the server exited ({process.returncode}) just after it began to listen")
            return
        self.compare(step, "".join(said), None)


def literal(text: str) -> str:
    """Text as a regular expression, each run of white space standing for any: tables align to the run's widths."""
    return "".join(r"\s+" if part.isspace() else re.escape(part) for part in re.split(r"(\s+)", text) if part)


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def indent(lines: list[str]) -> str:
    return "\n".join(f"    | {line}" for line in lines) or "    | (nothing)"


def stop(servers: list[subprocess.Popen[str]]) -> None:
    for process in servers:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    servers.clear()


def account_of(step: Step) -> str | None:
    """The login a `useradd` example creates, if the step is one."""
    made = re.fullmatch(r"useradd(?: -\S+)* (\S+)(?:\s+#.*)?", step.command)
    return made.group(1) if made is not None else None


def exists(login: str) -> bool:
    try:
        pwd.getpwnam(login)
    except KeyError:
        return False
    return True


def accounts_made(blocks: list[list[Step]]) -> Iterator[str]:
    """The OS accounts the README's `useradd` examples create, that this machine does not have yet
    (the walk removes them at its end; an account that was there it leaves, and skips the step)."""
    for block in blocks:
        for step in block:
            login = account_of(step)
            if login is not None and not exists(login):
                yield login


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=CLONE / "README.md")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    blocks = examples(args.readme.read_text(encoding="utf-8"))
    made = list(accounts_made(blocks))
    work = Path(tempfile.mkdtemp(prefix="kinko-readme-walk-"))
    work.chmod(0o700)
    walk = Walk(work)
    servers: list[subprocess.Popen[str]] = []
    commands = 0
    try:
        for block in blocks:
            try:
                for step in block:
                    walk.run(step, servers)
                    commands += 1
            finally:
                stop(servers)
    finally:
        for login in made:
            subprocess.run(["userdel", login], capture_output=True, check=False)
        if args.keep:
            print(f"README walk: the work directory is {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for difference in walk.differences:
        print(difference, file=sys.stderr)
    if walk.differences:
        print(f"README walk: {len(walk.differences)} difference(s) in {commands} commands", file=sys.stderr)
        return 1
    print(f"README walk: {commands} commands in {len(blocks)} examples ran as the README shows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
