"""The ``lfa`` command: a thin layer over the Python API."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from lfa.cli import bench as bench_cmd
from lfa.cli import curate as curate_cmd
from lfa.cli import demo as demo_cmd
from lfa.cli import faces as faces_cmd
from lfa.cli import identity as identity_cmd
from lfa.cli import model as model_cmd
from lfa.cli import models as models_cmd
from lfa.cli import synth as synth_cmd
from lfa.errors import LfaError

app = typer.Typer(help="lfa — Large Face Angles toolkit.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
app.add_typer(models_cmd.app, name="models")
app.add_typer(model_cmd.app, name="model")
app.add_typer(synth_cmd.app, name="synth")
app.add_typer(bench_cmd.app, name="bench")
app.add_typer(identity_cmd.app, name="identity")
app.command("faces")(faces_cmd.faces)
app.command("demo")(demo_cmd.demo)
app.command("curate", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    curate_cmd.curate
)

err = Console(stderr=True)


def main() -> None:
    try:
        app()
    except LfaError as exc:
        line = f"error: {exc.message}" + (f" — fix: {exc.fix}" if exc.fix else "")
        err.print(line, markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
