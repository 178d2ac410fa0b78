"""What the perception stack returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Detection:
    box: np.ndarray  # (4,) x0, y0, x1, y1 in pixels
    score: float
    landmarks5: np.ndarray  # (5, 2), order in lfa.face.align


@dataclass
class HeadPose:
    yaw: float
    pitch: float
    roll: float
    landmarks: np.ndarray | None = None  # (N, 3) dense landmarks in image pixels (z in pixels too)
    source: str = ""  # the backend that gave the angles: "landmarks", "whenet", "fused", "sixdrepnet"
    confidence: float = 1.0  # in [0, 1]; see each backend
    readings: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # fused: each backend's


@dataclass
class Face:
    """One face in one image. Angles follow :mod:`lfa.face.angles`; NaN when no pose backend ran."""

    box: np.ndarray
    score: float
    landmarks5: np.ndarray
    area_ratio: float
    sharpness: float
    yaw: float = math.nan
    pitch: float = math.nan
    roll: float = math.nan
    landmarks: np.ndarray | None = None
    embedding: np.ndarray | None = None
    embedding_model: str | None = None
    pose_source: str | None = None  # "landmarks" | "whenet" | "fused" | "sixdrepnet" (+ "track" edits)
    pose_confidence: float = math.nan  # in [0, 1]
    pose_missing_reason: str | None = None  # set when a pose backend ran and gave no angles
    pose_readings: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # fused: per backend
    extras: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, *, embedding: bool = False, dense: bool = False) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return None if math.isnan(v) else round(float(v), 3)

        out: dict[str, Any] = {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
            "yaw": num(self.yaw),
            "pitch": num(self.pitch),
            "roll": num(self.roll),
            "landmarks5": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks5],
            "area_ratio": round(self.area_ratio, 5),
            "sharpness": round(self.sharpness, 2),
            "embedding_model": self.embedding_model,
            "pose_source": self.pose_source,
            "pose_confidence": num(self.pose_confidence),
            "pose_missing_reason": self.pose_missing_reason,
        }
        if dense:
            out["landmarks"] = None if self.landmarks is None else np.round(self.landmarks, 2).tolist()
        if embedding:
            out["embedding"] = None if self.embedding is None else [float(v) for v in self.embedding]
        return out
