"""``lfa train``: caches, then training of the identity adapter on a curation run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer
from rich.console import Console

out = Console()


def train(
    base: Path = typer.Option(..., "--base", help="Wan diffusers directory (or a name from `lfa models add`)."),
    data: Path = typer.Option(..., "--data", help="A curation run folder (or its `lfa curate export` folder)."),
    out_dir: Path = typer.Option(..., "--out", metavar="DIR",
                                 help="Output folder: caches, metrics.jsonl, checkpoints, adapter/."),
    config: Path = typer.Option(None, "--config", metavar="FILE",
                                help="Config file of KEY: VALUE pairs, YAML or JSON."),
    set_: list[str] = typer.Option(None, "--set", metavar="KEY=VALUE",
                                   help="Config override KEY=VALUE (repeatable); adapter keys too."),
    resume: str = typer.Option(None, "--resume", help="'latest' or a checkpoint-N folder."),
    cache_only: bool = typer.Option(False, "--cache-only", help="Build the caches and exit."),
    encoders: Path = typer.Option(None, "--encoders", help="Face-encoder spec (default: BASE/lfa_encoders.json)."),
    launch: int = typer.Option(0, "--launch", help="Run N processes on this machine through torchrun (DDP; "
                                                   "FSDP with --set parallel=fsdp); "
                                                   "batch_size (the global batch) must be a multiple of N."),
) -> None:
    """Train the identity adapter (and LoRA) by flow matching on a curated run."""
    from lfa.registry import ModelStore
    from lfa.registry.directories import resolve_directory
    from lfa.wan.base import check_base, load_base
    from lfa.train.config import load_config
    from lfa.train.trainer import train as run_train

    folder = check_base(resolve_directory(ModelStore(), base))
    cfg = load_config(load_base(folder, parts=()).train_defaults, config, set_)
    if launch > 1 and "LOCAL_RANK" not in os.environ:
        from lfa.cli.launch import relaunch
        from lfa.train.config import check_batch_split

        check_batch_split(cfg, launch)  # the children's first check, said here before they start
        raise typer.Exit(relaunch(launch, sys.argv[1:]))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    main = os.environ.get("RANK", "0") == "0"  # other DDP processes stay quiet
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeRemainingColumn(), console=out, transient=False, disable=not main) as bar:
        cache = bar.add_task("cache", total=None, info="samples: latents, text, faces")
        task = bar.add_task("train", total=cfg.max_steps, info="", visible=False)

        def on_cache(done: int, total: int) -> None:
            bar.update(cache, completed=done, total=total)

        def progress(step: int, total: int, record: dict) -> None:
            if not record:  # the step a (resumed) run starts from
                bar.update(cache, info="ready")
                bar.update(task, completed=step, visible=True)
                bar.reset(task, start=True, completed=step)
                return
            speed = 1.0 / record["step_s"] if record.get("step_s") else 0.0
            bar.update(task, completed=step, info=f"loss {record['loss']:.4f}  {speed:.2f} steps/s")

        result = run_train(folder, data, out_dir, cfg, resume=resume, cache_only=cache_only, encoders_file=encoders,
                           progress=progress, on_cache=on_cache,
                           on_notice=lambda line: bar.console.print(f"[yellow]note:[/] {line}", highlight=False),
                           on_plan=None if cache_only else
                           lambda lines: bar.console.print("\n".join(lines), style="dim", highlight=False))
    if not main:
        return
    if cache_only:
        out.print(f"[green]cache ready[/] {result.samples} samples → {result.cache_dir}", highlight=False)
    else:
        out.print(f"[green]trained[/] {result.steps} steps → {out_dir}/adapter", highlight=False)
