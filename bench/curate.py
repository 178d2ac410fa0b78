"""Curation speed, side by side in one run:

1. curation wall time vs decoding the same videos only (the floor), both on all cores;
2. sampled (default 4 fps) vs exhaustive (every frame analysed): decision agreement and speedup.

    .venv/bin/python bench/curate.py [--corpus DIR] [--size 1280x720] [--repeats 3] [--skip-exhaustive]

The videos are lfa's standard synthetic corpus, rendered first (at ``--size``, faces keeping their share
of the frame height) into ``--corpus`` when that folder holds no videos.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq

from lfa.curate.config import CurateConfig
from lfa.curate.run import curate, list_inputs
from lfa.media import iter_frames


def render_corpus(folder: Path, size: str) -> None:
    from dataclasses import replace

    from lfa.synth import build_corpus
    from lfa.synth.corpus import STANDARD_CORPUS

    width, height = (int(v) for v in size.lower().split("x"))
    specs = {name: replace(spec, width=width, height=height, face_size=spec.face_size * height / width * spec.width
                           / spec.height) for name, spec in STANDARD_CORPUS.items()}
    build_corpus(folder, specs=specs)


def decode_only(path: Path) -> int:
    return sum(1 for _ in iter_frames(path))


def decisions(run: Path) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    for row in pq.read_table(run / "manifest.parquet").to_pylist():
        out.setdefault(row["source"], []).append("accept")
    for row in pq.read_table(run / "rejected.parquet").to_pylist():
        out.setdefault(row["source"], []).append(row["reason"])
    return {k: ",".join(sorted(v)) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--size", default="512x512", help="WIDTHxHEIGHT of a corpus rendered here.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=["speech.enabled=false"],
                        help="Curation config override (repeatable); the speech stage is off unless "
                             "--set speech.enabled=true (issue 12 measures curation without it).")
    parser.add_argument("--skip-exhaustive", action="store_true", help="Only the curation/decode ratio.")
    args = parser.parse_args()
    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus or Path(tmp) / "corpus"
        if not any(corpus.glob("*.mp4")):
            render_corpus(corpus, args.size)
        videos = [item.path for item in list_inputs([corpus]).inputs]
        config = CurateConfig.load(None, args.overrides)
        frames = 0
        decode_s, curate_s = [], []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            with ProcessPoolExecutor(workers) as pool:
                frames = sum(pool.map(decode_only, videos))
            decode_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            curate(videos, Path(tmp) / f"run{r}", config, workers=workers, report=False)
            curate_s.append(time.perf_counter() - t0)
        d, c = statistics.median(decode_s), statistics.median(curate_s)
        print(f"{len(videos)} videos, {frames} frames, {workers} workers, {args.repeats} repeats (medians); "
              f"settings {args.overrides}")
        print(f"decode only : {d:6.2f} s ({frames / d:6.0f} frames/s)")
        print(f"curation    : {c:6.2f} s  = {c / d:.2f}x decode-only (goal <= 2x)")
        if args.skip_exhaustive:
            return
        t0 = time.perf_counter()
        exhaustive = Path(tmp) / "exhaustive"
        curate(videos, exhaustive, CurateConfig.load(None, [*args.overrides, "tracking.sample_fps=1000"]),
               workers=workers, report=False)
        e = time.perf_counter() - t0
        sampled, full = decisions(Path(tmp) / "run0"), decisions(exhaustive)
        agree = sum(sampled.get(v) == full.get(v) for v in full) / len(full)
        print(f"exhaustive  : {e:6.2f} s  -> sampled is {e / c:.1f}x faster; decisions agree on "
              f"{agree:.0%} of {len(full)} videos")
        for v in full:
            if sampled.get(v) != full.get(v):
                print(f"  differs: {Path(v).name}: sampled {sampled.get(v)} vs exhaustive {full.get(v)}")


if __name__ == "__main__":
    main()
