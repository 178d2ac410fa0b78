"""``lfa curate INPUTS... --out DIR`` and ``lfa curate export``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lfa.logs import current_log, send_third_party_output_to

out = Console()


def _counts_text(counts: dict[str, int]) -> str:
    return f"accepted {counts['accepted']} · rejected {counts['rejected']} · failed {counts['failed']}"


def curate(
    inputs: list[Path] = typer.Argument(None, help="Video files or folders (to export a run: `lfa curate export`)."),
    out_dir: Path = typer.Option(Path("out/curated"), "--out", metavar="DIR",
                                 help="Output folder (also the resume state)."),
    config: Path = typer.Option(None, metavar="FILE", help="Config file, JSON or YAML (a run's config.json is one)."),
    overrides: list[str] = typer.Option(None, "--set", metavar="KEY=VALUE",
                                        help="Override a setting: section.key=value (repeatable)."),
    executor: str = typer.Option("local", help="local | ray"),
    workers: int = typer.Option(None, min=1, help="Worker processes / Ray tasks in flight (default: cores, or the cluster's CPUs; at most one per input)."),
    address: str = typer.Option(None, help="Ray cluster to join, HEAD:6379 (default: RAY_ADDRESS, else a local Ray)."),
    cpus_per_worker: float = typer.Option(1.0, help="Ray: CPUs reserved by each task (one input)."),
    gpus_per_worker: float = typer.Option(0.0, help="Ray: GPUs reserved by each task (e.g. 0.25)."),
    attempts: int = typer.Option(3, min=1, help="Tries of an input whose worker process dies or fails, then a failure row (local worker processes and Ray)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Process inputs that failed before again."),
    report: bool = typer.Option(True, help="Write report.html."),
) -> None:
    """Curate raw videos into a large-angle, identity-consistent training manifest (resumable)."""
    from lfa.curate.config import CurateConfig
    from lfa.curate.run import curate as run_curate

    if not inputs:
        raise typer.BadParameter("give at least one video file or folder")
    cfg = CurateConfig.load(config, overrides)
    log = send_third_party_output_to(out_dir / "logs" / "curate.log") if current_log() else None
    counts = {"accepted": 0, "rejected": 0, "failed": 0}  # over every input, as in the summary table
    with Progress(TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[status]}"), console=out, transient=False) as progress:
        task = progress.add_task("curating", total=None, status="")

        def count(summary: dict) -> None:
            counts["accepted"] += summary["accepted"]
            counts["rejected"] += sum(summary["rejected"].values())
            counts["failed"] += summary["failed"]

        def on_start(total: int, todo: int, finished: list[dict]) -> None:
            for summary in finished:  # failure rows of the listing, and inputs finished by an earlier run
                count(summary)
            progress.update(task, total=todo, description=f"curating ({total - todo} of {total} already done)")

        def on_input(summary: dict) -> None:
            count(summary)
            progress.update(task, advance=1, description=_counts_text(counts), status="")

        result = run_curate(inputs, out_dir, cfg, executor=executor, workers=workers, address=address,
                            retry_failed=retry_failed, cpus_per_worker=cpus_per_worker,
                            gpus_per_worker=gpus_per_worker, attempts=attempts, on_input=on_input, on_start=on_start, report=report,
                            on_status=lambda text: progress.update(task, status=text[:64]))
        final = {"accepted": result.accepted_clips, "rejected": sum(result.rejected.values()),
                 "failed": len(result.failed)}  # the merge's word (dedup moves clips to rejected)
        progress.update(task, description=_counts_text(final), status="done")
    table = Table(title=f"{result.inputs} inputs ({result.processed} processed now) → {out_dir}")
    table.add_column("outcome")
    table.add_column("clips / inputs", justify="right")
    table.add_row("[green]accepted clips[/]", str(result.accepted_clips))
    for key, n in sorted(result.rejected.items()):
        table.add_row(f"rejected: {key}", str(n))
    table.add_row("[red]failed inputs[/]", str(len(result.failed)))
    table.add_row("[yellow]byte-identical copies[/] of another input", str(result.duplicates))
    table.add_row("[yellow]warnings[/] (warnings.parquet)", str(result.warnings))
    table.add_row("caption files (VIDEO.txt, VIDEO.json, metadata)", str(result.caption_files))
    out.print(table)
    for failure in result.failed[:10]:
        out.print(f"[red]failed[/] {failure['input']}: {failure['error']}", markup=True, highlight=False)
    for name, path in result.outputs.items():
        out.print(f"{name}: {path}")
    if log:
        out.print(f"library log: {log} (lfa -v curate ... shows it here)")
