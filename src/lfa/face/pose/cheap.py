"""A cheap yaw from the detector's 5 points, for decisions that need only to know a head is near frontal.

The feature is the nose's horizontal offset from the face's midline (the line through the midpoints of
the eyes and of the mouth corners), after the eye line is turned level, in units of the eye-to-mouth
distance (which a turn of the head barely changes); an odd polynomial maps it to degrees. It costs a few
microseconds against ~13 ms for the landmark fit and ~44 ms for WHENet, and is wrong by much more at large
angles (YuNet's points collapse past ~60°): curation's cascade (``lfa.curate.stages.cascade``) uses it only
where its error bound, measured per cheap-|yaw| bucket on renders of photos the fit never saw
(``bench/cheap_yaw.py``, docs/PERFORMANCE.md), cannot change a decision.
"""

from __future__ import annotations

import math

import numpy as np

# yaw = a1 f + a3 f^3 + a5 f^5: a1 fitted on renders of astronaut and grace_hopper within 30° of frontal
# (bench/cheap_yaw.py --fit); linear, as the cascade uses the cheap yaw near frontal only
COEFFICIENTS = (99.1, 0.0, 0.0)
CHEAP_YAW_EDGES = (0, 10, 20, 30, 45, 60, 90)


def yaw_feature(landmarks5: np.ndarray) -> float:
    """Nose offset from the face midline over the eye-to-mouth distance (positive: nose toward the image's
    right, i.e. yaw > 0 in lfa's convention). NaN for degenerate points."""
    p = np.asarray(landmarks5, np.float64).reshape(5, 2)
    left_eye, right_eye, nose, mouth_left, mouth_right = p
    dx, dy = right_eye - left_eye
    c, s = math.cos(-math.atan2(dy, dx)), math.sin(-math.atan2(dy, dx))
    level = (p - (left_eye + right_eye) / 2) @ np.array([[c, s], [-s, c]])  # eye line level, eyes' midpoint at 0
    eyes = (level[0] + level[1]) / 2
    mouth = (level[3] + level[4]) / 2
    height = float(np.hypot(*(mouth - eyes)))
    if not height > 1e-6:
        return math.nan
    # the midline's x at the nose's height (eyes at y=0, mouth at mouth[1])
    w = level[2][1] / mouth[1] if abs(mouth[1]) > 1e-6 else 0.5
    mid_x = eyes[0] + w * (mouth[0] - eyes[0])
    return float((level[2][0] - mid_x) / height)


def cheap_yaw(landmarks5: np.ndarray | None, feature: float | None = None) -> float:
    """Yaw in degrees from the 5 points (or an already computed ``feature``), clipped to ±90."""
    f = yaw_feature(landmarks5) if feature is None else feature
    if math.isnan(f):
        return math.nan
    a1, a3, a5 = COEFFICIENTS
    return float(np.clip(a1 * f + a3 * f ** 3 + a5 * f ** 5, -90.0, 90.0))
