"""What the benchmark measures per frame and per video, and the models a measurement needs.

The records are plain data: :mod:`lfa.bench.extract` (lfa's own sampling) and :mod:`lfa.bench.compat`
(the peers' sampling) both fill them, and everything downstream (metrics, the headline, outputs) reads
them. Keeping them here lets those two modules depend on this one instead of on each other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from lfa.face.detect import Detector
from lfa.face.embedding import l2_normalize
from lfa.face.identity import IdentityEncoder


@dataclass
class FrameRecord:
    """One sampled frame (or one reference image): the largest face and what was measured on it."""

    frame: int
    t: float
    detected: bool = False
    n_faces: int = 0
    box: np.ndarray | None = None
    det_score: float = math.nan
    yaw: float = math.nan
    pitch: float = math.nan
    roll: float = math.nan
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # identity model -> (D,) L2-normalised
    feature: np.ndarray | None = None  # feature-network (Inception) vector of the aligned crop
    clip_cos: float = math.nan  # CLIP image-text cosine of the whole frame
    padded: bool = False  # compat modes: the face was found only after grey padding
    landmarks5: np.ndarray | None = None
    thumb: np.ndarray | None = None  # aligned grey face crop (lfa.bench.copypaste.THUMB px), for copy-paste

    @property
    def has_pose(self) -> bool:
        return self.detected and not math.isnan(self.yaw)


@dataclass
class VideoAnalysis:
    """Everything measured on one generated video, per sampling mode (``lfa`` and compat modes)."""

    model: str
    id: str
    path: str
    status: str = "ok"  # ok | missing | error
    error: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    modes: dict[str, list[FrameRecord]] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    sha256: str | None = None
    cached: bool = False  # taken from the analysis cache (same content analysed before)


class FeatureNet(Protocol):
    def __call__(self, crops: np.ndarray) -> np.ndarray: ...


class ClipModel(Protocol):
    def cosines(self, images: Sequence[np.ndarray], text: str) -> np.ndarray: ...


class Models(Protocol):
    """The loaded models a measurement uses (an :class:`lfa.bench.extract.Extractor` is one)."""

    detector: Detector
    encoders: dict[str, IdentityEncoder]
    features: FeatureNet | None
    clip: ClipModel | None


def similarities(frames: Sequence[FrameRecord], ref_embedding: np.ndarray, name: str) -> np.ndarray:
    """Cosine of each frame's face with the reference; NaN for frames without a face."""
    out = np.full(len(frames), np.nan)
    for i, f in enumerate(frames):
        if f.detected and name in f.embeddings:
            out[i] = float(np.dot(l2_normalize(f.embeddings[name]), ref_embedding))
    return out
