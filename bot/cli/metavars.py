"""Plain metavars in `--help`: `REF`, `PATH`, `N`, never Typer's `<str>`, `<list[str]>` or `<bool>`."""

from pathlib import Path

import click

_BY_TYPE = {int: "N", float: "NUMBER", Path: "PATH"}


def plain_metavars(command: click.Command) -> None:
    """Give every option of the command (and of its subcommands) a metavar a person would write: none
    for a flag (`--help` too), its own when it declares one, else one from its type or its name."""
    help_option = command.get_help_option(click.Context(command))  # made once, then kept by the command
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        if param.param_type_name == "argument":
            # Typer shows an argument's Python type beside its name (`REF <str>`); the name says it.
            param.display_type_rich = _no_type
            continue
        if param.metavar is not None:
            continue
        if getattr(param, "is_flag", False):
            param.metavar = ""
        else:
            param.metavar = _metavar(param)
    for sub in getattr(command, "commands", {}).values():
        plain_metavars(sub)


def _metavar(param: click.Parameter) -> str:
    """A word for the type (`N`, `PATH`), else the name in upper case."""
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    return _BY_TYPE.get(annotation) or (param.name or "value").upper()


def _no_type(ctx: click.Context) -> None:  # noqa: ARG001  (the signature Typer calls)
    return None
