"""Temporal guard for the fused head pose along one face track (curation and the benchmark call it).

Per frame the fused pose (:mod:`lfa.face.pose.fused`) decides from one image. Along a track two more
things are known:

1. **WHENet's offset.** WHENet reads a constant few degrees off on a given face (±5–7° at frontal
   on lfa's renders). Frames where both backends answer at moderate yaw
   (``track_offset_max_yaw``) measure it (median of WHENet − landmarks yaw, at least
   ``track_offset_min_frames`` frames); it is removed from the WHENet part of every frame.
2. **Continuity.** A head does not jump. A frame whose yaw differs from *both* neighbours by more
   than ``track_min_jump`` and faster than ``track_max_rate`` °/s, while the neighbours agree
   with each other, is an outlier (a WHENet flip): it falls back to its landmark reading when it
   has one, else loses its pose with ``pose_missing_reason`` saying why.

Faces are edited in place; ``pose_source`` gets a ``+track`` suffix where the guard changed angles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from lfa.face.pose.fused import FusionConfig, blend_weight
from lfa.face.types import Face


def whenet_offset(faces: Sequence[Face], config: FusionConfig) -> float | None:
    """Median WHENet − landmark yaw over the track's moderate frames, or None if too few."""
    diffs = [f.pose_readings["whenet"][0] - f.pose_readings["landmarks"][0] for f in faces
             if {"whenet", "landmarks"} <= f.pose_readings.keys()
             and abs(f.pose_readings["landmarks"][0]) <= config.track_offset_max_yaw]
    return float(np.median(diffs)) if len(diffs) >= config.track_offset_min_frames else None


def _refuse(face: Face, offset: float, config: FusionConfig) -> None:
    """Recompute a WHENet-based face's angles with WHENet's yaw corrected by ``offset``."""
    wh, lm = face.pose_readings.get("whenet"), face.pose_readings.get("landmarks")
    if wh is None or face.pose_source not in ("whenet", "fused"):
        return
    corrected = (wh[0] - offset, wh[1], wh[2])
    w = 1.0 if lm is None else blend_weight(abs(corrected[0]), config)
    base = lm if lm is not None else corrected
    face.yaw, face.pitch, face.roll = ((1 - w) * a + w * b for a, b in zip(base, corrected))
    face.pose_source = f"{face.pose_source}+track"


def _drop_outlier(face: Face, why: str) -> None:
    lm = face.pose_readings.get("landmarks")
    if lm is not None:
        face.yaw, face.pitch, face.roll = lm
        face.pose_source = "landmarks+track"
        face.pose_confidence *= 0.5
        return
    face.yaw = face.pitch = face.roll = math.nan
    face.pose_source, face.pose_confidence, face.pose_missing_reason = None, math.nan, why


def guard_track(faces: Sequence[Face], times: Sequence[float], config: FusionConfig | None = None) -> list[Face]:
    """Apply the offset correction and the continuity check to one track's faces (time order)."""
    config = config or FusionConfig()
    if len(faces) != len(times):
        raise ValueError(f"{len(faces)} faces but {len(times)} times")
    faces = list(faces)
    offset = whenet_offset(faces, config)
    if offset is not None:
        for face in faces:
            if face.pose_source in ("whenet", "fused"):
                _refuse(face, offset, config)
    posed = [i for i, f in enumerate(faces) if not math.isnan(f.yaw)]
    outliers = []
    for a, i, b in zip(posed, posed[1:], posed[2:]):
        prev, cur, nxt = faces[a].yaw, faces[i].yaw, faces[b].yaw
        jumps = [abs(cur - prev), abs(cur - nxt)]
        rates = [jumps[0] / max(times[i] - times[a], 1e-6), jumps[1] / max(times[b] - times[i], 1e-6)]
        neighbours_agree = abs(prev - nxt) < config.track_min_jump
        if neighbours_agree and min(jumps) > config.track_min_jump and min(rates) > config.track_max_rate:
            outliers.append(i)
    for i in outliers:
        _drop_outlier(faces[i], f"yaw {faces[i].yaw:+.0f}° breaks the track's continuity (a WHENet flip)")
    return faces
