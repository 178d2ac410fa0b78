"""Stage 2: link per-frame detections into tracks (greedy IoU), and pick the main track."""

from __future__ import annotations

from collections import Counter

import numpy as np

from lfa.curate.records import Clip


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def link_tracks(clip: Clip, min_iou: float) -> None:
    """Assign ``track`` ids in place: each face joins the track whose last box overlaps it most."""
    last: dict[int, np.ndarray] = {}
    next_id = 0
    for frame in clip.frames:
        taken: set[int] = set()
        for face in sorted(frame.faces, key=lambda f: -f.area_ratio):
            best, best_iou = -1, min_iou
            for track, box in last.items():
                overlap = iou(face.box, box)
                if track not in taken and overlap >= best_iou:
                    best, best_iou = track, overlap
            if best < 0:
                best, next_id = next_id, next_id + 1
            face.track = best
            taken.add(best)
            last[best] = face.box


def main_track(clip: Clip) -> int | None:
    """The track seen in the most frames (ties: the larger faces)."""
    count: Counter[int] = Counter()
    area: Counter[int] = Counter()
    for frame in clip.frames:
        for face in frame.faces:
            count[face.track] += 1
            area[face.track] += face.area_ratio
    if not count:
        return None
    return max(count, key=lambda t: (count[t], area[t]))
