"""The command registry: each operation defined once, as data.

An `Operation` names its path under `kinko` ("cert show"), its parameters (a frozen dataclass
whose fields carry `param(...)` metadata), the role it needs, the library call, and how its
typed result is rendered. The Click CLI builds its commands from operations
(`kinko.ca.commands.click_app`); the CA service runs the same operations over its socket, so
nothing an operation needs may come from the terminal except through `Context`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from kinko.ca.clock import Clock, SystemClock, to_text
from kinko.ca.commands import INDEX
from kinko.ca.files import FileContents

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from kinko.ca.commands.render import Output
    from kinko.ca.home import Home
    from kinko.ca.lifecycle import Kinko
    from kinko.ca.lifecycle.session import OCSPPresigner
    from kinko.ca.outputs import Destination, OutputFile
    from kinko.ca.service.jobs import Schedule

# What a time option takes, said in its help: parse_user_time refuses a time without a zone.
TIME_FORMAT = "ISO 8601 with its zone, e.g. 2026-11-25T09:00:00+09:00; a date alone is that day's start in Tokyo"
P = TypeVar("P")
D = TypeVar("D", bound="DataclassInstance")
R = TypeVar("R")
Progress = Callable[[int, int], None]
Counter = Callable[[int], None]


@dataclass(frozen=True)
class Param:
    """How one parameter is asked for: the metadata of a params dataclass field."""

    help: str
    argument: bool = False  # positional (SERIAL) rather than an --option
    flag: str | None = None  # the option's name when it differs from the field's (--csv for as_csv)
    choices: tuple[str, ...] | None = None
    reads: str | None = None  # a file the caller reads; the operation receives its bytes. The label names it.
    # For a repeatable `reads` option: the file read for each path given (its FileContents go to the operation).
    read_from: Callable[[Path], Path] | None = None
    hidden_prompt: str | None = None  # when not given: a hidden prompt on a terminal, else a line of standard input
    show_default: bool = False
    minimum: int | None = None
    maximum: int | None = None
    file_only: bool = False  # a path that must not be a directory
    dir_only: bool = False


_REQUIRED: Any = dataclasses.MISSING


def param(help: str, default: Any = _REQUIRED, **how: Any) -> Any:
    """Declares a parameter field: its help text, its default (none: required) and how it is asked for."""
    return field(default=default, metadata={"kinko": Param(help, **how)})


def param_info(item: dataclasses.Field[Any]) -> Param:
    """The `Param` of a params dataclass field."""
    found = item.metadata.get("kinko")
    if not isinstance(found, Param):
        raise TypeError(f"parameter {item.name} has no param(...) metadata")
    return found


def unwrap_hint(hint: Any) -> tuple[Any, bool]:
    """(type, optional) of an annotation such as `str | None`."""
    import types
    import typing

    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        members = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return members[0], len(members) < len(typing.get_args(hint))
    return hint, False


def build_params(params_type: type[D], values: object) -> D:
    """Parameters received as data (over the service's socket), checked against their declaration."""

    from kinko.ca.errors import InputError

    if not isinstance(values, dict):
        raise InputError("the parameters are not an object")
    fields = {item.name: item for item in dataclasses.fields(params_type)}
    unknown = set(values) - set(fields)
    if unknown:
        raise InputError("unknown parameter(s): {names}", names=", ".join(sorted(unknown)))
    hints = _hints(params_type)
    checked: dict[str, object] = {}
    for name, item in fields.items():
        if name not in values:
            if item.default is dataclasses.MISSING:
                raise InputError("parameter {name} is required", name=name)
            continue
        value, hint = values[name], hints[name]
        if typing.get_origin(hint) is tuple:  # a repeatable option: a list of one type
            (member,) = typing.get_args(hint)[:1]
            if not isinstance(value, list | tuple):
                raise InputError("parameter {name} must be a list", name=name)
            converted = [Path(v) if member is Path and isinstance(v, str) else v for v in value]
            if member is FileContents:
                converted = [_contents(v, name) for v in value]
            if not all(isinstance(v, member) for v in converted):
                raise InputError("parameter {name} must be a list of {type}", name=name, type=member.__name__)
            checked[name] = tuple(converted)
            continue
        base, optional = unwrap_hint(hint)
        info = param_info(item)
        if value is None and (optional or item.default is None):
            checked[name] = None
            continue
        if base is Path and isinstance(value, str):
            value = Path(value)
        if not isinstance(value, base) or (base is int and isinstance(value, bool)):
            raise InputError("parameter {name} must be {type}", name=name, type=getattr(base, "__name__", base))
        if info.choices is not None and value not in info.choices:
            raise InputError("parameter {name} must be one of {choices}", name=name, choices=", ".join(info.choices))
        below = isinstance(value, int) and info.minimum is not None and value < info.minimum
        above = isinstance(value, int) and info.maximum is not None and value > info.maximum
        if below or above:
            raise InputError("parameter {name} is out of range", name=name)
        checked[name] = value
    return params_type(**checked)


def _contents(value: object, name: str) -> FileContents:
    """A FileContents received as data: {"name": ..., "data": bytes}."""
    from kinko.ca.errors import InputError

    if isinstance(value, dict) and isinstance(value.get("name"), str) and isinstance(value.get("data"), bytes):
        return FileContents(value["name"], value["data"])
    raise InputError("parameter {name} must be a list of files' contents", name=name)


@cache
def _hints(params_type: type) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(params_type)


@dataclass(frozen=True)
class NoParams:
    """The parameters of an operation that takes none."""


def no_extra_roles(_params: object) -> list[tuple[str, str]]:
    """Operations whose role does not depend on their parameters."""
    return []


def no_state_roles(_ctx: Context, _params: object) -> list[tuple[str, str]]:
    """Operations whose role does not depend on what the registry holds."""
    return []


def never(_params: object) -> bool:
    """Operations that run where the home is for any parameters."""
    return False


@dataclass(frozen=True)
class Operation(Generic[P, R]):
    """One officer, auditor or holder operation."""

    path: str
    params: type[P]
    run: Callable[[Context, P], R]
    render: Callable[[R, Output, P], None]
    role: str | None
    summary: str = ""
    # Further (command label, role) checks that depend on the parameters, e.g. `crl publish --root`.
    extra_roles: Callable[[P], list[tuple[str, str]]] = no_extra_roles
    # Checks that read the registry (read-only) to decide, e.g. `revoke` of a CA certificate.
    state_roles: Callable[[Context, P], list[tuple[str, str]]] = no_state_roles
    # Runs in the caller's own process only: servers, creating a home, the demo.
    local: bool = False
    # Opens a database older than this Kinko (to check the role, then upgrade it); every other operation refuses one.
    opens_older_schema: bool = False
    # Runs in the caller's own process for these parameters (verifying an export offline needs no home).
    runs_here: Callable[[P], bool] = never
    # The files it writes where the caller asked: the caller opens them (the service gets descriptors,
    # never a path to open) and the operation writes into `Context.outputs`, in this order.
    writes: Callable[[P], list[Destination]] | None = None
    # Left out of --help: the front end's operations, which only the API's own identity may run.
    hidden: bool = False
    # A question the CLI asks on a terminal before running it (its params' `yes` then set); else --yes.
    confirm: Callable[[P], str] | None = None

    @property
    def help(self) -> str:
        """The help text: the summary, or the run function's docstring."""
        return self.summary or (self.run.__doc__ or "").strip()


@dataclass
class Context:
    """What an operation receives from whoever runs it (the CLI, the service): the home, the
    injectable clock and actor, and the terminal-side helpers (prompt, progress)."""

    home_path: Path
    clock: Clock | None = None
    actor: str | None = None
    prompt: Callable[[str], str] | None = None
    progress: Callable[[str], Progress | None] = field(default=lambda _label: None)
    counter: Callable[[str], Counter | None] = field(default=lambda _label: None)
    home_instance: Home | None = None  # a long-lived caller's open home (the service's); else opened here
    presigner: OCSPPresigner | None = None  # a long-lived caller's own, reused by every command
    schedule: Schedule | None = None  # the CA service's jobs (`kinko service status`); None in direct mode
    outputs: list[OutputFile] | None = None  # the files of an operation that `writes`, opened by the caller
    socket: Path | None = None  # the CA service's socket, when the caller was given one (`api serve` uses it)

    def home(self) -> Home:
        """The CA home, opened once per command: its config, connections and loaded keys are reused."""
        from kinko.ca.clock import show_times_in
        from kinko.ca.home import Home

        if self.home_instance is None:
            self.home_instance = Home(self.home_path, prompt=self.prompt)
            show_times_in(self.home_instance.display_zone)
        return self.home_instance

    def kinko(self) -> Kinko:
        """The registration authority for this command's actor and clock."""
        from kinko.ca.lifecycle import Kinko

        return Kinko(self.home(), clock=self.clock, actor=self.actor, presigner=self.presigner)

    def login(self) -> str:
        """The acting account: the injected actor, else the effective uid's login."""
        from kinko.ca.officers import current_login

        return self.actor or current_login()

    def now(self) -> dt.datetime:
        """The current time on the injected clock."""
        return (self.clock or SystemClock()).now()

    def now_text(self) -> str:
        """The current time as stored."""
        return to_text(self.now()) or ""


@cache
def module_operations(module: str) -> tuple[Operation[Any, Any], ...]:
    """The operations a command module defines (its OPERATIONS list)."""
    loaded = importlib.import_module(f"kinko.ca.commands.{module}")
    return tuple(loaded.OPERATIONS)


@cache
def module_groups(module: str) -> dict[str, str]:
    """The command groups a module defines, path -> help (its GROUPS table)."""
    loaded = importlib.import_module(f"kinko.ca.commands.{module}")
    return dict(getattr(loaded, "GROUPS", {}))


def operations() -> Iterator[Operation[Any, Any]]:
    """Every operation, module by module."""
    for module in dict.fromkeys(INDEX.values()):
        yield from module_operations(module)


def find(path: str) -> Operation[Any, Any]:
    """The operation at a path ("cert show"); KeyError if there is none."""
    module = INDEX[path.split()[0]]
    for operation in module_operations(module):
        if operation.path == path:
            return operation
    raise KeyError(path)


def required_roles() -> dict[str, str | None]:
    """The least role each command needs, by its path (None: checked inside, or no operator yet)."""
    return {operation.path: operation.role for operation in operations()}
