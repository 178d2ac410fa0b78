"""Temporal guard for the fused head pose along one face track (curation and the benchmark call it).

Per frame the fused pose (:mod:`lfa.face.pose.fused`) decides from one image. Along a track one more
thing is known: a head does not jump. A frame whose yaw differs from *both* neighbours by more
than ``track_min_jump`` and faster than ``track_max_rate`` °/s, while the neighbours agree with
each other, is an outlier (a WHENet flip): it falls back to its landmark reading when it has one
(``pose_source`` ``"landmarks+track"``), else loses its pose with ``pose_missing_reason`` saying why.

Not done, on evidence: removing WHENet's per-track offset (median WHENet − landmark yaw at
moderate yaw) made the tuning set's yaw MAE worse at 45–90° (3.0 → 3.5° at 45–60°): WHENet's
error is not a constant offset along the sweep.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from typing import Protocol, TypeVar

from lfa.face.pose.fused import FusionConfig


class PosedFace(Protocol):
    """What the guard reads and edits: a :class:`lfa.face.types.Face`, or curation's sampled face."""

    yaw: float
    pitch: float
    roll: float
    pose_source: str | None
    pose_confidence: float
    pose_missing_reason: str | None
    pose_readings: dict[str, tuple[float, float, float]]


F = TypeVar("F", bound=PosedFace)


def _drop_outlier(face: PosedFace, why: str) -> None:
    lm = face.pose_readings.get("landmarks")
    if lm is not None:
        face.yaw, face.pitch, face.roll = lm
        face.pose_source = "landmarks+track"
        face.pose_confidence *= 0.5
        return
    face.yaw = face.pitch = face.roll = math.nan
    face.pose_source, face.pose_confidence, face.pose_missing_reason = None, math.nan, why


def guard_track(faces: Sequence[F], times: Sequence[float], config: FusionConfig | None = None) -> list[F]:
    """Apply the continuity check to one track's faces (in time order, ``times`` in seconds); in place."""
    config = config or FusionConfig()
    if len(faces) != len(times):
        raise ValueError(f"{len(faces)} faces but {len(times)} times")
    faces = list(faces)
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
