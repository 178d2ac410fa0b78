"""Evaluation throughput of ``lfa bench``: N generated videos of F frames at a given size.

    .venv/bin/python bench/eval_throughput.py [--videos 100] [--frames 49] [--size 854x480] [--workers 2]
                                              [--sample 16 | --sample all] [--json out.json]

Goal (the benchmark issue): 100 videos of 49 frames at 480p in under 5 minutes on 2 cores with the
default models (YuNet + the fused pose + dlib, the calibrated headline). The videos are rendered here
with lfa.synth (a few distinct clips — yaw sweep, nod-and-turn, frontal drift, another identity — 49
frames at 8 fps, the face 25 % of the width) and repeated to N files, each made distinct in content by an
MP4 ``free`` box holding its index (the same frames, another SHA-256), so that ``lfa bench``'s
content-hash cache cannot skip them; the spec has N items with one rendered frontal reference.
Timing covers the whole ``run_bench`` call (model loading, references, worker start-up, every video,
metrics and output files, report included), measured from the outside with a wall clock.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import struct
import tempfile
import time
from pathlib import Path

from lfa.bench import BenchConfig, run_bench
from lfa.face.detect import DETECT_MAX_SIDE
from lfa.media import iter_frames, write_image
from lfa.synth import ClipSpec, HeadLibrary, render_clip

CLIPS = (("astronaut", "yaw-sweep"), ("astronaut", "nod-and-turn"), ("astronaut", "frontal"),
         ("grace_hopper", "yaw-sweep"))


def make_videos(root: Path, n: int, frames: int, width: int, height: int, fps: float) -> Path:
    heads = HeadLibrary()
    distinct = []
    for k, (photo, trajectory) in enumerate(CLIPS):
        path = root / "distinct" / f"{k}.mp4"
        render_clip(ClipSpec(photo, trajectory, duration=frames / fps, fps=fps, width=width, height=height,
                             face_size=0.25, seed=k), path, heads)
        distinct.append(path)
    ref_clip = root / "reference.mp4"
    render_clip(ClipSpec("astronaut", "static", duration=0.2, fps=fps, width=width, height=height, face_size=0.25),
                ref_clip, heads)
    write_image(root / "reference.png", next(iter(iter_frames(ref_clip))).image)
    gen = root / "gen"
    gen.mkdir()
    lines = []
    for i in range(n):
        target = gen / f"v{i:03d}.mp4"
        shutil.copy(distinct[i % len(distinct)], target)
        payload = f"lfa eval_throughput copy {i}".encode()
        with open(target, "ab") as fh:  # a top-level MP4 'free' box: ignored by decoders, changes the hash
            fh.write(struct.pack(">I4s", 8 + len(payload), b"free") + payload)
        lines.append(json.dumps({"id": f"v{i:03d}", "reference": "reference.png", "prompt": "a person"}))
    (root / "spec.jsonl").write_text("\n".join(lines) + "\n")
    return root / "spec.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--frames", type=int, default=49, help="frames per generated video")
    parser.add_argument("--size", default="854x480")
    parser.add_argument("--fps", type=float, default=8.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sample", default="16", help="frames scored per video, or 'all'")
    parser.add_argument("--detect-max-side", type=int, default=DETECT_MAX_SIDE,
                        help=f"detector input, longest side (default: lfa's one size, {DETECT_MAX_SIDE})")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path, help="keep the videos and outputs in this folder")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    root = args.keep or Path(tempfile.mkdtemp(prefix="lfa-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    spec = make_videos(root, args.videos, args.frames, width, height, args.fps)
    render_s = time.perf_counter() - t0
    sample = None if args.sample == "all" else int(args.sample)
    config = BenchConfig(frames=sample, workers=args.workers, detect_max_side=args.detect_max_side)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    result = run_bench(spec, {"gen": root / "gen"}, root / "out", config)
    wall = time.perf_counter() - t0
    timing = result.summary["timing"]
    scored = timing["frames"]
    stage = timing["stage_cpu_s"]
    per_face = {k: round(v / max(result.aggregates["gen"]["n_detected"], 1) * 1e3, 1)
                for k, v in stage.items() if k.startswith(("embed", "pose"))}
    report = {
        "videos": args.videos, "frames_per_video": args.frames, "size": args.size, "workers": args.workers,
        "frames_scored_per_video": sample or args.frames, "frames_scored": scored,
        "wall_s": round(wall, 1), "goal_s": 300, "meets_goal": wall < 300,
        "s_per_video": round(wall / args.videos, 3),
        "ms_per_scored_frame_wall": round(wall / max(scored, 1) * 1e3, 1),
        "ms_per_video_frame_wall": round(wall / (args.videos * args.frames) * 1e3, 1),
        "stage_cpu_s": stage, "cpu_ms_per_face": per_face,
        "detection_rate": round(result.aggregates["gen"]["detection_rate"], 3),
        "videos_reused_from_cache": result.summary["cache"]["videos_reused"],
        "render_s": round(render_s, 1), "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()], "cpu_count": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
    }
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
