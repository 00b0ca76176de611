"""The Click CLI, built from the command registry.

Each operation becomes a `RoleCommand` whose options come from its params dataclass. Before it
runs, the command checks that the operator holds the role the operation needs (a refusal is
recorded in the ledger); Kinko errors leave as one line on stderr and the error's exit code.
Top-level names load their module only when used, so quick reads start fast.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kinko.ca.clock import showing_times_in
from kinko.ca.commands import INDEX
from kinko.ca.errors import InputError, KinkoError
from kinko.ca.i18n import N_, _, render

if TYPE_CHECKING:
    from kinko.ca.commands.registry import Context, Operation
    from kinko.ca.commands.render import Output

# Exit codes: 1 refused / bad input / not found, 2 usage, 3 unexpected failure.
EXIT_UNEXPECTED = 3


# The top-level command's texts (cli.py), here so that the catalogue's extraction finds them.
CLI_HELP = "Kinko: a private CA for client-certificate login."
HOME_HELP = "CA home directory, opened directly even when $KINKO_SOCKET is set (default: $KINKO_HOME or ./kinko-home)."
JSON_HELP = "Machine-readable JSON output."
SOCKET_HELP = "Run commands through the CA service listening here ($KINKO_SOCKET)."


class CLIState:
    """What the top-level options and the test harness set: the home, output mode, clock, actor."""

    def __init__(
        self,
        home_path: Path,
        as_json: bool,
        clock: Any = None,
        actor: str | None = None,
        socket: Path | None = None,
        *,
        socket_typed: bool = False,
    ) -> None:
        self.home_path = home_path
        self.as_json = as_json
        # With a socket, every operation but the local ones (servers, init) runs in the CA service.
        self.socket = socket
        self.socket_typed = socket_typed
        self.clock = clock
        self.actor = actor
        self._context: Context | None = None

    def use_home(self, path: Path) -> None:
        """A --home typed on the command line: direct mode on it, whatever $KINKO_SOCKET says."""
        if self.socket is not None and self.socket_typed:
            raise click.UsageError("give --home (direct mode) or --socket (the CA service), not both")
        self.home_path, self.socket = path, None

    @property
    def context(self) -> Context:
        """The operations' context: one per command, so the home is opened once."""
        from kinko.ca.commands.registry import Context

        if self._context is None:
            self._context = Context(
                self.home_path,
                clock=self.clock,
                actor=self.actor,
                # A prompt is the last resort, and only where someone can answer it.
                prompt=_tty_prompt if sys.stdin.isatty() else None,
                progress=self._progress,
                counter=self._counter,
                socket=self.socket,
            )
        return self._context

    @property
    def output(self) -> Output:
        from kinko.ca.commands.render import Output

        return Output(self.as_json)

    def _progress(self, label: str) -> Any:
        """A callback drawing a progress bar on a terminal, or None."""
        if self.as_json or not sys.stderr.isatty():
            return None
        state: dict[str, Any] = {}

        def update(done: int, total: int) -> None:
            if "bar" not in state:
                state["bar"] = click.progressbar(length=total, label=_(label), file=sys.stderr)
                state["bar"].__enter__()
                state["done"] = 0
            # By how far it moved: the service streams some of the steps, not every one.
            state["bar"].update(done - state["done"])
            state["done"] = done
            if done == total:
                state["bar"].__exit__(None, None, None)

        return update

    def _counter(self, label: str) -> Any:
        if self.as_json or not sys.stderr.isatty():
            return None
        return lambda count: click.echo(f"\r{count} {_(label)}", nl=False, err=True)


def _tty_prompt(label: str) -> str:
    return str(click.prompt(label, hide_input=True))


def fail(ctx: click.Context, message: str, exit_code: int) -> None:
    """A Kinko error on its way out: one line on stderr and the error's exit code."""
    click.echo(render(N_("kinko: error: {message}"), {"message": message}), err=True)
    ctx.exit(exit_code)


