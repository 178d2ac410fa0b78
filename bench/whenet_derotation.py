"""Does the pose's roll follow an in-plane rotation of a profile? WHENet plain vs de-rotated.

    .venv/bin/python bench/whenet_derotation.py [PHOTO ...] [--yaws -85 -75 -65 65 75 85] [--turns -15 -8 8 15]

Heads fitted to each photo (default: the two sample photos, the tuning set; pass the held-out photos
that ``bench/identity_calibration.py photos`` gathers) are rendered at each yaw, and each render is
turned in the image plane by each angle. The ground truth needs no renderer: turning an image by δ
changes lfa's roll by exactly δ (roll is the last rotation, about the camera axis) and leaves yaw and
pitch alone. Reported per method: |Δroll − δ| (median, 90th percentile, share within 3°) and how far
yaw and pitch move.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from lfa.face import FaceAnalyzer
from lfa.face.pose.whenet import WHENetPose
from lfa.face.types import Detection
from lfa.registry import ModelStore
from lfa.synth import HeadLibrary
from lfa.synth.backgrounds import make_backdrop
from lfa.synth.render import HeadPlacement, render


def turned(image: np.ndarray, degrees: float, centre: tuple[float, float]) -> np.ndarray:
    m = cv2.getRotationMatrix2D(centre, degrees, 1.0)  # counter-clockwise: lfa roll + degrees
    return cv2.warpAffine(image, m, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REPLICATE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", nargs="*", default=["astronaut", "grace_hopper"])
    parser.add_argument("--yaws", type=float, nargs="+", default=[-85, -75, -65, 65, 75, 85])
    parser.add_argument("--turns", type=float, nargs="+", default=[-15, -8, 8, 15])
    args = parser.parse_args()
    torch.set_num_threads(1)
    analyzer = FaceAnalyzer()
    heads = HeadLibrary(analyzer)
    weights = ModelStore().path("whenet")
    methods = {"plain": WHENetPose(weights, derotate_min_yaw=None),
               "de-rotated": WHENetPose(weights, derotate_mirror=True),
               "de-rot. 1x": WHENetPose(weights, derotate_mirror=False)}  # re-reads without their mirror
    errors: dict[str, list[tuple[float, float, float]]] = {m: [] for m in methods}
    skipped = 0
    for photo in args.photos:
        head = heads.get(photo)
        for yaw in args.yaws:
            image, _ = render(make_backdrop("photo", 512, 512, 3),
                              [HeadPlacement(head, yaw, 0, 0, (256, 280), 170 / head.face_width)])
            readings: dict[float, dict[str, tuple[float, float, float]]] = {}
            for turn in [0.0, *args.turns]:
                frame = turned(image, turn, (256, 280))
                faces = analyzer.find(frame)
                if not faces:
                    continue
                d = Detection(faces[0].box, faces[0].score, faces[0].landmarks5)
                readings[turn] = {}
                for name, pose in methods.items():
                    p = pose.estimate(frame, d)
                    if p is not None:
                        readings[turn][name] = (p.yaw, p.pitch, p.roll)
            if 0.0 not in readings:
                skipped += len(args.turns)
                continue
            for turn in args.turns:
                for name in methods:
                    if name in readings.get(turn, {}) and name in readings[0.0]:
                        (y0, p0, r0), (y1, p1, r1) = readings[0.0][name], readings[turn][name]
                        errors[name].append((abs(r1 - r0 - turn), abs(y1 - y0), abs(p1 - p0)))
                    else:
                        skipped += 1
    print(f"{len(args.photos)} photos, yaws {args.yaws}, turns {args.turns}; {skipped} cases without a face")
    print(f"{'method':<11} {'n':>4} {'|Δroll-δ| med':>14} {'p90':>6} {'≤3°':>6} {'|Δyaw| med':>11} {'|Δpitch| med':>13}")
    for name, rows in errors.items():
        e = np.array(rows).reshape(-1, 3)
        print(f"{name:<11} {len(e):>4} {np.median(e[:, 0]):>14.1f} {np.percentile(e[:, 0], 90):>6.1f} "
              f"{np.mean(e[:, 0] <= 3):>6.0%} {np.median(e[:, 1]):>11.1f} {np.median(e[:, 2]):>13.1f}")


if __name__ == "__main__":
    main()
