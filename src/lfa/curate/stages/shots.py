"""Stage 1: shot boundaries (PySceneDetect's ContentDetector) and clip windows."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from scenedetect import FrameTimecode
from scenedetect.detectors import ContentDetector

from lfa.curate.config import ShotConfig


class _ContentScores(ContentDetector):
    """PySceneDetect's ContentDetector, its frame score computed in fewer passes: one absolute difference
    of the two HSV frames and one sum per channel (OpenCV) instead of, per channel, a split, two int32
    copies, a subtraction, an absolute value and a sum. The same integer sums, divided and weighted in
    the same order, hence the same scores bit for bit (tests/test_curate.py checks them against the
    library's). Only for weights without edges and no stats manager; otherwise the library's own code."""

    _last_hsv: np.ndarray | None = None

    def _calculate_frame_score(self, timecode: FrameTimecode, frame_img: np.ndarray) -> float:
        # the library's own code where this shortcut does not apply, or where a later PySceneDetect
        # renamed what it reads
        if getattr(self, "stats_manager", None) is not None or getattr(getattr(self, "_weights", None),
                                                                      "delta_edges", 1.0) != 0.0:
            return super()._calculate_frame_score(timecode, frame_img)
        hsv = cv2.cvtColor(frame_img, cv2.COLOR_BGR2HSV)
        last, self._last_hsv = self._last_hsv, hsv
        if last is None:
            return 0.0
        pixels = float(hsv.shape[0] * hsv.shape[1])
        sums = cv2.sumElems(cv2.absdiff(hsv, last))  # exact: integers far below 2**53
        components = (sums[0] / pixels, sums[1] / pixels, sums[2] / pixels, 0.0)
        return sum(c * w for c, w in zip(components, self._weights, strict=True)) / sum(abs(w) for w in self._weights)


class ShotBoundaries:
    """Feed every decoded frame in order; ``cuts`` are the times where a new shot starts."""

    def __init__(self, config: ShotConfig, fps: float) -> None:
        self.config = config
        self.fps = fps
        self.detector = _ContentScores(threshold=config.threshold, min_scene_len=max(1, int(fps * 0.5)))
        self.count = 0
        self.cuts: list[float] = []

    def add(self, image: np.ndarray) -> None:
        """``image``: BGR (what PySceneDetect reads), about ``analysis_width`` wide, e.g.
        ``DecodedFrame.thumbnail(analysis_width, bgr=True)``, read as it is (the score is a per-pixel mean);
        one more than twice as wide is scaled down to ``analysis_width`` first."""
        h, w = image.shape[:2]
        width = self.config.analysis_width
        if w > 2 * width:
            step = w // (2 * width)  # subsample first: an area resize of a full frame costs more than decoding it
            image = cv2.resize(image[::step, ::step], (width, max(1, round(h * width / w))),
                               interpolation=cv2.INTER_AREA)
        for cut in self.detector.process_frame(FrameTimecode(self.count, self.fps), image):
            self.cuts.append(cut.frame_num / self.fps)
        self.count += 1

    def score(self) -> float | None:
        """The last frame's score (PySceneDetect's ``content_val``)."""
        return self.detector._frame_score


def shot_spans(cuts: list[float], duration: float) -> list[tuple[float, float]]:
    edges = [0.0, *sorted(c for c in cuts if 0 < c < duration), duration]
    return list(zip(edges[:-1], edges[1:]))


def clip_windows(cuts: list[float], duration: float, config: ShotConfig,
                 speech: Callable[[], list[tuple[float, float]]] | None = None
                 ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Shots cut into windows of at most ``window_s``; returns (kept, too short). ``speech`` gives the
    voice activity of the file (called only when a shot needs cutting): each cut then moves to the pause
    nearest its even place, at most ``cut_in_pause_s`` away, so that no word is split."""
    kept, short = [], []
    for a, b in shot_spans(cuts, duration):
        n = max(1, int(np.ceil((b - a) / config.window_s - 1e-9)))
        step = (b - a) / n
        edges = [a + k * step for k in range(n + 1)]
        if n > 1 and speech is not None and config.cut_in_pause_s > 0:
            edges = _cuts_in_pauses(edges, speech(), config)
        for lo, hi in zip(edges[:-1], edges[1:]):
            window = (round(lo, 4), round(hi, 4))
            (kept if window[1] - window[0] >= config.min_clip_s else short).append(window)
    return kept, short


def _cuts_in_pauses(edges: list[float], spans: list[tuple[float, float]], config: ShotConfig) -> list[float]:
    """Inner edges moved into gaps between voice-activity ``spans`` (to the middle of the gap, or as far in
    as the windows' length limits allow), each window kept within [min_clip_s, window_s]."""
    a, b = edges[0], edges[-1]
    if not any(s1 > a and s0 < b for s0, s1 in spans):
        return edges
    gaps = [(g0, g1) for g0, g1 in zip([a] + [s1 for _, s1 in spans], [s0 for s0, _ in spans] + [b])
            if g1 > g0 and g1 > a and g0 < b]
    out = [a]
    for k, nominal in enumerate(edges[1:-1], start=1):
        left = len(edges) - 1 - k  # windows after this cut
        lo = max(out[-1] + config.min_clip_s, b - left * config.window_s, nominal - config.cut_in_pause_s)
        hi = min(out[-1] + config.window_s, b - left * config.min_clip_s, nominal + config.cut_in_pause_s)
        best = None
        for g0, g1 in gaps:
            x0, x1 = max(g0, lo), min(g1, hi)
            if x1 < x0:
                continue
            point = min(max((g0 + g1) / 2, x0), x1)  # the gap's middle, or its nearest allowed point
            if best is None or abs(point - nominal) < abs(best - nominal):
                best = point
        out.append(best if best is not None else nominal)
    return out + [b]
