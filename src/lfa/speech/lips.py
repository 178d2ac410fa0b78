"""Lip activity: a per-frame mouth-opening signal from the dense landmarks perception computes
(MediaPipe FaceLandmarker's 478 points), read along the main face.

Mouth opening is the inner-lip gap (points 13, 14) over the mouth width (corners 61, 291), in 3-D
landmark coordinates so a turned head does not open the mouth. In curation, the frames the scan sampled
keep the value of the landmarks the pose stage measured on them; only the frames in between are read,
with the same landmarker on the track's box."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lfa.face.types import Detection
from lfa.media import Frame, iter_frames
from lfa.media.sampling import sample_times

UPPER_LIP, LOWER_LIP, LEFT_CORNER, RIGHT_CORNER = 13, 14, 61, 291


def mouth_opening(landmarks: np.ndarray | None) -> float:
    """Inner-lip gap / mouth width from (N >= 292, 2 or 3) landmarks; NaN without landmarks."""
    if landmarks is None or len(landmarks) <= RIGHT_CORNER:
        return math.nan
    pts = np.asarray(landmarks, np.float64)
    width = float(np.linalg.norm(pts[LEFT_CORNER] - pts[RIGHT_CORNER]))
    return float(np.linalg.norm(pts[UPPER_LIP] - pts[LOWER_LIP]) / width) if width > 0 else math.nan


@dataclass
class MouthSignal:
    times: np.ndarray  # seconds in the source
    values: np.ndarray  # mouth opening, NaN where no face was read

    @property
    def fps(self) -> float:
        return float(1.0 / np.median(np.diff(self.times))) if len(self.times) > 1 else 0.0


def landmark_backend(pose: object) -> object:
    """The landmark estimator inside a pose backend (the fused one holds it as ``landmarks_backend``)."""
    return getattr(pose, "landmarks_backend", pose)


FrameReader = Callable[[Frame], float]  # a decoded frame -> the main face's mouth opening (NaN: none)


def read_mouth_signal(path: Path, start: float, end: float, fps: float, read: FrameReader,
                      max_side: int | None = None) -> MouthSignal:
    """Mouth opening at ``fps`` over [start, end), each decoded frame measured by ``read``."""
    out_t, out_v = [], []
    for frame in iter_frames(path, times=sample_times(end, fps=fps, start=start), max_side=max_side):
        out_t.append(frame.t)
        out_v.append(read(frame))
    return MouthSignal(np.array(out_t, np.float64), np.array(out_v, np.float64))


def track_reader(landmarker: object, box_at: Callable[[float], np.ndarray | None],
                 known: dict[int, float]) -> FrameReader:
    """Along a known track: frames in ``known`` (frame index → opening the scan measured) keep their value,
    the others are read by ``landmarker`` (``estimate(image, Detection)``) on the track's box."""

    def read(frame: Frame) -> float:
        if frame.index in known:
            return known[frame.index]
        box = box_at(frame.t)
        if box is None:
            return math.nan
        pose = landmarker.estimate(frame.image, Detection(np.asarray(box, np.float32), 1.0,  # type: ignore[attr-defined]
                                                          np.zeros((5, 2), np.float32)))
        return mouth_opening(pose.landmarks if pose is not None else None)

    return read


FOLLOW_S = 0.6  # largest_face_reader: how long after the last face read the landmarker looks for it alone


def box_around(landmarks: np.ndarray) -> np.ndarray:
    """A square box (x0, y0, x1, y1) around a face's dense landmarks that crops as the detector's box does: the
    crop follows the box's larger side, which for YuNet is some 1.15 times the mesh's and a little higher."""
    pts = np.asarray(landmarks, np.float64)[:, :2]
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    size = max(x1 - x0, y1 - y0)
    half = 0.575 * size
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.04 * size
    return np.array([cx - half, cy - half, cx + half, cy + half], np.float32)


def largest_face_reader(analyzer: object, seen: Callable[[object | None], None] | None = None,
                        follow_s: float = FOLLOW_S) -> FrameReader:
    """Without a track (``lfa speech``): the largest face each frame, through the analyzer's landmarks. Where
    the detector finds no face (on one render it lost a face turned 21-60 degrees that the landmarker still read),
    the landmarker alone reads the box of the last face read, up to ``follow_s`` after it. ``seen`` gets each
    frame's face (a ``Face``, a ``HeadPose`` where followed, or None), for callers that keep more than the
    opening."""
    landmarker = landmark_backend(analyzer.pose)  # type: ignore[attr-defined]
    last: list = []  # [(time, landmarks)] of the last face read; its box is made only when it is followed

    def read(frame: Frame) -> float:
        faces = analyzer.analyze(frame.image)  # type: ignore[attr-defined]
        face = max(faces, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))) if faces else None
        if face is None and last and frame.t - last[0][0] <= follow_s + 1e-6 and landmarker is not None:
            box = box_around(last[0][1])
            face = landmarker.estimate(frame.image, Detection(box, 1.0, np.zeros((5, 2), np.float32)))
        landmarks = face.landmarks if face is not None else None
        if landmarks is not None:
            last[:] = [(frame.t, landmarks)]
        if seen is not None:
            seen(face)
        return mouth_opening(landmarks)

    return read


def interpolated_box(times: np.ndarray, boxes: np.ndarray,
                     max_gap_s: float = 0.6) -> Callable[[float], np.ndarray | None]:
    """A box at any time from a track's sampled boxes (linear between samples, none far from them)."""
    order = np.argsort(times)
    times, boxes = np.asarray(times, np.float64)[order], np.asarray(boxes, np.float64)[order]

    def box_at(t: float) -> np.ndarray | None:
        if len(times) == 0 or np.min(np.abs(times - t)) > max_gap_s:
            return None
        return np.array([np.interp(t, times, boxes[:, k]) for k in range(4)])

    return box_at
