"""Copy-paste detection: does a generated video reproduce the reference image itself?

Every face (reference and generated) is aligned on the ArcFace template at :data:`THUMB` px and kept as a
grey thumbnail smoothed by a Gaussian of :data:`SMOOTH` px (so that the few pixels by which the detector's
landmarks move between a PNG and its H.264 copy do not hide a paste: unsmoothed, one pasted reference
scored NCC 0.93, smoothed 0.99). A frame is a **near-duplicate** of the reference when both hold:

* pixels: the zero-mean normalised cross-correlation (NCC) of its thumbnail with a reference thumbnail
  is at least ``min_ncc`` (default 0.95; NCC ignores brightness and contrast, so a re-lit paste still
  counts), and
* pose: its facing direction is within ``max_pose_dist`` degrees (default 10) of that reference's.

A video is flagged ``copy_paste`` when at least ``min_share`` (default 0.5) of its sampled frames are
near-duplicates (a frame without a face is not one). A genuine video that starts at the reference pose
has a few near-duplicate frames at most, because the head leaves that pose; a pasted photo or a head
that never moves has nearly all of them. The evidence (share, median NCC and pose distance, the frames)
is kept for the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from lfa.face.align import ARCFACE_112, align_face

THUMB = 48
MIN_NCC = 0.95
MAX_POSE_DIST = 10.0
MIN_SHARE = 0.5
SMOOTH = 1.5
_TEMPLATE = ARCFACE_112.scaled(THUMB)


def thumbnail(image: np.ndarray, landmarks5: np.ndarray) -> np.ndarray:
    """(THUMB, THUMB) uint8 grey crop of the face, aligned on the ArcFace template, smoothed."""
    crop = align_face(image, landmarks5, _TEMPLATE)
    return cv2.GaussianBlur(cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY), (0, 0), SMOOTH)


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Zero-mean normalised cross-correlation of two equal-size images (1 = identical up to gain/offset)."""
    x = np.asarray(a, np.float64).ravel()
    y = np.asarray(b, np.float64).ravel()
    x, y = x - x.mean(), y - y.mean()
    den = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y / den) if den > 0 else (1.0 if np.array_equal(a, b) else 0.0)


@dataclass(frozen=True)
class CopyPasteEvidence:
    flagged: bool
    share: float  # near-duplicate frames / sampled frames
    ncc_median: float  # over frames with a face: best NCC against a reference thumbnail
    pose_dist_median: float  # degrees, over frames with a face and a pose
    frames: list[int] = field(default_factory=list)  # frame indices of the near-duplicates

    def to_dict(self) -> dict[str, object]:
        return {"flagged": self.flagged, "share": self.share, "ncc_median": self.ncc_median,
                "pose_dist_median": self.pose_dist_median, "frames": self.frames[:20]}


def copy_paste_evidence(thumbs: Sequence[np.ndarray | None], pose_dist: np.ndarray, frame_ids: Sequence[int],
                        ref_thumbs: Sequence[np.ndarray], *, min_ncc: float = MIN_NCC,
                        max_pose_dist: float = MAX_POSE_DIST, min_share: float = MIN_SHARE) -> CopyPasteEvidence:
    """Near-duplicate frames of a video (``thumbs[i]`` None: no face; ``pose_dist[i]`` NaN: no pose, which
    is never a near-duplicate: the pose must be known and close)."""
    n = len(thumbs)
    if n == 0 or not ref_thumbs:
        return CopyPasteEvidence(False, math.nan, math.nan, math.nan)
    best = np.array([max(ncc(t, r) for r in ref_thumbs) if t is not None else np.nan for t in thumbs])
    dist = np.asarray(pose_dist, np.float64)
    dup = (np.nan_to_num(best, nan=-1.0) >= min_ncc) & (np.nan_to_num(dist, nan=np.inf) <= max_pose_dist)
    share = float(dup.sum() / n)
    face = ~np.isnan(best)
    posed = face & ~np.isnan(dist)
    return CopyPasteEvidence(share >= min_share, share, float(np.median(best[face])) if face.any() else math.nan,
                             float(np.median(dist[posed])) if posed.any() else math.nan,
                             [int(frame_ids[i]) for i in np.flatnonzero(dup)])
