"""Rendering speed of lfa synth: frames per second at 512x512 on one core (rendering only, no encoding).

    OMP_NUM_THREADS=1 .venv/bin/python bench/synth.py [--frames 200] [--size 512]

Runs a yaw sweep and a nod-and-turn of the astronaut head, with and without an open mouth;
prints the median per-frame time and frames per second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402

from lfa.synth.backgrounds import make_backdrop  # noqa: E402
from lfa.synth.clip import HeadLibrary  # noqa: E402
from lfa.synth.render import HeadPlacement, render  # noqa: E402
from lfa.synth.trajectory import resolve  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    head = HeadLibrary().get("astronaut")
    size = args.size
    background = make_backdrop("photo", size, size, 0)
    scale = 0.3 * size / head.face_width
    times, cpu = [], []
    for name in ("yaw-sweep", "nod-and-turn"):
        traj = resolve(name)
        for i in range(args.frames):
            s = traj(i / args.frames, 1.0)
            t0, c0 = time.perf_counter(), time.thread_time()
            render(background, [HeadPlacement(head, s.yaw, s.pitch, s.roll, (size / 2, 0.55 * size), scale,
                                              mouth_open=(i % 10) / 10)])
            times.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
    med = statistics.median(times)
    print(f"{len(times)} frames at {size}x{size}, one thread: median {med * 1e3:.2f} ms/frame "
          f"= {1 / med:.0f} frames/s (p90 {sorted(times)[int(0.9 * len(times))] * 1e3:.2f} ms); "
          f"CPU time median {statistics.median(cpu) * 1e3:.2f} ms/frame = {1 / statistics.median(cpu):.0f} frames/s")


if __name__ == "__main__":
    main()
