"""``lfa demo``: the main job on a small embedded sample."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console


out = Console()


def demo(out_dir: Path = typer.Option(Path("out/demo"), "--out", metavar="DIR",
                                      help="Where to write the results.")) -> None:
    """Render the labelled synthetic corpus, curate it into a manifest + report, and show the perception stack."""
    from lfa.demo import run_demo

    written = run_demo(out_dir, on_clip=lambda name: out.print(f"corpus clip: {name}"))
    for what, path in written.items():
        out.print(f"{what}: {path}")
