"""``lfa curate export RUN_DIR DEST_DIR``: a curated run as WebDataset shards and a JSONL index."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

out = Console()
export_app = typer.Typer(add_completion=False)


@export_app.command()
def export(
    run_dir: Path = typer.Argument(..., help="The --out folder of `lfa curate`."),
    out_dir: Path = typer.Argument(..., help="Where to write shards/ and index.jsonl."),
    shard_size: int = typer.Option(100, help="Clips per shard."),
) -> None:
    """Write each accepted clip (trimmed mp4, metadata JSON, reference frames) into WebDataset shards."""
    from lfa.curate.export import export_webdataset

    index = export_webdataset(run_dir, out_dir, shard_size=shard_size)
    out.print(f"index: {index}")
