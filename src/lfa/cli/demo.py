"""``lfa demo``: the main job on a small embedded sample."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from lfa.demo import run_demo

out = Console()


def demo(out_dir: Path = typer.Option(Path("out/demo"), "--out", help="Where to write the results.")) -> None:
    """Run the perception stack on the sample photos and write an annotated picture."""
    written = run_demo(out_dir)
    for what, path in written.items():
        out.print(f"{what}: {path}")
