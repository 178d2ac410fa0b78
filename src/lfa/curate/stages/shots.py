"""Stage 1: shot boundaries (PySceneDetect's ContentDetector) and clip windows."""

from __future__ import annotations

import cv2
import numpy as np
from scenedetect import FrameTimecode
from scenedetect.detectors import ContentDetector

from lfa.curate.config import ShotConfig


class ShotBoundaries:
    """Feed every decoded frame in order; ``cuts`` are the times where a new shot starts."""

    def __init__(self, config: ShotConfig, fps: float) -> None:
        self.config = config
        self.fps = fps
        self.detector = ContentDetector(threshold=config.threshold, min_scene_len=max(1, int(fps * 0.5)))
        self.count = 0
        self.cuts: list[float] = []

    def add(self, image: np.ndarray) -> None:
        h, w = image.shape[:2]
        width = self.config.analysis_width
        step = max(1, w // (2 * width))  # subsample first: an area resize of a full frame costs more than decoding it
        small = cv2.resize(image[::step, ::step], (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        for cut in self.detector.process_frame(FrameTimecode(self.count, self.fps), bgr):
            self.cuts.append(cut.frame_num / self.fps)
        self.count += 1


def clip_windows(cuts: list[float], duration: float, config: ShotConfig) -> tuple[list[tuple[float, float]],
                                                                                 list[tuple[float, float]]]:
    """Shots cut into windows of at most ``window_s``; returns (kept, too short)."""
    edges = [0.0, *sorted(c for c in cuts if 0 < c < duration), duration]
    kept, short = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        n = max(1, int(np.ceil((b - a) / config.window_s - 1e-9)))
        step = (b - a) / n
        for k in range(n):
            window = (round(a + k * step, 4), round(a + (k + 1) * step, 4))
            (kept if window[1] - window[0] >= config.min_clip_s else short).append(window)
    return kept, short