def require_role(state: CLIState, needed: str, command: str) -> None:
    """Checks the operator's role for a command; a refusal is recorded in the ledger."""
    from kinko.ca.officers import authorize

    context = state.context
    home = context.home()
    home.require()
    authorize(home, context.login(), command, needed, context.now_text())


class RoleCommand(click.Command):
    """A command that checks, before running, that the operator holds the role it needs."""

    def __init__(self, operation: Operation[Any, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.operation = operation

    def invoke(self, ctx: click.Context) -> Any:
        state = ctx.find_object(CLIState)
        assert state is not None
        # --home and --json are accepted after the subcommand too.
        home, as_json = ctx.params.pop("home_override", None), ctx.params.pop("json_override", False)
        if home is not None:
            from kinko.ca.locations import resolve_home

            state.use_home(resolve_home(str(home)))
        state.as_json = state.as_json or as_json
        if state.socket is not None and not self.operation.local:
            return super().invoke(ctx)  # the service checks the role, by the kernel's word for who we are
        if self.operation.opens_older_schema:
            # Before the role check, which is the first to open the store.
            state.context.home().upgrading = True
        if self.operation.role is not None:
            require_role(state, self.operation.role, self.operation.path)
        return super().invoke(ctx)


class KinkoGroup(click.Group):
    """The top-level group: loads command modules on demand and maps Kinko errors, and anything
    unexpected, to one line and an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(INDEX)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Click's main, with a usage error as one line (`kinko: error: ...; see kinko X --help`), exit 2."""
        from kinko.ca.i18n import click_speaking

        with click_speaking():
            self._speak()
            return self._main(args, prog_name, complete_var, standalone_mode, **extra)

    def _main(
        self,
        args: Sequence[str] | None,
        prog_name: str | None,
        complete_var: str | None,
        standalone_mode: bool,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # a bare `kinko` or `kinko cert`: the help, as Click shows it
                exc.show()
                sys.exit(exc.exit_code)
            where = exc.ctx.command_path if exc.ctx is not None else "kinko"
            # One line: Click lists a choice's values on lines of their own.
            said = {"message": " ".join(exc.format_message().split()).rstrip(".。"), "command": where}
            click.echo(render(N_("kinko: error: {message}; see `{command} --help`"), said), err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(render(N_("kinko: error: {message}"), {"message": exc.format_message()}), err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo(_("kinko: error: interrupted; nothing more was done"), err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def _speak(self) -> None:
        """The top-level help and options in the reader's language (from their English sources)."""
        from kinko.ca.i18n import current

        # Commands are built with their help translated: ones built in another language are rebuilt.
        if getattr(self, "_built_in", None) != current():
            self.commands.clear()
            self._help_option = None  # Click keeps its --help option, with its text, once made
            self._built_in = current()
        if not hasattr(self, "_sources"):
            self._sources = (self.help, [getattr(p, "help", None) for p in self.params])
        help_text, option_helps = self._sources
        self.help = _(help_text) if help_text else help_text
        for parameter, source in zip(self.params, option_helps, strict=True):
            if source and isinstance(parameter, click.Option):
                parameter.help = _(source)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in INDEX:
            return None
        if cmd_name not in self.commands:
            self.add_command(build(cmd_name), cmd_name)
        return self.commands[cmd_name]

    def invoke(self, ctx: click.Context) -> Any:
        # UTC until the command opens its home; the zone it set ends with it (a test runs many), after
        # its refusal, which names its times in that zone too.
        with showing_times_in(None):
            try:
                return super().invoke(ctx)
            except KinkoError as exc:
                fail(ctx, exc.localized(), exc.exit_code)
            except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
                raise
            except Exception as exc:
                if os.environ.get("KINKO_DEBUG"):
                    raise
                fail(ctx, f"unexpected {type(exc).__name__}: {exc}", EXIT_UNEXPECTED)
        return None


def build(name: str) -> click.Command:
    """The command or group a top-level name stands for, from its module's operations."""
    # Here, not at the top: `kinko --version` needs none of the command layer.
    from kinko.ca.commands.registry import module_groups, module_operations

    module = INDEX[name]
    ops = [op for op in module_operations(module) if op.path.split()[0] == name]
    if len(ops) == 1 and ops[0].path == name:
        return command_for(ops[0])
    helps = module_groups(module)
    groups: dict[str, click.Group] = {name: _group(name, helps.get(name))}
    for op in ops:
        words = op.path.split()
        for depth in range(2, len(words)):
            prefix = " ".join(words[:depth])
            if prefix not in groups:
                groups[prefix] = _group(words[depth - 1], helps.get(prefix))
                groups[" ".join(words[: depth - 1])].add_command(groups[prefix])
        groups[" ".join(words[:-1])].add_command(command_for(op))
    return groups[name]


def first_sentence(text: str | None) -> str | None:
    """A help text's first sentence, whole: `kinko --help` once cut summaries at 45 characters."""
    if not text:
        return text
    line = " ".join(text.split("\n\n", 1)[0].split())
    ends = [found + 1 for found in (line.find(". "), line.find("。")) if found >= 0]  # English, Japanese
    return line[: min(ends)] if ends else line


def _group(name: str, help_text: str | None) -> click.Group:
    shown = _(help_text) if help_text else help_text
    return click.Group(name, help=shown, short_help=first_sentence(shown))


def command_for(operation: Operation[Any, Any]) -> RoleCommand:
    """A Click command running one operation."""
    hints = typing.get_type_hints(operation.params)
    fields = dataclasses.fields(operation.params)
    parameters: list[click.Parameter] = [_click_parameter(item, hints[item.name]) for item in fields]
    parameters += [
        click.Option(["--home", "home_override"], type=click.Path(path_type=Path, readable=False), hidden=True),
        click.Option(["--json", "json_override"], is_flag=True, hidden=True),
    ]

    def callback(**values: Any) -> None:
        state = click.get_current_context().find_object(CLIState)
        assert state is not None
        params = operation.params(**{item.name: _value(item, values[item.name]) for item in fields})
        params = _confirmed(operation, params)
        if state.socket is not None and not operation.local and not operation.runs_here(params):
            through_service(state.socket, operation, params, state.as_json)
            return
        for label, needed in [*operation.extra_roles(params), *operation.state_roles(state.context, params)]:
            require_role(state, needed, label)
        if operation.writes is None:
            result = operation.run(state.context, params)
        else:
            result = _run_writing(operation, state.context, params)
        operation.render(result, state.output, params)

    return RoleCommand(
        operation,
        name=operation.path.split()[-1],
        params=parameters,
        callback=callback,
        help=_(operation.help),
        short_help=first_sentence(_(operation.help)),
        hidden=operation.hidden,
    )


def _confirmed(operation: Operation[Any, Any], params: Any) -> Any:
    """Asks an operation's question on a terminal unless --yes was given; the answer sets `yes`.
    Off a terminal the operation itself refuses to run without --yes."""
    if operation.confirm is None or params.yes or not sys.stdin.isatty():
        return params
    if not click.confirm(operation.confirm(params), default=False, err=True):
        raise InputError("nothing was done: not confirmed")
    return dataclasses.replace(params, yes=True)


def _run_writing(operation: Operation[Any, Any], context: Context, params: Any) -> Any:
    """Runs an operation that writes files where the caller asked, into files this process opened."""
    from kinko.ca.outputs import Outputs

    assert operation.writes is not None
    outputs = Outputs(operation.writes(params))
    context.outputs = outputs.files
    try:
        result = operation.run(context, params)
    except BaseException:
        outputs.abort()
        raise
    outputs.commit([f.produced for f in outputs.files])
    return result


def through_service(socket_path: Path, operation: Operation[Any, Any], params: Any, as_json: bool) -> None:
    """Runs an operation in the CA service: prints its output and writes its files as this account
    (a file the operation writes itself is opened here and travels as a descriptor)."""
    from kinko.ca.commands.render import write_output
    from kinko.ca.service.client import call

    values = {item.name: getattr(params, item.name) for item in dataclasses.fields(params)}
    outputs = None
    if operation.writes is not None:
        from kinko.ca.outputs import Outputs

        outputs = Outputs(operation.writes(params))
    state = click.get_current_context().find_object(CLIState)
    assert state is not None
    bars: dict[str, Any] = {}

    def progress(frame: dict[str, Any]) -> None:
        """Draws a progress frame the service streamed, as direct mode draws its own."""
        label = str(frame.get("label", ""))
        if label not in bars:
            bars[label] = state._progress(label) if "total" in frame else state._counter(label)
        if bars[label] is None:
            return
        if "total" in frame:
            bars[label](int(frame["done"]), int(frame["total"]))
        else:
            bars[label](int(frame["done"]))

    wants_progress = not as_json and sys.stderr.isatty()
    try:
        reply = call(
            socket_path,
            operation.path,
            values,
            as_json,
            fds=outputs.fds() if outputs else [],
            on_progress=progress if wants_progress else None,
        )
    except BaseException:
        if outputs is not None:
            outputs.abort()
        raise
    if outputs is not None:
        produced = reply.get("produced")
        if reply["exit"] == 0 and isinstance(produced, list) and len(produced) == len(outputs.files):
            outputs.commit([bool(made) for made in produced])
        else:
            outputs.abort()
    for written in reply.get("files", []):
        write_output(Path(written["path"]), written["text"])
    click.echo(reply.get("stdout", ""), nl=False)
    click.echo(reply.get("stderr", ""), nl=False, err=True)
    if reply["exit"] != 0:
        click.get_current_context().exit(reply["exit"])


def _click_parameter(item: dataclasses.Field[Any], hint: Any) -> click.Parameter:
    from kinko.ca.commands.registry import param_info, unwrap_hint

    info = param_info(item)
    # tuple[X, ...]: a repeatable option (--anchor A --anchor B).
    multiple = typing.get_origin(hint) is tuple
    base, optional = (typing.get_args(hint)[0], True) if multiple else unwrap_hint(hint)
    has_default = item.default is not dataclasses.MISSING
    kind: Any
    if info.reads is not None or base is Path:
        kind = click.Path(path_type=Path, dir_okay=not (info.file_only or info.reads), file_okay=not info.dir_only)
    elif info.choices is not None:
        kind = click.Choice(list(info.choices))
    elif base is int and (info.minimum is not None or info.maximum is not None):
        kind = click.IntRange(info.minimum, info.maximum)
    else:
        kind = base
    if info.argument:
        return click.Argument([item.name], type=kind, required=not optional)
    flag = info.flag or "--" + item.name.replace("_", "-")
    if base is bool:
        return click.Option([flag, item.name], is_flag=True, help=_(info.help))
    option = click.Option(
        [flag, item.name],
        type=kind,
        required=not has_default and info.hidden_prompt is None,
        show_default=info.show_default,
        help=_(info.help),
        multiple=multiple,
    )
    # Click 8.2+ takes an explicit default=None as a value: a required option gets no default at all.
    if has_default:
        option.default = item.default
    return option


def _value(item: dataclasses.Field[Any], value: Any) -> Any:
    from kinko.ca.commands.registry import param_info
    from kinko.ca.files import FileContents

    info = param_info(item)
    if info.reads is not None and isinstance(value, tuple):
        locate = info.read_from or (lambda path: path)
        return tuple(FileContents(str(locate(p)), read_input(locate(p), info.reads)) for p in value)
    if info.reads is not None and value is not None:
        return read_input(value, info.reads)
    if info.hidden_prompt is not None and value is None:
        line = click.prompt(info.hidden_prompt, hide_input=True) if sys.stdin.isatty() else sys.stdin.readline()
        return str(line).strip()
    return value


def read_input(path: Path, what: str) -> bytes:
    """Reads an input file, turning OS errors into one-line messages."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError("{what} file {path} does not exist", what=what, path=path) from None
    except (PermissionError, IsADirectoryError):
        raise InputError("{what} file {path} cannot be read", what=what, path=path) from None
