"""Large-angle realism checks of lfa synth on ±90° yaw sweeps of photos the renderer was not tuned on.

    .venv/bin/python bench/synth_profile.py [--photos grace_hopper camera] [--seeds 3] [--step 2]

Per |yaw| bucket: the share of frames on which the detector (YuNet) finds the rendered face, and,
when the WHENet pose backend is installed (``AnalyzerConfig(pose="whenet")``), WHENet's yaw error
against the rendered truth (raw, and relative to its estimate at yaw 0). The renderer was tuned on
``astronaut``; the defaults are the held-out ``grace_hopper`` and scikit-image's ``camera`` (a face
photographed at ~60° yaw). Runs against the renderer before issue 16 too (``PYTHONPATH=<old>/src``):
then backgrounds are colour fields and there is no lighting.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from lfa.face import AnalyzerConfig, FaceAnalyzer
from lfa.face.analyzer import build_detector
from lfa.registry import ModelStore
from lfa.synth.clip import HeadLibrary

BUCKETS = ((0, 30), (30, 60), (60, 75), (75, 90.01), (60, 90.01))


def render_yaw(heads: HeadLibrary, photo: str, yaw: float, size: int, seed: int):
    from lfa.synth import render as render_mod

    head = heads.get(photo)
    scale = 0.3 * size / head.face_width
    placement = render_mod.HeadPlacement(head, yaw, 0.0, 0.0, (size / 2, 0.55 * size), scale)
    if hasattr(render_mod, "Lighting"):
        from lfa.synth.backgrounds import make_backdrop

        image, (drawn,) = render_mod.render(make_backdrop("photo", size, size, seed), [placement],
                                            render_mod.Lighting.random(seed))
    else:
        from lfa.synth.clip import make_background

        image, (drawn,) = render_mod.render(make_background(size, size, seed), [placement])
    return image, drawn.box


def hits(box: np.ndarray, found: list) -> bool:
    """A detection whose centre lies in the rendered face box (grown by a quarter each side)."""
    w, h = box[2] - box[0], box[3] - box[1]
    lo, hi = box[:2] - 0.25 * np.array([w, h]), box[2:] + 0.25 * np.array([w, h])
    return any(np.all((c >= lo) & (c <= hi)) for c in ((np.asarray(d.box[:2]) + np.asarray(d.box[2:])) / 2
                                                          for d in found))


def whenet_analyzer(store: ModelStore) -> FaceAnalyzer | None:
    try:
        return FaceAnalyzer(AnalyzerConfig(pose="whenet", identity="none"), store=store)
    except Exception as exc:  # noqa: BLE001 - the backend is optional here: report, do not fail
        print(f"WHENet not measured: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", nargs="+", default=["grace_hopper", "camera"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--step", type=float, default=2.0)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from synth_sheet import photo_path

    store = ModelStore()
    detector = build_detector(AnalyzerConfig(identity="none"), store)
    whenet = whenet_analyzer(store)
    heads = HeadLibrary()
    yaws = np.arange(-90, 90 + 1e-6, args.step)
    rows = []
    for name in args.photos:
        photo = photo_path(name)
        for seed in range(args.seeds):
            frontal_est = None
            for yaw in sorted(yaws, key=abs):  # yaw 0 first: WHENet's frontal offset
                image, box = render_yaw(heads, photo, float(yaw), args.size, seed)
                row = {"photo": name, "seed": seed, "yaw": float(yaw), "detected": hits(box, detector.detect(image))}
                if whenet is not None:
                    faces = [f for f in whenet.analyze(image) if not math.isnan(f.yaw)]
                    if faces:
                        est = max(faces, key=lambda f: f.area_ratio).yaw
                        frontal_est = est if yaw == 0 else frontal_est
                        row["whenet_err"] = abs((est - yaw + 180) % 360 - 180)
                        if frontal_est is not None:
                            row["whenet_err_rel"] = abs((est - frontal_est - yaw + 180) % 360 - 180)
                rows.append(row)
    summary = {}
    for lo, hi in BUCKETS:
        sel = [r for r in rows if lo <= abs(r["yaw"]) < hi]
        name = f"{lo:g}-{min(hi, 90):g}"
        summary[name] = {"frames": len(sel), "detection_rate": float(np.mean([r["detected"] for r in sel]))}
        errs = [r["whenet_err"] for r in sel if "whenet_err" in r]
        rel = [r["whenet_err_rel"] for r in sel if "whenet_err_rel" in r]
        if whenet is not None:
            summary[name].update({"whenet_mae_yaw": float(np.mean(errs)) if errs else None,
                                  "whenet_mae_yaw_rel": float(np.mean(rel)) if rel else None,
                                  "whenet_rate": len(errs) / max(len(sel), 1)})
    per_photo = {p: float(np.mean([r["detected"] for r in rows if r["photo"] == p and abs(r["yaw"]) >= 60]))
                 for p in args.photos}
    if args.json:
        print(json.dumps({"buckets": summary, "detected_60_90_by_photo": per_photo}, indent=1))
        return
    print(f"photos {', '.join(args.photos)}; {args.seeds} seeds; yaw step {args.step:g}°")
    for name, m in summary.items():
        extra = (f"  WHENet MAE yaw {m['whenet_mae_yaw']:.1f}° (rel. to frontal {m['whenet_mae_yaw_rel']:.1f}°)"
                 if m.get("whenet_mae_yaw") is not None else "")
        print(f"|yaw| {name:>6}: detected {m['detection_rate']:6.1%} of {m['frames']} frames{extra}")
    print("detected at |yaw| >= 60 by photo: " + ", ".join(f"{p} {v:.1%}" for p, v in per_photo.items()))


if __name__ == "__main__":
    main()
