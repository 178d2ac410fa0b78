"""Face detectors: ``detect(rgb) -> list[Detection]``, sorted by score."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from lfa.face.types import Detection


class Detector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[Detection]: ...
