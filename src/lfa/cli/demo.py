"""``lfa demo``: the main job on a small embedded sample."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from lfa.cli.progress import item_progress

out = Console()


def demo(out_dir: Path = typer.Option(Path("out/demo"), "--out", metavar="DIR",
                                      help="Where to write the results.")) -> None:
    """Render the labelled synthetic corpus, curate it into a manifest + report, and show the perception stack."""
    from lfa.demo import run_demo
    from lfa.synth import STANDARD_CORPUS

    with item_progress(out, len(STANDARD_CORPUS), "rendering",
                       after="curating the corpus, analysing the sample photos") as on_clip:
        written = run_demo(out_dir, on_clip=on_clip)
    out.print(f"demo: {len(STANDARD_CORPUS)} corpus clips rendered and curated, sample photos analysed")
    for what, path in written.items():
        out.print(f"{what}: {path}")
