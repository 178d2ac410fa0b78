"""Face detectors: ``detect(rgb) -> list[Detection]``, sorted by score."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from lfa.face.types import Detection

DETECT_MAX_SIDE = 960
"""lfa's one detection size: the detector sees every image (photo, video frame, generated frame) scaled down
so that its longer side is at most this many pixels, in every job (``lfa faces``, ``lfa curate``'s
``tracking.detect_max_side``, ``lfa bench make-spec``, ``lfa generate``, ``lfa bench --detect-max-side``);
smaller images are seen as they are. 960, not 640: at 640 the faces of 720p/1080p frames come out smaller
than in a 512 px clip and YuNet loses large-angle faces (no face) and places its 5 points worse (false
identity switches): 79/86 vs 84/86 right on 720p/1080p corpus and held-out clips (docs/PERFORMANCE.md).
Every option that sets the size overrides it for its job only."""


class Detector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[Detection]: ...
