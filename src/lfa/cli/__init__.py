"""The ``lfa`` command: a thin layer over the Python API."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from typer.core import TyperGroup

from lfa.cli import bench as bench_cmd
from lfa.cli import curate as curate_cmd
from lfa.cli import demo as demo_cmd
from lfa.cli import faces as faces_cmd
from lfa.cli import generate as generate_cmd
from lfa.cli import identity as identity_cmd
from lfa.cli import model as model_cmd
from lfa.cli import models as models_cmd
from lfa.cli import speech as speech_cmd
from lfa.cli import synth as synth_cmd
from lfa.cli import train as train_cmd
from lfa.cli.labels import label_values
from lfa.errors import LfaError
from lfa.logs import default_log_dir, send_third_party_output_to, set_verbose

class _Commands(TyperGroup):
    """``lfa curate export ...`` is its own command (with its own ``--help``), although ``lfa curate``
    takes paths as arguments. Every command's ``--help`` shows readable value labels (lfa.cli.labels)."""

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        label_values(self)

    def resolve_command(self, ctx, args):  # type: ignore[no-untyped-def]
        if args[:2] == ["curate", "export"]:
            from lfa.cli.curate_export import export_app

            return "curate export", label_values(typer.main.get_command(export_app)), args[2:]
        return super().resolve_command(ctx, args)


app = typer.Typer(help="lfa — Large Face Angles toolkit.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, cls=_Commands)
app.add_typer(models_cmd.app, name="models")
app.add_typer(model_cmd.app, name="model")
app.add_typer(synth_cmd.app, name="synth")
app.add_typer(bench_cmd.app, name="bench")
app.add_typer(identity_cmd.app, name="identity")
app.command("faces")(faces_cmd.faces)
app.command("demo")(demo_cmd.demo)
app.command("curate")(curate_cmd.curate)
app.command("train")(train_cmd.train)
app.command("generate")(generate_cmd.generate)
app.command("speech")(speech_cmd.speech)

err = Console(stderr=True)
_from_main = False  # in-process runners (tests) keep their own streams


@app.callback()
def _options(verbose: bool = typer.Option(False, "--verbose", "-v",
                                          help="Show third-party library output on the terminal.")) -> None:
    set_verbose(verbose)
    if _from_main:
        send_third_party_output_to(default_log_dir() / "lfa.log")


def main() -> None:
    global _from_main
    _from_main = True
    try:
        app()
    except LfaError as exc:
        from lfa.cli.launch import record_child_error

        record_child_error(exc)
        line = f"error: {exc.message}" + (f" — fix: {exc.fix}" if exc.fix else "")
        err.print(line, markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
