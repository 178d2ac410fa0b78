"""``curate``: inputs in, manifest out. Resumable: finished inputs are skipped on a rerun."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lfa.curate.clustering import Clusters, cluster_identities
from lfa.curate.config import CurateConfig
from lfa.curate.duplicates import identical_groups
from lfa.curate.executors import run_local, summarize
from lfa.curate.outputs import CLUSTERS, FAILURES, FRAMES, MANIFEST, REJECTED, WARNINGS, write_table
from lfa.curate.pipeline import InputResult, build_scorer
from lfa.curate.stages.speech import enrich_captions
from lfa.curate.store import ResultStore, input_key
from lfa.errors import ConfigError
from lfa.face.identity.score import FaceSet

EXECUTORS = ("local", "ray")
SIDECAR_SUFFIXES = (".txt", ".json")  # VIDEO.txt, VIDEO.json: read for VIDEO's caption (stages/captions.py)


@dataclass(frozen=True)
class InputFile:
    """One input as the run listed it: ``key`` names its stored result; ``problem`` is why it cannot be
    read at all (a missing path, a dangling link, a FIFO), which makes it a failure row, not an abort."""

    path: Path
    key: str
    problem: tuple[str, str] | None = None
    size: int = -1  # bytes when listed (-1: unknown)


@dataclass
class Listing:
    inputs: list[InputFile]
    captions: list[Path]  # files read as caption metadata, not inputs: VIDEO.txt / VIDEO.json, captions.metadata


_SPECIAL = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"))


def _entry(path: Path) -> tuple[str, tuple[str, str] | None, os.stat_result | None] | None:
    """What a listed path is: None for a folder (searched instead), else (kind, problem or None, its stat)."""
    try:
        st = path.stat()
    except OSError:
        if path.is_symlink():
            return "link", (f"dangling link to {os.readlink(path)}", "fix or remove the link"), None
        return "missing", ("input not found", "pass video files or folders that exist"), None
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        return None
    if stat.S_ISREG(mode):
        return "file", None, st
    what = next((name for test, name in _SPECIAL if test(mode)), "not a regular file")
    return "special", (f"not a regular file ({what}); it was not opened", "pass video files; move it out of the "
                       "input folder"), st


def list_inputs(paths: Iterable[Path], metadata: str | None = None) -> Listing:
    """Files given, and every file under folders given (any folder, whatever its name, is searched; hidden
    files are skipped), as absolute paths in a stable order. Caption sidecars (``VIDEO.txt``, ``VIDEO.json``
    beside an input ``VIDEO.*``) and the ``metadata`` caption file are listed apart; every other file is an
    input, so it appears exactly once in the run's tables: non-video files, FIFOs, sockets and devices (never
    opened), missing paths and dangling links become failure rows."""
    found: dict[Path, tuple[tuple[str, str] | None, os.stat_result | None]] = {}
    for path in paths:
        path = Path(path).expanduser().absolute()
        if path.is_dir():
            entries = sorted(p for p in path.rglob("*") if not p.name.startswith("."))
        else:
            entries = [path]
        for p in entries:
            kind = _entry(p)
            if kind is not None:
                found.setdefault(p.resolve() if kind[0] == "file" else p, kind[1:])
    meta = Path(metadata).expanduser().resolve() if metadata else None
    videos = {(p.parent, p.stem) for p, (problem, _) in found.items()
              if problem is None and p.suffix.lower() not in SIDECAR_SUFFIXES}
    captions = sorted(p for p, (problem, _) in found.items() if problem is None and (
        p == meta or (p.suffix.lower() in SIDECAR_SUFFIXES and (p.parent, p.stem) in videos)))
    if meta is not None and meta.is_file() and meta not in captions:
        captions.append(meta)
    read_for_captions = set(captions)
    inputs = [InputFile(p, input_key(p, st), problem, st.st_size if st is not None else -1)
              for p, (problem, st) in sorted(found.items()) if p not in read_for_captions]
    return Listing(inputs, captions)


@dataclass
class CurateSummary:
    inputs: int = 0
    processed: int = 0  # in this run (the rest were finished before)
    accepted_clips: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # "stage/reason" -> clips
    failed: list[dict[str, Any]] = field(default_factory=list)
    warnings: int = 0  # rows of warnings.parquet
    duplicates: int = 0  # inputs byte-identical to an earlier input (each has a warning)
    caption_files: int = 0  # files read as caption metadata (VIDEO.txt, VIDEO.json, captions.metadata), not inputs
    outputs: dict[str, Path] = field(default_factory=dict)


def curate(inputs: Iterable[Path], out_dir: Path, config: CurateConfig | None = None, *, executor: str = "local",
           workers: int | None = None, address: str | None = None, retry_failed: bool = False,
           cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0, attempts: int = 3,
           on_input: Callable[[dict[str, Any]], None] | None = None,
           on_start: Callable[[int, int, list[dict[str, Any]]], None] | None = None, report: bool = True,
           on_status: Callable[[str], None] | None = None) -> CurateSummary:
    """Curate ``inputs`` into ``out_dir``. Callbacks: ``on_start(inputs, to_do, finished)`` with the summaries
    of the inputs not to do (failure rows of the listing, results of earlier runs), ``on_input(summary)`` per
    input finished now, ``on_status(text)`` for what happens between (models loading, a long video's
    progress, retries, Ray's nodes, workers, inputs in flight and throughput, merging, the report).
    Ray: ``address`` (else ``RAY_ADDRESS``) joins a cluster, whose nodes must all see ``out_dir`` and the
    inputs. ``attempts`` bounds the tries of an input whose worker process dies (both executors; with one
    local worker, ``workers=1``, inputs run in this process)."""
    status = on_status or (lambda text: None)
    config = config or CurateConfig()
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}", f"use one of {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}", "omit it to use one per core")
    listing = list_inputs(inputs, config.captions.metadata)
    listed = listing.inputs
    if not any(item.problem is None for item in listed):
        missing = next((i for i in listed if i.problem), None)
        raise ConfigError("no input files found" + (f" ({missing.path}: {missing.problem[0]})" if missing and
                                                    missing.problem else ""),
                          "pass video files or folders holding them")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    store = ResultStore(out_dir, config.work_digest())
    pending, finished = [], []
    for item in listed:
        done = store.load(item.key) if item.problem is None else _result_of(item, store)
        if item.problem is None and (done is None or (retry_failed and done.failure is not None)):
            pending.append(item)
        elif done is not None:
            finished.append(summarize(done))
    todo = [(item.path, item.key) for item in largest_first(pending)]
    if on_start:
        on_start(len(listed), len(todo), finished)
    on_cluster = executor == "ray" and bool(address or os.environ.get("RAY_ADDRESS"))
    if executor == "ray" and not on_cluster:  # a cluster's size is the cluster's: the Ray executor reads it
        workers = workers or max(1, min(os.cpu_count() or 1, len(todo)))
    if todo:
        status(f"joining the Ray cluster at {address or os.environ['RAY_ADDRESS']}" if on_cluster
               else f"loading models ({min(workers or os.cpu_count() or 1, len(todo))} worker(s))")

    def video_progress(source: str, t: float, duration: float) -> None:
        status(f"{Path(source).name}: {t:.0f} of {duration:.0f} s")

    if executor == "ray":
        from lfa.curate.ray_executor import run_ray

        stream = run_ray(todo, config, out_dir, workers, address, cpus_per_worker, gpus_per_worker, attempts, status)
    else:
        stream = run_local(todo, config, out_dir, workers, video_progress, attempts, status)
    for item_summary in stream:
        if on_input:
            on_input(item_summary)
    status("merging results")
    results = [_result_of(item, store) for item in listed]
    summary = merge(results, out_dir, config)  # type: ignore[arg-type]
    summary.inputs, summary.processed, summary.caption_files = len(listed), len(todo), len(listing.captions)
    if report:
        from lfa.curate.report import write_report

        status("writing report.html")
        summary.outputs["report"] = write_report(out_dir)
    return summary


def largest_first(items: list[InputFile]) -> list[InputFile]:
    """The order in which workers take the inputs: the largest files first (ties in listing order). A run
    ends when its last input does; a long video taken last keeps one worker busy while the others idle,
    and size is the cost known before decoding (frames x pixels, at the source's bit rate). The tables are
    written in listing order whatever the order of work."""
    return sorted(items, key=lambda item: item.size, reverse=True)


def _result_of(item: InputFile, store: ResultStore) -> InputResult:
    """The stored result of one listed input, or a failure row that says why there is none."""
    source = str(item.path)
    if item.problem is not None:
        return InputResult(source, failure={"input": source, "error": item.problem[0], "fix": item.problem[1]})
    result = store.load(item.key)
    if result is None:  # its worker died, or the executor lost it: say so, keep the rest of the run
        return InputResult(source, failure={"input": source, "error": "no result (its worker stopped)",
                                            "fix": "run the same command again to retry it"})
    if input_key(item.path) != item.key:
        result.warnings.append({"source": source, "clip_id": "", "stage": "input",
                                "message": "the file changed or disappeared after the run listed it; "
                                           "its rows describe the earlier version (rerun to redo it)"})
    return result


def merge(results: list[InputResult], out_dir: Path, config: CurateConfig) -> CurateSummary:
    """All per-input results → duplicates → cluster ids → the tables. Deterministic given the results."""
    copies = {copy: group[0] for group in identical_groups([r.source for r in results], out_dir / "cache")
              for copy in group[1:]}  # byte-identical input -> the first copy (in input order)
    duplicate_warnings = [{"source": copy, "clip_id": "", "stage": "duplicate", "message": (
        f"byte-identical to {first}: " + ("only the first copy's clips are kept (dedup=true)" if config.dedup else
                                          "both copies' clips are kept, in one identity cluster (split train and "
                                          "held-out by cluster_id; --set dedup=true keeps the first copy only)"))}
        for copy, first in copies.items()]
    clips, rejected = [], []
    for r in results:
        rejected += r.rejected
        if config.dedup and r.source in copies:
            rejected += [_duplicate_row(c) for c in r.clips]
        else:
            clips += r.clips
    clusters = _clusters(clips, copies, config)
    for clip, cid in zip(clips, clusters.ids):
        clip["cluster_id"] = int(cid)
    if config.captions.vlm_endpoint:
        _vlm_captions(clips, out_dir, config)
    speech_warnings = enrich_captions(clips, config.speech, out_dir / "cache" / "speech")
    failures = [r.failure for r in results if r.failure is not None]
    warnings = [w for r in results for w in r.warnings] + duplicate_warnings + speech_warnings
    outputs = {name: out_dir / f"{name}.parquet" for name in ("manifest", "frames", "rejected", "failures",
                                                              "warnings", "clusters")}
    write_table(outputs["manifest"], clips, MANIFEST)
    write_table(outputs["frames"], [row for r in results for row in r.frames], FRAMES)
    write_table(outputs["rejected"], rejected, REJECTED)
    write_table(outputs["failures"], failures, FAILURES)
    write_table(outputs["clusters"], clusters.rows(), CLUSTERS)
    write_table(outputs["warnings"], warnings, WARNINGS)
    counts: dict[str, int] = {}
    for row in rejected:
        key = f"{row['stage']}/{row['reason']}"
        counts[key] = counts.get(key, 0) + 1
    return CurateSummary(accepted_clips=len(clips), rejected=counts, failed=failures, warnings=len(warnings),
                         duplicates=len(copies), outputs={**outputs, "config": out_dir / "config.json"})


def _duplicate_row(clip: dict[str, Any]) -> dict[str, Any]:
    """A clip of a byte-identical copy, dropped by ``dedup``: a rejected row."""
    return {"source": clip["source"], "clip_id": clip["clip_id"], "start": clip["start"], "end": clip["end"],
            "stage": "duplicates", "reason": "duplicate_input", "value": None, "threshold": None,
            "measure": "duplicate", "main_track": clip["main_track"], "offending": []}


def _clusters(clips: list[dict[str, Any]], copies: dict[str, str], config: CurateConfig) -> Clusters:
    """Identity clusters of ``clips``; a clip of a byte-identical copy takes the cluster of the first copy's
    clip at the same time (the same content gives the same clips), so copies never straddle a split."""
    first_copy = {(c["source"], c["start"], c["end"]): i for i, c in enumerate(clips) if c["source"] not in copies}
    twin = {i: first_copy[key] for i, c in enumerate(clips) if c["source"] in copies
            and (key := (copies[c["source"]], c["start"], c["end"])) in first_copy}
    own = [i for i in range(len(clips)) if i not in twin]
    sets = [FaceSet(np.array(clips[i]["identity_embeddings"]),
                    np.array([np.nan if y is None else y for y in clips[i]["identity_yaws"]]),
                    backend=clips[i]["identity_model"]) for i in own]
    clusters = cluster_identities(sets, build_scorer(config), config.identity.cluster_min_z)
    ids = np.zeros(len(clips), np.int64)
    ids[own] = clusters.ids
    for i, j in twin.items():
        ids[i] = ids[j]
    clusters.ids = ids
    return clusters


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
