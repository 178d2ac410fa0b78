"""Curation as a cascade: each clip's decision is taken by the cheapest evidence that can take it.

1. The detector's boxes (already there from the scan) decide presence, size and other prominent faces
   (:func:`lfa.curate.stages.constraints.check_box_constraints`): exact, the same rules the full check
   applies. A clip they reject never runs the landmark fit, WHENet or the identity model.
2. The cheap yaw from the detector's 5 points (:mod:`lfa.face.pose.cheap`) decides
   ``insufficient_angle_variation`` for the ``yaw_range`` criterion where it cannot be wrong: every
   main-track face reads within ``cascade.near_frontal_deg`` of frontal, where the cheap yaw is within
   ``cascade.yaw_error_deg`` of the fused pose (calibrated on renders, checked on held-out photos:
   docs/PERFORMANCE.md); the fused yaws then span at most the cheap min–max span plus twice that bound,
   which must stay below ``constraints.min_yaw_range``. (Each 5th–95th percentile of the fused yaws lies
   inside that span: percentiles of any subset of faces lie between the cheap min and max ± the bound.)
   The rejected row's ``measure`` is ``yaw_range_cheap`` and its value that widened span.
3. Everything else (the fused pose, identity, speech) runs as without the cascade, on the full reading.
   A head that stays alone and near frontal is read sparsely in the scan (``cascade.frontal_sample_fps``,
   :func:`lfa.curate.scan.scan_video`); steps 1–2 may reject a clip on those sparse frames, and every clip
   they do not reject first gets the left-out frames analysed (:func:`lfa.curate.scan.fill_gaps`), so
   kept clips are measured on every sampled frame (thinning alone, tried first, let the standard corpus's
   identity switch through).

Not shortcut: ``pitch_range`` and ``euler_sum`` (FaithfulFaces): 5 points place the nose against the eyes
and mouth too loosely in height to bound pitch (its range varies with the face's proportions as much as
with the head's pitch), so those criteria only get step 1.
"""

from __future__ import annotations

import numpy as np

from lfa.curate.config import CascadeConfig, ConstraintConfig
from lfa.curate.records import Decision, SampledFace
from lfa.curate.stages.constraints import STAGE
from lfa.face.pose.cheap import cheap_yaw


def cheap_yaws(faces: list[SampledFace]) -> np.ndarray:
    values = np.array([cheap_yaw(f.landmarks5) for f in faces], np.float64)
    return values[np.isfinite(values)]


def cheap_angle_decision(faces: list[SampledFace], constraints: ConstraintConfig, cascade: CascadeConfig
                         ) -> Decision | None:
    """``insufficient_angle_variation`` from the cheap yaw of the main track's ``faces``, or None where
    the cheap yaw cannot decide (another criterion, a face beyond the near-frontal zone, a wide span)."""
    if constraints.angle_criterion != "yaw_range" or not faces:
        return None
    yaws = cheap_yaws(faces)
    if len(yaws) < len(faces) or np.abs(yaws).max() > cascade.near_frontal_deg:
        return None
    widened = float(yaws.max() - yaws.min()) + 2 * cascade.yaw_error_deg
    if not widened < constraints.min_yaw_range:
        return None
    return Decision.reject(STAGE, "insufficient_angle_variation", widened, constraints.min_yaw_range,
                           measure="yaw_range_cheap", cheap_yaw_min=float(yaws.min()),
                           cheap_yaw_max=float(yaws.max()))
