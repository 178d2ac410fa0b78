"""``lfa bench --spec SPEC --videos NAME=DIR [...] --out DIR`` and ``lfa bench make-spec``."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from lfa.errors import ConfigError

app = typer.Typer(help="Large-angle identity benchmark: FaceSim by head pose, copy-paste index, FD, CLIPScore, "
                       "peers' scoring. Run: lfa bench --spec SPEC --videos NAME=DIR --out DIR",
                  no_args_is_help=True)
out = Console()


def _fmt(v: object, digits: int = 3) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.{digits}f}"
    return "–" if v is None else str(v)


@app.callback(invoke_without_command=True)
def bench(
    ctx: typer.Context,
    spec: Path = typer.Option(None, "--spec", help="Benchmark spec (JSONL: id, reference, prompt, labels)."),
    videos: list[str] = typer.Option(None, "--videos", help="NAME=DIR of a model's {id}.mp4 videos; repeat to "
                                     "compare models."),
    out_dir: Path = typer.Option(None, "--out", help="Output folder: scores.csv, frames.parquet, summary.json, "
                                 "report.html."),
    frames: int = typer.Option(16, help="Frames sampled per video (centred bins, lfa.media.sample_times)."),
    fps: float = typer.Option(None, help="Sample frames at this rate instead of --frames."),
    all_frames: bool = typer.Option(False, "--all-frames", help="Score every frame."),
    identity: list[str] = typer.Option(None, "--identity", help="Identity model(s): dlib, arcface, curricularface "
                                       "(default: every one available)."),
    primary: str = typer.Option(None, help="Identity model of the per-bucket, copy-paste and spread columns "
                                "(default: arcface, else curricularface, else dlib)."),
    detector: str = typer.Option("yunet", help="yunet | scrfd"),
    pose: str = typer.Option("mediapipe", help="mediapipe | sixdrepnet | none"),
    detect_max_side: int = typer.Option(480, help="Longest side of the image the detector sees."),
    compat: list[str] = typer.Option(None, "--compat", help="Also score like a peer: consisid, opens2v."),
    inception: Path = typer.Option(None, help="Inception network (ONNX) for Face FID; without it only FD-<identity>."),
    clip: str = typer.Option(None, help="CLIP for CLIPScore: transformers folder, or open_clip:ARCH:FILE."),
    workers: int = typer.Option(None, help="Processes (default: the number of CPU cores, at most 8)."),
    seed: int = typer.Option(0, help="Recorded in summary.json (the scoring itself is deterministic)."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip report.html."),
) -> None:
    """Score generated videos against a benchmark spec, one or more models at a time."""
    if ctx.invoked_subcommand is not None:
        return
    from lfa.bench import BenchConfig, parse_model_dirs, run_bench

    if spec is None or not videos or out_dir is None:
        raise ConfigError("lfa bench needs --spec, --videos and --out",
                          "e.g. lfa bench --spec spec.jsonl --videos mine=gen/mine --out out/bench")
    models = parse_model_dirs(videos)
    config = BenchConfig(
        identities=tuple(identity) if identity else None, primary=primary, detector=detector, pose=pose,
        detect_max_side=detect_max_side, frames=None if (all_frames or fps) else frames,
        fps=None if all_frames else fps,
        compat=tuple(compat or ()), inception=inception, clip=clip,
        workers=workers or max(1, min(8, os.cpu_count() or 1)), seed=seed, extra={"argv": sys.argv[1:]})
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=out, transient=True) as progress:
        task = progress.add_task("loading models", total=None)

        def on_progress(message: str, done: int, total: int) -> None:
            progress.update(task, description=message, completed=done, total=total)

        result = run_bench(spec, models, out_dir, config, on_progress=on_progress, report=not no_report)
    cfg = result.config
    table = Table(title=f"lfa bench: {len(result.items)} items × {len(models)} model(s)")
    keys = ["detection_rate"] + [f"facesim_{n}" for n in ("arc", "cur", "dlib")
                                 if any(f"facesim_{n}" in a for a in result.aggregates.values())]
    keys += ["facesim_worst_bucket", "yaw_range", "id_spread", "copy_paste"]
    keys += sorted({k for a in result.aggregates.values() for k in a if k.startswith(("fd_", "face_fid"))})
    if cfg.clip:
        keys.append("clipscore")
    keys += sorted({k for a in result.aggregates.values() for k in a
                    if any(k.startswith(f"{m}_") for m in cfg.compat) and not k.endswith("frames_scored")})
    table.add_column("metric")
    for model in result.aggregates:
        table.add_column(model, justify="right")
    aggs = list(result.aggregates.values())
    table.add_row("videos ok/missing/error", *[f"{a['n_ok']}/{a['n_missing']}/{a['n_error']}" for a in aggs])
    for k in keys:
        if k == "facesim_worst_bucket":
            table.add_row("worst bucket", *[f"{_fmt(a.get(k))} ({a.get('worst_bucket') or '–'})" for a in aggs])
        else:
            table.add_row(k, *[_fmt(a.get(k), 1 if k == "yaw_range" else 3) for a in aggs])
    out.print(table)
    for model, agg in result.aggregates.items():
        if agg["n_missing"] or agg["n_error"]:
            out.print(f"[yellow]{model}: {agg['n_missing']} missing and {agg['n_error']} unreadable video(s); "
                      "see the status and error columns of scores.csv[/]")
    written = ["scores.csv", "leaderboard.csv", "frames.parquet", "summary.json"] + ([] if no_report else
                                                                                        ["report.html"])
    out.print(f"wrote {', '.join(str(out_dir / w) for w in written)}")


@app.command("make-spec")
def make_spec_cmd(
    manifest: Path = typer.Option(..., help="Curated manifest.parquet (columns: docs/BENCH.md)."),
    spec: Path = typer.Option(..., "--out", help="Spec to write (.jsonl); references go to references/ beside it."),
    n: int = typer.Option(100, "--n", help="Target number of items (split evenly over the yaw buckets)."),
    per_bucket: int = typer.Option(None, help="Items per |yaw| bucket (overrides --n)."),
    per_cluster: int = typer.Option(1, help="At most this many clips of one identity cluster."),
    holdout: float = typer.Option(0.1, help="Share of clusters held out when the manifest has no split column."),
    seed: int = typer.Option(0),
) -> None:
    """Build a spec from a curated manifest: held-out identities, balanced over yaw ranges, frontal references."""
    from lfa.bench import make_spec

    result = make_spec(manifest, spec, n_items=n, per_bucket=per_bucket, per_cluster=per_cluster, holdout=holdout,
                       seed=seed)
    table = Table(title=f"{spec}: {len(result.items)} items from {len(result.heldout_clusters)} held-out clusters")
    for col in ("|yaw| bucket of the clip", "items", "available"):
        table.add_column(col, justify="right")
    for bucket, count in result.per_bucket.items():
        table.add_row(bucket.replace("_", "–"), str(count), str(result.available[bucket]))
    out.print(table)
    for clip_id, reason in result.skipped:
        out.print(f"[yellow]skipped {clip_id}: {reason}[/]")
    if result.heldout_file:
        out.print(f"held-out clusters (exclude them from training): {result.heldout_file}")
