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


# What a rejection's value measures, and how it must compare with the threshold for a clip to pass
# (rejected.parquet's ``measure`` column names one of these; the report shows the words).
MEASURES: dict[str, tuple[str, str]] = {
    "shot_s": ("shot length, s", ">="),
    "clip_s": ("clip length after the identity split, s", ">="),
    "upside_down_fraction": ("share of checked frames whose faces detect better turned by 180°", "<="),
    "main_face_fraction": ("share of sampled frames with the main face", ">="),
    "single_face_fraction": ("share of the main face's frames without another face above "
                             "constraints.max_other_face_area of its area", ">="),
    "face_px_median": ("median main-face size, px (shorter box side)", ">="),
    "face_ratio_median": ("median main-face area / frame area", ">="),
    "pose_fraction": ("share of the main face's frames with a head pose", ">="),
    "yaw_range": ("yaw range of the main face, ° (5th–95th percentile)", ">="),
    "yaw_range_cheap": ("yaw range of the main face from the detector's 5 points (min–max), widened by twice "
                        "the cheap yaw's error bound, ° (cascade: no pose model ran)", ">="),
    "pitch_range": ("pitch range of the main face, ° (5th–95th percentile)", ">="),
    "euler_sum": ("sum of the yaw, pitch and roll ranges, °", ">="),
    "identity_split_z": ("identity z between the faces before and after the switch (same-pose pairs; "
                         "below the threshold they look like two people)", ">="),
    "speech_av_score": ("agreement of voice energy with the mouth's movement (against the sound shifted in time)", ">="),
    "duplicate": ("byte-identical to an earlier input (dedup=true keeps the first copy)", ""),
}


@dataclass
class Decision:
    accepted: bool
    stage: str = ""
    reason: str = ""
    value: float = math.nan
    threshold: float = math.nan
    stats: dict[str, Any] = field(default_factory=dict)
    measure: str = ""  # a key of MEASURES: what ``value`` is
    offending: list[tuple[float, list[float]]] = field(default_factory=list)  # (t, box) of faces that decided it

    @classmethod
    def reject(cls, stage: str, reason: str, value: float, threshold: float, *, measure: str,
               offending: list[tuple[float, list[float]]] | None = None, **stats: Any) -> Decision:
        assert measure in MEASURES, measure
        return cls(False, stage, reason, float(value), float(threshold), stats, measure, offending or [])

    @classmethod
    def accept(cls, **stats: Any) -> Decision:
        return cls(True, stats=stats)
