"""``lfa demo``: the whole job on a small embedded sample."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

out = Console()


def demo(out_dir: Path = typer.Option(Path("out/demo"), "--out", metavar="DIR",
                                      help="Where to write the results.")) -> None:
    """Render the labelled synthetic corpus, curate it, show the perception stack, train the tiny base,
    generate a video, write a benchmark spec, generate it and score it; list what each step wrote."""
    from lfa.demo import STAGES, run_demo
    from lfa.synth import STANDARD_CORPUS

    with Progress(TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=out, transient=True) as bar:
        stages = bar.add_task("demo", total=len(STAGES))
        clips = bar.add_task("corpus clips", total=len(STANDARD_CORPUS))

        def on_stage(name: str) -> None:
            bar.update(stages, completed=STAGES.index(name), description=f"demo: {name}")
            bar.update(clips, visible=name == "corpus")

        written = run_demo(out_dir, on_clip=lambda name: bar.advance(clips), on_stage=on_stage)
    out.print(f"demo: {len(STANDARD_CORPUS)} clips rendered and curated, the tiny base trained, "
              "videos generated and scored", highlight=False)
    for what, path in written.items():
        out.print(f"  {what:<18} {path}", highlight=False)
