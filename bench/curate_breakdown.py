"""Where curation's time goes, per component, on one core: every corpus video through ``process_input``
in this process (one thread per library, as in a worker), each model call timed where it is made.

    .venv/bin/python bench/curate_breakdown.py --corpus out/corpus [--set KEY=VALUE ...]

Prints seconds and calls per component and the decode-only time of the same videos, so that the
breakdown reads as "times decode". Model loading is timed separately (a worker pays it once).
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

TIMES: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)


def timed(owner: object, name: str, label: str) -> None:
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            TIMES[label] += time.perf_counter() - t0
            CALLS[label] += 1

    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=["speech.enabled=false"])
    args = parser.parse_args()

    import cv2

    cv2.setNumThreads(1)
    from lfa.curate import pipeline, scan
    from lfa.curate.config import CurateConfig
    from lfa.curate.run import list_inputs
    from lfa.curate.stages import identity, pose, tracking
    from lfa.media import decode

    videos = [item.path for item in list_inputs([args.corpus]).inputs]
    config = CurateConfig.load(None, args.overrides)
    t0 = time.perf_counter()
    models = pipeline.build_models(config)
    load_s = time.perf_counter() - t0

    analyzer = models.analyzer
    timed(analyzer.detector, "detect", "detection (YuNet)")
    fused = analyzer.pose
    if hasattr(fused, "landmarks_backend"):
        timed(fused.landmarks_backend, "estimate", "landmarks (MediaPipe)")
        timed(fused.whenet_backend, "estimate", "WHENet")
    timed(models.encoder, "embed_aligned", "identity embeddings")
    timed(scan, "align_face", "alignment crops")
    timed(scan, "cut_patch", "pose patches")
    timed(decode.DecodedFrame, "thumbnail", "shot thumbnails")
    timed(decode.DecodedFrame, "rgb", "RGB conversion (sampled)")
    timed(scan, "turned_detects_better", "upside-down check")
    timed(tracking, "link_tracks", "tracking")
    timed(pose, "guard_track", "pose guard")
    timed(identity, "check_identity", "identity stage (all)")

    t0 = time.perf_counter()
    for path in videos:
        pipeline.process_input(path, config, models)
    total_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    frames = sum(1 for path in videos for _ in decode.iter_decoded(path))
    decode_s = time.perf_counter() - t0

    print(f"{len(videos)} videos, {frames} frames; one core; model loading {load_s:.2f} s (once per worker)")
    print(f"{'component':34s} {'seconds':>8s} {'calls':>6s} {'ms/call':>8s} {'x decode':>8s}")
    for label, secs in sorted(TIMES.items(), key=lambda kv: -kv[1]):
        print(f"{label:34s} {secs:8.2f} {CALLS[label]:6d} {1000 * secs / CALLS[label]:8.1f} {secs / decode_s:8.2f}")
    print(f"{'decode (every frame, no conversion)':34s} {decode_s:8.2f} {frames:6d} {1000 * decode_s / frames:8.1f}"
          f" {1.0:8.2f}")
    print(f"{'process_input, all':34s} {total_s:8.2f} {'':6s} {'':8s} {total_s / decode_s:8.2f}")


if __name__ == "__main__":
    main()
