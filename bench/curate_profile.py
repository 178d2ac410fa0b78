"""Where curation's time goes on a folder of videos: one process, models loaded once, cProfile.

Prints decoding alone (``iter_frames``, RGB), then ``curate(..., workers=1)`` (the whole run in this
process: scan, stages, store) under cProfile, as a ratio to decoding and the top functions by
cumulative time. For the realistic mix of issue 30, render it first with ``bench/curate.py --mix
realistic --corpus DIR`` (the folder is kept) or any folder of videos:

    .venv/bin/python bench/curate_profile.py DIR [--set KEY=VALUE ...] [--top 35]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=["speech.enabled=false"])
    parser.add_argument("--top", type=int, default=35)
    args = parser.parse_args()

    from lfa.curate.config import CurateConfig
    from lfa.curate.run import curate
    from lfa.media import iter_frames

    videos = sorted(args.folder.glob("*.mp4"))
    config = CurateConfig.load(None, args.overrides)
    t0 = time.perf_counter()
    frames = sum(1 for video in videos for _ in iter_frames(video))
    decode = time.perf_counter() - t0
    print(f"{len(videos)} videos, {frames} frames: decoding alone {decode:.2f} s")
    profile = cProfile.Profile()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        profile.enable()
        curate(videos, Path(tmp) / "run", config, workers=1, report=False)
        profile.disable()
        wall = time.perf_counter() - t0
    print(f"curate, one process (model loading included): {wall:.2f} s = {wall / decode:.2f}x decoding")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
