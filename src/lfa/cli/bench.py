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
from lfa.face.detect import DETECT_MAX_SIDE

app = typer.Typer(help="Large-angle identity benchmark: calibrated identity per yaw bucket weighted by the angles "
                       "reached, copy-paste/motion flags, CIs, paired comparisons, FaceSim, CLIPScore, peers' "
                       "scoring. Run: lfa bench --spec SPEC --videos NAME=DIR --out DIR",
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
    videos: list[str] = typer.Option(None, "--videos", help="NAME=DIR of a model's {id}.mp4 (or .webm, .gif ...) "
                                     "videos; repeat to compare models."),
    out_dir: Path = typer.Option(None, "--out", help="Output folder: leaderboard.json, scores.csv, frames.parquet, "
                                 "summary.json, report.html."),
    frames: int = typer.Option(16, help="Frames sampled per video (centred bins, lfa.media.sample_times)."),
    fps: float = typer.Option(None, help="Sample frames at this rate instead of --frames."),
    all_frames: bool = typer.Option(False, "--all-frames", help="Score every frame."),
    identity: list[str] = typer.Option(None, "--identity", help="Identity model(s): dlib, arcface, curricularface "
                                       "(default: every one available)."),
    primary: str = typer.Option(None, help="Identity model of the headline and per-bucket columns "
                                "(default: arcface, else curricularface, else dlib)."),
    impostors: Path = typer.Option(None, help="Impostor model for the headline's identity score (from `lfa identity "
                                   "calibrate FOLDER`, one subfolder per person); default: the spec's references "
                                   "when they hold 3+ people, else lfa's shipped dlib model."),
    far: float = typer.Option(0.01, help="False-accept rate of the identity decision: 0.1, 0.05, 0.01 or 0.001."),
    cache: Path = typer.Option(None, help="Folder of per-video analyses by content hash (default: OUT/cache); "
                               "a re-run or a video shared by models is analysed once."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Keep analyses in memory only."),
    detector: str = typer.Option("yunet", help="Face detector: yunet (shipped) or scrfd (an InsightFace SCRFD "
                                 "registered with `lfa models add`)."),
    pose: str = typer.Option("fused", help="fused (landmark fit + WHENet, full yaw range) | mediapipe | whenet | "
                             "sixdrepnet | none"),
    detect_max_side: int = typer.Option(DETECT_MAX_SIDE, help="Longest side (px) of the image the detector sees: "
                                        "larger frames are scaled down (lfa's one detection size for every job)."),
    compat: list[str] = typer.Option(None, "--compat", help="Also score like a peer: consisid, opens2v."),
    inception: Path = typer.Option(None, help="Inception network (ONNX) for Face FID (image statistics of the faces)."),
    clip: str = typer.Option(None, help="CLIP for CLIPScore: transformers folder, or open_clip:ARCH:FILE."),
    workers: int = typer.Option(None, help="Processes (default: the number of CPU cores, at most 8)."),
    seed: int = typer.Option(0, help="Seed of the bootstrap resampling (intervals, paired comparisons); recorded in "
                              "summary.json."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip report.html."),
) -> None:
    """Score generated videos against a benchmark spec, one or more models at a time."""
    if ctx.invoked_subcommand is not None:
        return
    from lfa.bench import BenchConfig, parse_model_dirs, run_bench
    from lfa.bench.config import short

    if spec is None or not videos or out_dir is None:
        raise ConfigError("lfa bench needs --spec, --videos and --out",
                          "e.g. lfa bench --spec spec.jsonl --videos mine=gen/mine --out out/bench")
    models = parse_model_dirs(videos)
    config = BenchConfig(
        identities=tuple(identity) if identity else None, primary=primary, detector=detector, pose=pose,
        detect_max_side=detect_max_side, frames=None if (all_frames or fps) else frames,
        fps=None if all_frames else fps,
        compat=tuple(compat or ()), inception=inception, clip=clip, impostors=impostors, far=far,
        cache_dir=None if no_cache else (cache or out_dir / "cache"),
        workers=workers or max(1, min(8, os.cpu_count() or 1)), seed=seed, extra={"argv": sys.argv[1:]})
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=out, transient=True) as progress:
        task = progress.add_task("loading models", total=None)

        def on_progress(message: str, done: int, total: int) -> None:
            progress.update(task, description=message, completed=done, total=total)

        result = run_bench(spec, models, out_dir, config, on_progress=on_progress, report=not no_report)
    cfg = result.config
    head = result.summary["headline"]
    table = Table(title=f"lfa bench: {len(result.items)} items × {len(models)} model(s)")
    for col, justify in (("#", "right"), ("model", "left"), ("score", "right"), ("95% CI", "right"),
                         ("flags", "left"), ("coverage", "right"), ("strict", "right"), ("lenient", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    idn = short(head["identity_model"])
    for e in result.leaderboard:
        m = e["metrics"]
        lo, hi = e["ci95"]
        table.add_row(str(e["rank"]), e["model"], _fmt(e["score"]), f"{_fmt(lo, 2)}–{_fmt(hi, 2)}",
                      " ".join(e["flags"]) or "–", _fmt(m.get("coverage"), 2), _fmt(m.get(f"facesim_{idn}_strict")),
                      _fmt(m.get(f"facesim_{idn}")))
    out.print(table)
    out.print(f"score: verified share per target |yaw| bucket ({head['identity_model']}, FAR {head['far']:g}; "
              f"impostors: {head['impostors']}); strict/lenient: FaceSim-{idn}. Definitions: docs/BENCH.md")
    views = result.summary["views"]
    reach = ", ".join(f"{lab.replace('_', '–')} {c['both'] + c['left'] + c['right']}"
                      for lab, c in views["buckets"].items())
    out.print(f"views: {views['items_with_eval_references']} of {len(result.items)} items have eval_references "
              f"(scoring only); items with a view within {views['max_dyaw']:g}° per |yaw| bucket: {reach}")
    for e in result.leaderboard:
        if e["cross_pose"]:
            out.print(f"{e['model']}: |yaw| {', '.join(b.replace('_', '–') for b in e['cross_pose'])} scored mostly "
                      "cross-pose (no view within 15° of the frame: add eval_references)")
    for p in result.pairs[: max(0, len(result.leaderboard) - 1)]:
        out.print(f"{p.a} vs {p.b}: wins {p.win_rate:.0%} of {p.n_items} items, mean diff {p.mean_diff:+.3f} "
                  f"(95% CI {p.ci95[0]:+.3f}…{p.ci95[1]:+.3f})")
    for model, agg in result.aggregates.items():
        if agg["n_missing"] or agg["n_error"]:
            out.print(f"[yellow]{model}: {agg['n_missing']} missing and {agg['n_error']} unreadable video(s); "
                      "see the status and error columns of scores.csv[/]")
    written = ["leaderboard.json", "scores.csv", "leaderboard.csv", "frames.parquet", "summary.json"] + ([] if no_report else
                                                                                        ["report.html"])
    out.print(f"wrote {', '.join(str(out_dir / w) for w in written)}")


TABLE_WIDTH = 80  # make-spec's tables fit an 80-column terminal
NOT_TAKEN_ROWS = 30  # clips listed one by one; the rest are counted by reason


@app.command("make-spec")
def make_spec_cmd(
    manifest: Path = typer.Option(..., help="Curated manifest.parquet (columns: docs/BENCH.md)."),
    spec: Path = typer.Option(..., "--out", help="Spec to write (.jsonl); references go to references/ beside it."),
    n: int = typer.Option(100, "--n", help="Target number of items (split evenly over the yaw buckets)."),
    per_bucket: int = typer.Option(None, help="Items per |yaw| bucket (overrides --n)."),
    per_cluster: int = typer.Option(1, help="At most this many clips of one identity cluster."),
    holdout: float = typer.Option(0.1, help="Share of clusters held out when the manifest has no split column."),
    seed: int = typer.Option(0, help="Seed of the choice: which clusters are held out (without a split column) "
                             "and which clips of a bucket are taken; recorded in heldout_clusters.json."),
    eval_views: bool = typer.Option(True, "--eval-views/--no-eval-views",
                                    help="Write eval_references: views of each item's person, one per 15 degrees of "
                                    "yaw per side and one up and one down (other held-out clips first), for "
                                    "scoring only."),
) -> None:
    """Build a spec from a curated manifest: held-out identities, balanced over yaw ranges, frontal references."""
    from collections import Counter

    from lfa.bench import make_spec

    result = make_spec(manifest, spec, n_items=n, per_bucket=per_bucket, per_cluster=per_cluster, holdout=holdout,
                       seed=seed, eval_views=eval_views)
    width = min(out.width, TABLE_WIDTH)
    table = Table(title=f"{spec.name}: {len(result.items)} items from {len(result.heldout_clusters)} held-out "
                  "cluster(s)")
    for col in ("|yaw| of the clip (°)", "held-out clips", "items"):
        table.add_column(col, justify="right")
    for bucket, count in result.per_bucket.items():
        table.add_row(bucket.replace("_", "–"), str(result.available[bucket]), str(count))
    out.print(table, width=width)
    out.print("held-out clips: the clips of held-out clusters whose largest |yaw| is in the bucket (the "
              "candidates); items: those taken.", width=width)
    if result.not_taken:
        why = Table(title="held-out clips not taken")
        for col in ("clip", "|yaw|", "cluster", "why not"):
            why.add_column(col, justify="right" if col == "|yaw|" else "left", overflow="fold")
        for x in result.not_taken[:NOT_TAKEN_ROWS]:
            why.add_row(x.clip_id, x.bucket.replace("_", "–"), x.cluster_id, x.reason)
        rest = result.not_taken[NOT_TAKEN_ROWS:]
        if rest:
            counts = Counter(x.reason for x in rest)
            why.add_row(f"… {len(rest)} more", "", "", "; ".join(f"{k}x {r}" for r, k in counts.most_common()))
        out.print(why, width=width)
    if eval_views and result.views:
        views = Table(title="evaluation views (eval_references: scoring only)")
        for col in ("item", "cluster", "other", "own", "yaw reach (°)", "note"):
            views.add_column(col, justify="right" if col in ("other", "own", "yaw reach (°)") else "left",
                             overflow="fold")
        for v in result.views[:NOT_TAKEN_ROWS]:
            reach = "–" if math.isnan(v.yaw_lo) else f"{v.yaw_lo:.0f}…{v.yaw_hi:.0f}"
            views.add_row(v.item, v.cluster_id, str(v.other), str(v.own), reach, v.note)
        rest = result.views[NOT_TAKEN_ROWS:]
        if rest:
            views.add_row(f"… {len(rest)} more", "", str(sum(v.other for v in rest)), str(sum(v.own for v in rest)),
                          "", f"{sum(not v.far for v in rest)} without a view past 45°")
        out.print(views, width=width)
        out.print("other / own: views from the person's other held-out clips (the better evidence: another "
                  "session) / from the item's own clip (its lighting and texture); labels.eval_views in the spec "
                  "names each view.", width=width)
    clips, clusters = result.training
    if clips:
        out.print(f"not candidates: {clips} clip(s) of {clusters} cluster(s) kept for training", width=width)
    for warning in result.warnings:
        out.print(f"[yellow]warning: {warning}[/]", width=width)
    if result.heldout_file:
        out.print(f"held-out clusters (exclude them from training): {result.heldout_file}", highlight=False)
