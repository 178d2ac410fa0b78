"""Value labels in ``--help``: ``--out PATH``, ``--steps N``, ``INPUTS  PATH...``, nothing for a flag.

Typer writes the Python type instead (``<list[Path]>``, ``<bool>``); :func:`label_values` replaces it in a
whole command tree, where a command is built, so no command has to spell its labels out. An option that
sets its own ``metavar`` keeps it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args, get_origin

_LABELS: dict[Any, str] = {int: "N", float: "NUMBER", str: "TEXT", Path: "PATH"}


def value_label(param: Any) -> str:
    """``N``, ``NUMBER``, ``TEXT`` or ``PATH`` by the parameter's type; ``""`` for a flag."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""
    descriptor = getattr(param, "type_descriptor", None)  # recent typer; older ones keep a click type
    if descriptor is None:
        return param.type.name.upper()
    kind = descriptor.annotation
    if get_origin(kind) is list:
        (kind,) = get_args(kind)
    return _LABELS.get(kind, "VALUE")


def label_values(command: Any) -> Any:
    """Give every option and argument of ``command`` and of its subcommands a readable value label."""
    help_option = command.get_help_option(command.context_class(command))
    for param in [*command.params, *([help_option] if help_option else [])]:
        if param.param_type_name == "argument":
            if param.metavar is None:
                param.metavar = (param.name or "value").upper()
            label = value_label(param) + ("..." if param.nargs != 1 else "")
            # typer puts the type beside an argument's name whatever its metavar: show the label there
            param.display_type_rich = lambda ctx, label=label: label  # type: ignore[method-assign]
        elif param.metavar is None:
            param.metavar = value_label(param)
    for sub in getattr(command, "commands", {}).values():
        label_values(sub)
    return command
