"""Stage 2: link per-frame detections into tracks, and pick the main track.

Faces are linked by the distance between box centres relative to the box size (an optimal one-to-one
assignment per frame), not by box overlap: at 1–2 sampled frames per second a turning head moves by
more than its width between samples and overlap drops to zero, while its size and rough place hold."""

from __future__ import annotations

from collections import Counter
from itertools import permutations

import numpy as np

from lfa.curate.records import Clip


def link_cost(a: np.ndarray, b: np.ndarray) -> float:
    """Centre distance in units of the larger box's size, plus the log size ratio: 0 for the same box."""
    ca, cb = (a[:2] + a[2:4]) / 2, (b[:2] + b[2:4]) / 2
    sa, sb = float(np.sqrt(max((a[2] - a[0]) * (a[3] - a[1]), 1e-6))), float(np.sqrt(max((b[2] - b[0]) * (b[3] - b[1]), 1e-6)))
    return float(np.linalg.norm(ca - cb) / max(sa, sb) + abs(np.log(sa / sb)))


def link_tracks(clip: Clip, max_cost: float) -> None:
    """Assign ``track`` ids in place: each frame's faces are matched one-to-one to the tracks seen last
    (Hungarian assignment on :func:`link_cost`); a face whose best cost exceeds ``max_cost`` opens a track."""
    last: dict[int, np.ndarray] = {}
    next_id = 0
    for frame in clip.frames:
        faces = sorted(frame.faces, key=lambda f: -f.area_ratio)
        tracks = list(last)
        assigned: dict[int, int] = {}
        if faces and tracks:
            cost = np.array([[link_cost(f.box, last[t]) for t in tracks] for f in faces])
            for i, j in zip(*_assignment(cost)):
                if cost[i, j] <= max_cost:
                    assigned[i] = tracks[j]
        for i, face in enumerate(faces):
            if i not in assigned:
                assigned[i], next_id = next_id, next_id + 1
            face.track = assigned[i]
            last[face.track] = face.box


SMALL_ASSIGNMENT = 6  # up to this many faces and tracks: every one-to-one assignment is tried


def _assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Optimal one-to-one assignment (rows, columns), rows in increasing order as scipy's
    ``linear_sum_assignment`` gives them. A frame rarely holds more than a few faces: those are solved by
    trying every assignment (at most 720), without importing scipy's optimiser, which costs each worker
    process ~0.6 s at start-up; the same answer wherever the optimum is unique (float costs: ties need
    two identical boxes)."""
    n, m = cost.shape
    if max(n, m) > SMALL_ASSIGNMENT:
        from scipy.optimize import linear_sum_assignment

        return linear_sum_assignment(cost)
    if n <= m:
        best = min(permutations(range(m), n), key=lambda cols: sum(cost[i, j] for i, j in enumerate(cols)))
        return np.arange(n), np.array(best, dtype=int)
    best = min(permutations(range(n), m), key=lambda rows: sum(cost[i, j] for j, i in enumerate(rows)))
    order = np.argsort(best)
    return np.array(best, dtype=int)[order], order


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
