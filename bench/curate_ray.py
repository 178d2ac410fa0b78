"""Curation throughput on the Ray executor: per worker, and the scaling from 1 to 2 workers.

    .venv/bin/python bench/curate_ray.py [--corpus DIR] [--clips 4] [--address HEAD:6379]

One Ray connection (a local Ray with 2 CPUs, or the cluster at --address) serves every measurement,
so Ray's start is not counted; each run starts fresh worker processes that load the models, as a real
run does. The local executor with one worker is the reference without Ray. The videos are clips of
lfa's standard synthetic corpus (512x512, 25 fps, 3-4 s; rendered first when --corpus is not given).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from lfa.curate.run import curate, list_inputs

NAMES = ["large_angle_astronaut", "large_angle_grace", "small_face", "static_face", "two_faces", "silent"]


def timed(videos: list[Path], out: Path, **kwargs) -> tuple[float, int]:
    frames = 0

    def count(summary: dict) -> None:
        nonlocal frames
        frames += summary["decoded"]

    t0 = time.perf_counter()
    curate(videos, out, report=False, on_input=count, **kwargs)
    return time.perf_counter() - t0, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--address", help="a running cluster (default: a local Ray with 2 CPUs)")
    args = parser.parse_args()
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus
        if corpus is None:
            from lfa.synth import build_corpus

            corpus = Path(tmp) / "corpus"
            build_corpus(corpus, names=NAMES[: args.clips])
        videos = [item.path for item in list_inputs([corpus]).inputs][: args.clips]
        rows = [("local executor", 1, *timed(videos, Path(tmp) / "local", workers=1))]
        if args.address:
            ray.init(address=args.address, log_to_driver=False)
        else:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            for workers in (1, 2):
                rows.append(("ray", workers, *timed(videos, Path(tmp) / f"ray{workers}", executor="ray",
                                                    workers=workers)))
        finally:
            ray.shutdown()
    print(f"{len(videos)} videos, {rows[0][3]} decoded frames; wall time includes model loading")
    print(f"{'executor':16} {'workers':>7} {'wall s':>7} {'inputs/s':>9} {'frames/s':>9} {'per worker':>11}")
    for name, workers, wall, frames in rows:
        print(f"{name:16} {workers:7d} {wall:7.1f} {len(videos) / wall:9.3f} {frames / wall:9.1f} "
              f"{frames / wall / workers:8.1f} f/s")
    print(f"scaling 1 -> 2 Ray workers: {rows[1][2] / rows[2][2]:.2f}x")


if __name__ == "__main__":
    main()
