"""WHENet's yaw error and the detector's hit rate on ±90° sweeps rendered by two versions of lfa synth.

Rendering and measuring are separate steps, so the renders of an older lfa (whose package has no WHENet)
can be measured by the current one:

    git archive 47e370d src | tar -x -C /tmp/old                      # lfa before issue 16
    PYTHONPATH=/tmp/old/src .venv/bin/python bench/synth_whenet_before_after.py render /tmp/old.npz PHOTO...
    .venv/bin/python bench/synth_whenet_before_after.py render /tmp/new.npz PHOTO...
    .venv/bin/python bench/synth_whenet_before_after.py measure /tmp/old.npz /tmp/new.npz

Sweeps: yaw −90…90° in 2° steps, 3 seeds (backdrop and light), 384×384, face 30% of the width. Per |yaw|
bucket: WHENet's absolute yaw error against the rendered truth and the share of frames where the
detector finds the rendered face (``bench/synth_profile.py``'s rule).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
BUCKETS = ((0, 30), (30, 60), (60, 75), (75, 91))


def render(out: str, photos: list[str]) -> None:
    from synth_profile import render_yaw

    from lfa.synth.clip import HeadLibrary

    heads = HeadLibrary()
    images, truth, boxes = [], [], []
    for photo in photos:
        for seed in range(3):
            for yaw in np.arange(-90, 91, 2.0):
                image, box = render_yaw(heads, photo, float(yaw), 384, seed)
                images.append(image)
                truth.append(yaw)
                boxes.append(box)
    np.savez_compressed(out, images=np.stack(images), truth=np.array(truth), boxes=np.stack(boxes))
    print(f"{out}: {len(images)} frames")


def measure(paths: list[str]) -> None:
    from synth_profile import hits

    from lfa.face import AnalyzerConfig, FaceAnalyzer

    analyzer = FaceAnalyzer(AnalyzerConfig(pose="whenet", identity="none"))
    print("| renders | " + " | ".join(f"{lo}–{min(hi, 90)}°" for lo, hi in BUCKETS) + " |")
    for path in paths:
        data = np.load(path)
        errors: dict[tuple, list[float]] = {b: [] for b in BUCKETS}
        found: dict[tuple, list[bool]] = {b: [] for b in BUCKETS}
        for image, yaw, box in zip(data["images"], data["truth"], data["boxes"]):
            bucket = next(b for b in BUCKETS if b[0] <= abs(yaw) < b[1])
            faces = [f for f in analyzer.analyze(image) if hits(box, [f])]
            found[bucket].append(bool(faces))
            if faces and not np.isnan(faces[0].yaw):
                errors[bucket].append(abs(faces[0].yaw - yaw))
        cells = [f"{np.mean(errors[b]):.1f}° / {np.mean(found[b]):.0%}" if errors[b] else "–" for b in BUCKETS]
        print(f"| {path} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("render", "measure"):
        sys.exit(__doc__)
    render(sys.argv[2], sys.argv[3:]) if sys.argv[1] == "render" else measure(sys.argv[2:])
