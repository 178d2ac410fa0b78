"""The records curation stages pass along: sampled faces, sampled frames, clips, decisions."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lfa.face.patch import FacePatch


@dataclass
class SampledFace:
    box: np.ndarray
    landmarks5: np.ndarray
    score: float
    yaw: float
    pitch: float
    roll: float
    sharpness: float
    area_ratio: float
    chip: np.ndarray | None = None  # aligned crop for the identity model, embedded only if chosen
    track: int = -1
    # how the pose was found (lfa.face.pose.fused), what each backend read, why there is none
    pose_source: str | None = None
    pose_confidence: float = math.nan
    pose_missing_reason: str | None = None
    pose_readings: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    landmarks: np.ndarray | None = None  # dense landmarks (frame pixels) once the pose is measured
    patch: FacePatch | None = None  # kept until the pose is measured (lfa.curate.stages.pose)

    @property
    def has_pose(self) -> bool:
        return not math.isnan(self.yaw)

    @property
    def short_side(self) -> float:
        return float(min(self.box[2] - self.box[0], self.box[3] - self.box[1]))


@dataclass
class SampledFrame:
    frame: int
    t: float
    faces: list[SampledFace]


@dataclass
class Clip:
    source: str
    clip_id: str
    start: float
    end: float
    frames: list[SampledFrame]

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Decision:
    accepted: bool
    stage: str = ""
    reason: str = ""
    value: float = math.nan
    threshold: float = math.nan
    stats: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def reject(cls, stage: str, reason: str, value: float, threshold: float, **stats: Any) -> Decision:
        return cls(False, stage, reason, float(value), float(threshold), stats)

    @classmethod
    def accept(cls, **stats: Any) -> Decision:
        return cls(True, stats=stats)
