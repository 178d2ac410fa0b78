"""``curate``: inputs in, manifest out. Resumable: finished inputs are skipped on a rerun."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lfa.curate.clustering import cluster_identities
from lfa.curate.config import CurateConfig
from lfa.curate.executors import run_local, run_ray
from lfa.curate.outputs import FAILURES, FRAMES, MANIFEST, REJECTED, write_table
from lfa.curate.pipeline import InputResult
from lfa.curate.store import ResultStore
from lfa.errors import ConfigError, LfaError

METADATA_SUFFIXES = {".json", ".csv", ".txt", ".srt", ".vtt", ".md", ".partial"}
EXECUTORS = ("local", "ray")


def list_inputs(paths: Iterable[Path]) -> list[Path]:
    """Files given, and every file under folders given (hidden files and caption sidecars excepted),
    as absolute paths in a stable order. Non-video files are kept: they become failure rows."""
    found: list[Path] = []
    for path in paths:
        path = Path(path).expanduser()
        if path.is_dir():
            found += [p for p in path.rglob("*") if p.is_file() and not any(x.startswith(".") for x in p.parts[-1:])
                      and p.suffix.lower() not in METADATA_SUFFIXES]
        elif path.exists():
            found.append(path)
        else:
            raise ConfigError(f"input not found: {path}", "pass video files or folders that exist")
    return sorted({p.resolve() for p in found})


@dataclass
class CurateSummary:
    inputs: int = 0
    processed: int = 0  # in this run (the rest were finished before)
    accepted_clips: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # "stage/reason" -> clips
    failed: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)


def curate(inputs: Iterable[Path], out_dir: Path, config: CurateConfig | None = None, *, executor: str = "local",
           workers: int | None = None, address: str | None = None, retry_failed: bool = False,
           cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0,
           on_input: Callable[[dict[str, Any]], None] | None = None,
           on_start: Callable[[int, int], None] | None = None, report: bool = True) -> CurateSummary:
    config = config or CurateConfig()
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}", f"use one of {', '.join(EXECUTORS)}")
    sources = list_inputs(inputs)
    if not sources:
        raise ConfigError("no input files found", "pass video files or folders holding them")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    store = ResultStore(out_dir, config.work_digest())
    todo = []
    for source in sources:
        done = store.load(source)
        if done is None or (retry_failed and done.failure is not None):
            todo.append(source)
    if on_start:
        on_start(len(sources), len(todo))
    workers = workers or max(1, min(os.cpu_count() or 1, len(todo)))
    if executor == "ray":
        stream = run_ray(todo, config, out_dir, workers, address, cpus_per_worker, gpus_per_worker)
    else:
        stream = run_local(todo, config, out_dir, workers)
    for summary in stream:
        if on_input:
            on_input(summary)
    results = [store.load(s) for s in sources]
    missing = [str(s) for s, r in zip(sources, results) if r is None]
    if missing:
        raise LfaError(f"{len(missing)} input(s) have no result, e.g. {missing[0]}", "run the same command again")
    summary = merge(results, out_dir, config)  # type: ignore[arg-type]
    summary.inputs, summary.processed = len(sources), len(todo)
    if report:
        from lfa.curate.report import write_report

        summary.outputs["report"] = write_report(out_dir)
    return summary


def merge(results: list[InputResult], out_dir: Path, config: CurateConfig) -> CurateSummary:
    """All per-input results → cluster ids → the four tables. Deterministic given the results."""
    clips = [c for r in results for c in r.clips]
    if clips:
        ids = cluster_identities(np.array([c["identity_centroid"] for c in clips]), config.identity.cluster_similarity)
        for clip, cid in zip(clips, ids):
            clip["cluster_id"] = int(cid)
    if config.captions.vlm_endpoint:
        _vlm_captions(clips, out_dir, config)
    rejected = [row for r in results for row in r.rejected]
    failures = [r.failure for r in results if r.failure is not None]
    outputs = {name: out_dir / f"{name}.parquet" for name in ("manifest", "frames", "rejected", "failures")}
    write_table(outputs["manifest"], clips, MANIFEST)
    write_table(outputs["frames"], [row for r in results for row in r.frames], FRAMES)
    write_table(outputs["rejected"], rejected, REJECTED)
    write_table(outputs["failures"], failures, FAILURES)
    counts: dict[str, int] = {}
    for row in rejected:
        key = f"{row['stage']}/{row['reason']}"
        counts[key] = counts.get(key, 0) + 1
    return CurateSummary(accepted_clips=len(clips), rejected=counts, failed=failures,
                         outputs={**outputs, "config": out_dir / "config.json"})


def _vlm_captions(clips: list[dict[str, Any]], out_dir: Path, config: CurateConfig) -> None:
    from lfa.curate.stages.captions import VlmCaptioner
    from lfa.media import read_frames

    captioner = VlmCaptioner(config.captions, out_dir / "cache" / "vlm")
    for clip in clips:
        frontal = next((r for r in clip["references"] if r["role"] == "frontal"), None)
        if clip["caption"] or frontal is None:
            continue
        frames = read_frames(clip["source"], times=[frontal["t"]])
        if frames:
            clip["caption"], clip["caption_source"] = captioner.caption(frames[0].image), "vlm"
