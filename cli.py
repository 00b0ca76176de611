"""The `kinko` command line: the entry point that assembles the command groups.

Commands are defined once, in the registry (`kinko.ca.commands`); this module only sets the
top-level options and hands each command to its module, loaded when it is used.
"""

from __future__ import annotations

from pathlib import Path

import click

from kinko.ca.commands.click_app import CLI_HELP, HOME_HELP, JSON_HELP, SOCKET_HELP, CLIState, KinkoGroup, RoleCommand

__all__ = ["RoleCommand", "cli", "main"]


@click.group(cls=KinkoGroup, help=CLI_HELP)
@click.option(
    "--home",
    "home",
    type=click.Path(path_type=Path, readable=False),
    default=None,
    help=HOME_HELP,
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.option(
    "--socket",
    "socket",
    type=click.Path(path_type=Path, dir_okay=False, readable=False),
    envvar="KINKO_SOCKET",
    default=None,
    help=SOCKET_HELP,
)
@click.version_option(package_name="kinko")
@click.pass_context
def cli(click_ctx: click.Context, home: Path | None, as_json: bool, socket: Path | None) -> None:
    """Kinko: a private CA for client-certificate login."""
    from kinko.ca.locations import resolve_home

    typed = click.core.ParameterSource.COMMANDLINE
    # Tests inject a clock and an actor through the context object.
    injected = click_ctx.obj if isinstance(click_ctx.obj, dict) else {}
    state = CLIState(
        resolve_home(None),
        as_json,
        injected.get("clock"),
        injected.get("actor"),
        socket,
        socket_typed=click_ctx.get_parameter_source("socket") == typed,
    )
    if home:
        state.use_home(resolve_home(str(home)))
    click_ctx.obj = state


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `kinko` console script."""
    cli.main(args=argv, prog_name="kinko")


if __name__ == "__main__":
    main()
