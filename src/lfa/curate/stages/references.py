"""Stage 6: reference frames per clip, so training can pick a reference whose pose differs from the target."""

from __future__ import annotations

from typing import Any

import numpy as np

from lfa.curate.records import SampledFace


def _row(role: str, t: float, frame: int, face: SampledFace) -> dict[str, Any]:
    return {"role": role, "t": round(t, 4), "frame": frame, "box": [float(v) for v in face.box],
            "yaw": float(face.yaw), "pitch": float(face.pitch), "roll": float(face.roll),
            "sharpness": float(face.sharpness)}


def pick_references(faces: list[tuple[float, int, SampledFace]]) -> list[dict[str, Any]]:
    """The most frontal sharp frame (sharpness at least 60% of the clip's 90th percentile), and the
    extremes of yaw and pitch."""
    posed = [x for x in faces if x[2].has_pose]
    if not posed:
        return []
    sharp_cut = 0.6 * np.percentile([f.sharpness for _, _, f in posed], 90)
    sharp = [x for x in posed if x[2].sharpness >= sharp_cut] or posed
    frontal = min(sharp, key=lambda x: abs(x[2].yaw) + abs(x[2].pitch))
    refs = [_row("frontal", *frontal)]
    for role, key, sign in (("yaw_min", "yaw", 1), ("yaw_max", "yaw", -1), ("pitch_min", "pitch", 1),
                            ("pitch_max", "pitch", -1)):
        t, frame, face = min(posed, key=lambda x: sign * getattr(x[2], key))
        refs.append(_row(role, t, frame, face))
    return refs
