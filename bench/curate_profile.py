"""Where curation's time goes on a folder of videos: one process, models loaded once, cProfile.

Prints decoding alone (``iter_frames``, RGB), then ``curate(..., workers=1)`` (the whole run in this
process: scan, stages, store) under cProfile, as a ratio to decoding and the top functions by
cumulative time. For the realistic mix of issue 30, render it first with ``bench/curate.py --mix
realistic --corpus DIR`` (the folder is kept) or any folder of videos:

    .venv/bin/python bench/curate_profile.py DIR [--set KEY=VALUE ...] [--top 35] [--cpu]

``--cpu``: CPU seconds of this process (``time.process_time``, its threads included) for decoding, curation
and the profile, instead of wall-clock seconds: on a shared machine, what other jobs do not change.
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
    parser.add_argument("--cpu", action="store_true", help="CPU seconds (process_time) instead of wall-clock")
    args = parser.parse_args()

    from lfa.curate.config import CurateConfig
    from lfa.curate.run import curate
    from lfa.media import iter_frames

    videos = sorted(args.folder.glob("*.mp4"))
    config = CurateConfig.load(None, args.overrides)
    clock = time.process_time if args.cpu else time.perf_counter
    t0 = clock()
    frames = sum(1 for video in videos for _ in iter_frames(video))
    decode = clock() - t0
    print(f"{len(videos)} videos, {frames} frames: decoding alone {decode:.2f} {'CPU s' if args.cpu else 's'}")
    profile = cProfile.Profile(clock)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = clock()
        profile.enable()
        curate(videos, Path(tmp) / "run", config, workers=1, report=False)
        profile.disable()
        wall = clock() - t0
    unit = "CPU s" if args.cpu else "s"
    print(f"curate, one process (model loading included): {wall:.2f} {unit} = {wall / decode:.2f}x decoding")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
