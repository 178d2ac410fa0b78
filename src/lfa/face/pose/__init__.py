"""Head-pose estimators: ``estimate(rgb, detection) -> HeadPose | None`` in lfa's angle convention."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from lfa.face.types import Detection, HeadPose


class PoseEstimator(Protocol):
    name: str
    missing_reason: str  # why the last ``estimate`` returned None

    def estimate(self, image: np.ndarray, detection: Detection) -> HeadPose | None: ...
