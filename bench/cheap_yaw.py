"""Calibration of the cheap yaw (``lfa.face.pose.cheap``: yaw from the detector's 5 points) against rendered
ground truth, fitted on some photos and evaluated on photos it never saw.

    .venv/bin/python bench/identity_calibration.py photos --dir out/idcal    # once: the held-out photos
    .venv/bin/python bench/cheap_yaw.py [--photos out/idcal/photos] [--frames 73] [--fit]

Every photo's head is rendered along yaw sweeps (−90…90°) at three pitches (−15, 0, +15°) and a roll of
±10°, at 512x512 with the face at 30% of the frame; YuNet runs on each frame (as in curation, at
``tracking.detect_max_side``) and the largest face's 5 points give the feature. Calibration photos: the
two shipped samples (astronaut, grace_hopper). Held out: the registry photos of
``bench/identity_calibration.py`` (obama, biden, einstein, lenna, takeo, tongue, bb_left, bb_right).
``--fit`` prints the odd polynomial that maps the feature to yaw (what ``lfa.face.pose.cheap`` ships);
without it the shipped mapping is evaluated. Prints |error| per true-|yaw| bucket (median, 95th
percentile, max) and the per-bucket figures against the *cheap* |yaw| (what the cascade's bound is
indexed by), on calibration and held-out photos apart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from identity_calibration import PHOTOS, photo_path  # noqa: E402

from lfa.errors import MediaError  # noqa: E402
from lfa.face.analyzer import AnalyzerConfig, build_detector  # noqa: E402
from lfa.face.pose.cheap import CHEAP_YAW_EDGES, COEFFICIENTS, cheap_yaw, yaw_feature  # noqa: E402
from lfa.registry import ModelStore  # noqa: E402
from lfa.synth.backgrounds import make_backdrop  # noqa: E402
from lfa.synth.clip import HeadLibrary  # noqa: E402
from lfa.synth.render import HeadPlacement, render  # noqa: E402

CALIBRATION = ("astronaut", "grace_hopper")
HELD_OUT = ("obama", "biden", "einstein", "lenna", "takeo", "tongue", "bb_left", "bb_right")
VARIANTS = ((0.0, 0.0), (-15.0, 0.0), (15.0, 0.0), (0.0, 10.0), (0.0, -10.0))  # (pitch, roll)


def collect(heads: HeadLibrary, photo: str, detector, frames: int, size: int = 512) -> np.ndarray:
    """Rows (true yaw, true pitch, true roll, the 5 points x0 y0 ... x4 y4) of every frame with a face."""
    head = heads.get(photo)
    scale = 0.3 * size / head.face_width
    rows = []
    for k, (pitch, roll) in enumerate(VARIANTS):
        background = make_backdrop("photo", size, size, seed=17 * k + len(photo))
        for yaw in np.linspace(-90, 90, frames):
            image, _ = render(background, [HeadPlacement(head, float(yaw), pitch, roll, (size / 2, 0.55 * size),
                                                         scale)])
            found = detector.detect(image)
            if not found:
                continue
            det = max(found, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
            rows.append((yaw, pitch, roll, *np.asarray(det.landmarks5, float).ravel()))
    return np.array(rows)


def table(rows: np.ndarray, estimate: np.ndarray, label: str) -> None:
    err = np.abs(estimate - rows[:, 0])
    print(f"\n{label}: {len(rows)} frames; |cheap - true| by TRUE |yaw| bucket, then by CHEAP |yaw| bucket")
    for key, values in (("true", np.abs(rows[:, 0])), ("cheap", np.abs(estimate))):
        print(f"  {'bucket (' + key + ')':18s} {'frames':>6s} {'median':>7s} {'p95':>7s} {'max':>7s}")
        for lo, hi in zip(CHEAP_YAW_EDGES[:-1], CHEAP_YAW_EDGES[1:]):
            m = (values >= lo) & (values < hi if hi < CHEAP_YAW_EDGES[-1] else values <= hi)
            if m.any():
                e = err[m]
                print(f"  {f'{lo:g}-{hi:g}':18s} {m.sum():6d} {np.median(e):7.1f} {np.percentile(e, 95):7.1f} "
                      f"{e.max():7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=Path("out/idcal/photos"))
    parser.add_argument("--frames", type=int, default=73, help="yaw steps per sweep (73: every 2.5°)")
    parser.add_argument("--fit", action="store_true", help="fit the mapping on the calibration photos")
    args = parser.parse_args()
    detector = build_detector(AnalyzerConfig(), ModelStore())
    heads = HeadLibrary()
    work = args.photos.parent / "cheap_yaw_work"
    work.mkdir(parents=True, exist_ok=True)
    paths = {}
    for identity, name, crop in PHOTOS:
        if identity not in paths and (identity in CALIBRATION or identity in HELD_OUT):
            paths[identity] = photo_path(args.photos, work, identity, name, crop)
    cache = work / f"points{args.frames}.npz"
    if cache.exists():
        data = dict(np.load(cache))
    else:
        data = {}
        for who in (*CALIBRATION, *HELD_OUT):
            try:
                data[who] = collect(heads, paths[who], detector, args.frames)
            except MediaError as exc:  # the head fit needs landmarks on the photo
                print(f"skipped {who}: {exc.message}")
        np.savez(cache, **data)
    features = {w: np.array([yaw_feature(r[3:].reshape(5, 2)) for r in a]) for w, a in data.items()}
    cal = np.concatenate([data[w] for w in CALIBRATION])
    if args.fit:  # yaw = a1 f, least squares on the calibration frames within 30° of frontal
        f, y = np.concatenate([features[w] for w in CALIBRATION]), cal[:, 0]
        near = np.abs(y) <= 30
        print(f"fitted a1 = {float(np.sum(f[near] * y[near]) / np.sum(f[near] ** 2)):.2f} (ships {COEFFICIENTS})")
    held = [w for w in HELD_OUT if w in data]
    for label, who in (("calibration photos", CALIBRATION), ("HELD-OUT photos", held)):
        rows = np.concatenate([data[w] for w in who])
        table(rows, np.concatenate([[cheap_yaw(None, f) for f in features[w]] for w in who]),
              f"{label} {', '.join(who)}")
        print("  per photo, frames the cheap yaw reads within cascade.near_frontal_deg (20°): max |error|, and the "
              "true yaw there")
        for w in who:
            est = np.array([cheap_yaw(None, f) for f in features[w]])
            near = np.abs(est) <= 20
            err = np.abs(est - data[w][:, 0])
            print(f"    {w:13s} frames {near.sum():3d}  max {err[near].max():5.1f}  p95 {np.percentile(err[near], 95):5.1f}"
                  f"  (true yaw {data[w][near, 0][np.argmax(err[near])]:+.0f})")
    print("\nclip-level check: every turn 0 -> X (X = 40..90°, both directions, every pitch/roll variant) of every "
          "photo, read by the cheap yaw: does the cascade's shortcut (all |cheap| <= 20, cheap span + 2 x bound "
          "< 40) fire on it (a false insufficient_angle_variation)?")
    for bound in (6.0, 8.0, 10.0, 12.0):
        fired, total = [], 0
        for w in data:
            est = np.array([cheap_yaw(None, f) for f in features[w]])
            for pitch, roll in VARIANTS:
                v = (data[w][:, 1] == pitch) & (data[w][:, 2] == roll)
                for sign in (1, -1):
                    for end in range(40, 95, 5):
                        sel = v & (sign * data[w][:, 0] >= 0) & (sign * data[w][:, 0] <= end)
                        if sel.sum() < 3:
                            continue
                        total += 1
                        e = est[sel]
                        if np.abs(e).max() <= 20 and e.max() - e.min() + 2 * bound < 40:
                            fired.append((w, pitch, roll, sign * end))
        print(f"  bound {bound:4.1f}: {len(fired)} of {total} turns shortcut {fired[:5]}")

if __name__ == "__main__":
    main()
