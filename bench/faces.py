"""Milliseconds per frame for each perception stage: decode, detect, landmarks, WHENet, embed.

    .venv/bin/python bench/faces.py [--frames 60] [--size 720x528] [--threads 1] [--json out.json]

The default pose is fused: the MediaPipe landmark fit and WHENet both run on every face (their sum
is the pose cost); ``--threads`` sets PyTorch's threads (WHENet; channels_last).

The video is made here from the astronaut photo (a slow pan and zoom, one face), encoded H.264
with lfa.media, then every stage runs on every frame; each figure is the median over frames.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from lfa.face.analyzer import AnalyzerConfig, build_detector, build_identity, build_pose
from lfa.face.identity import embed_faces
from lfa.media import iter_frames, write_video
from lfa.registry import ModelStore
from lfa.samples import sample_photo


def make_video(path: Path, n: int, width: int, height: int) -> None:
    photo = sample_photo("astronaut")
    frames = []
    for i in range(n):
        zoom = 1.0 + 0.3 * i / max(n - 1, 1)
        m = cv2.getRotationMatrix2D((256, 140), 0, zoom)
        m[0, 2] += 3 * i
        frames.append(cv2.resize(cv2.warpAffine(photo, m, (512, 512)), (width, height)))
    write_video(path, frames, fps=25)


def ms(samples: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(samples) * 1e3, 2),
            "p90_ms": round(float(np.percentile(samples, 90)) * 1e3, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", default="720x528")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.split("x"))
    store, config = ModelStore(), AnalyzerConfig()
    detector, pose, identity = build_detector(config, store), build_pose(config, store), build_identity(config, store)
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "bench.mp4"
        make_video(video, args.frames, width, height)
        timings: dict[str, list[float]] = {"decode": [], "detect": [], "landmarks": [], "whenet": [], "embed": []}
        frames = []
        t0 = time.perf_counter()
        for frame in iter_frames(video):
            t1 = time.perf_counter()
            timings["decode"].append(t1 - t0)
            frames.append(frame.image)
            t0 = time.perf_counter()
        faces_found = 0
        for image in frames:
            t0 = time.perf_counter()
            dets = detector.detect(image)
            t1 = time.perf_counter()
            for det in dets:
                pose.landmarks_backend.estimate(image, det)
            t2 = time.perf_counter()
            for det in dets:
                pose.whenet_backend.estimate(image, det)
            t3 = time.perf_counter()
            embed_faces(identity, image, [d.landmarks5 for d in dets])
            t4 = time.perf_counter()
            faces_found += len(dets)
            timings["detect"].append(t1 - t0)
            timings["landmarks"].append(t2 - t1)
            timings["whenet"].append(t3 - t2)
            timings["embed"].append(t4 - t3)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "threads": args.threads,
        "frames": len(frames), "size": f"{width}x{height}", "faces_per_frame": faces_found / max(len(frames), 1),
        "stages": {k: ms(v) for k, v in timings.items()},
    }
    total = sum(v["median_ms"] for v in result["stages"].values())
    print(f"{len(frames)} frames {width}x{height}, {result['faces_per_frame']:.2f} faces/frame, {result['machine']}")
    print(f"{'stage':<16}{'median ms':>12}{'p90 ms':>10}")
    for stage, figures in result["stages"].items():
        print(f"{stage:<16}{figures['median_ms']:>12.2f}{figures['p90_ms']:>10.2f}")
    print(f"{'total':<16}{total:>12.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
