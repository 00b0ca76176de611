"""What the catalogues must translate that is not a literal in the source: every command's help,
its parameters' help and the groups' help (assembled from docstrings and f-strings), the top-level
options, and the few of Click's own texts a help page or a usage error shows.

A Babel extraction method (ca/locale/babel.cfg maps ca/commands/registry.py to it); the file's own
marked literals are extracted as Babel's Python extractor would.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import IO, Any

# Click's texts that Kinko's help pages and one-line usage errors show (Click 8.2+ msgids).
CLICK_TEXTS = (
    "Usage:",
    "Options",
    "Commands",
    "default: {default}",
    "required",
    "Show this message and exit.",
    "Show the version and exit.",
    "Missing argument",
    "Missing option",
    "Missing parameter",
    "No such option {name!r}.",
    "No such command {name!r}.",
    "Invalid value for {param_hint}: {message}",
    "Invalid value: {message}",
    "Do you want to continue?",
)
# Click's texts with a plural (through ngettext): singular and plural source.
CLICK_PLURALS = (
    ("Got unexpected extra argument ({args})", "Got unexpected extra arguments ({args})"),
    ("Takes {nargs} values but 1 was given.", "Takes {nargs} values but {len} were given."),
    ("Option {name!r} requires an argument.", "Option {name!r} requires {nargs} arguments."),
    ("Did you mean {possibility}?", "(Did you mean one of: {possibilities}?)"),
    ("{value!r} is not {choice}.", "{value!r} is not one of {choices}."),
    ("{value!r} does not match the format {format}.", "{value!r} does not match the formats {formats}."),
    (
        "{len_type} values are required, but {len_value} was given.",
        "{len_type} values are required, but {len_value} were given.",
    ),
)


def command_texts() -> Iterator[str]:
    """The help texts of every command, group, parameter and top-level option, as --help shows them."""
    import dataclasses

    from kinko.ca.commands import INDEX
    from kinko.ca.commands.click_app import CLI_HELP, HOME_HELP, JSON_HELP, SOCKET_HELP
    from kinko.ca.commands.registry import module_groups, module_operations, param_info

    yield from (CLI_HELP, HOME_HELP, JSON_HELP, SOCKET_HELP)
    for module in dict.fromkeys(INDEX.values()):
        yield from module_groups(module).values()
        for operation in module_operations(module):
            if operation.help:
                yield operation.help
            yield from (param_info(item).help for item in dataclasses.fields(operation.params) if param_info(item).help)


def extract_commands(
    fileobj: IO[bytes], keywords: Mapping[str, Any], comment_tags: Collection[str], options: Any
) -> Iterator[Any]:
    """Babel's extraction method for the command registry: its literals, then the assembled help texts."""
    from pathlib import Path

    from babel.messages.extract import extract_python

    from kinko.ca.commands import registry

    if not Path(registry.__file__).resolve().is_relative_to(Path.cwd().resolve()):
        raise RuntimeError(f"the help texts would come from {registry.__file__}, not from this tree")
    yield from extract_python(fileobj, keywords, comment_tags, options)
    for text in dict.fromkeys([*command_texts(), *CLICK_TEXTS]):
        yield 0, None, text, []
    for plural in CLICK_PLURALS:
        yield 0, "ngettext", plural, []
