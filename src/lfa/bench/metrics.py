"""The benchmark's metrics as pure functions of per-frame numbers (no model, no IO).

Conventions, shared by every function here:

* ``sims``: cosine similarity of each sampled frame's face embedding with the reference embedding,
  ``NaN`` where no face was found in the frame. Frames without a face are *counted* (they lower
  :func:`detection_rate` and :func:`facesim_strict`) and never silently dropped.
* ``yaw``/``pitch``: estimated head angles (lfa convention, degrees), ``NaN`` where the frame has no
  face or the pose estimator returned nothing for the face.
* Buckets are half-open ``[lo, hi)`` on the absolute angle, the last one closed and also taking
  anything beyond it (``|yaw| = 95`` lands in ``60-90``).

The headline (calibrated identity per yaw bucket) is :mod:`lfa.bench.headline`; copy-paste detection is
:mod:`lfa.bench.copypaste`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lfa.face.angles import rotation_from_angles
from lfa.face.embedding import l2_normalize

YAW_EDGES: tuple[float, ...] = (0, 15, 30, 45, 60, 90)
PITCH_EDGES: tuple[float, ...] = (0, 10, 20, 30, 90)
NO_POSE = "nopose"


def bucket_labels(edges: Sequence[float]) -> list[str]:
    """``["0_15", "15_30", ...]``: the column-name form of each bucket."""
    return [f"{lo:g}_{hi:g}" for lo, hi in zip(edges[:-1], edges[1:])]


def bucket_of(angles: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Bucket index of ``|angle|`` for each value (int), -1 where the angle is NaN."""
    a = np.abs(np.asarray(angles, np.float64))
    idx = np.searchsorted(np.asarray(edges[1:-1], np.float64), a, side="right")
    return np.where(np.isnan(a), -1, idx).astype(np.int64)


@dataclass(frozen=True)
class BucketStat:
    mean: float
    count: int


def bucket_means(sims: np.ndarray, angles: np.ndarray, edges: Sequence[float]) -> dict[str, BucketStat]:
    """Mean similarity of the frames in each ``|angle|`` bucket (frames with a face and a pose), plus
    ``"nopose"``: frames whose face was found but whose pose is unknown."""
    sims, angles = np.asarray(sims, np.float64), np.asarray(angles, np.float64)
    has_face = ~np.isnan(sims)
    idx = bucket_of(angles, edges)
    out: dict[str, BucketStat] = {}
    for b, label in enumerate(bucket_labels(edges)):
        sel = has_face & (idx == b)
        out[label] = BucketStat(float(sims[sel].mean()) if sel.any() else math.nan, int(sel.sum()))
    sel = has_face & (idx < 0)
    out[NO_POSE] = BucketStat(float(sims[sel].mean()) if sel.any() else math.nan, int(sel.sum()))
    return out


def worst_bucket(stats: dict[str, BucketStat], min_count: int = 1) -> tuple[str | None, float]:
    """(label, mean) of the angle bucket with the lowest mean among those with ``min_count`` frames
    or more; the ``nopose`` bucket is not a candidate. ``(None, nan)`` when no bucket qualifies."""
    candidates = [(s.mean, label) for label, s in stats.items()
                  if label != NO_POSE and s.count >= min_count and not math.isnan(s.mean)]
    if not candidates:
        return None, math.nan
    mean, label = min(candidates)
    return label, mean


def detection_rate(detected: np.ndarray) -> float:
    """Share of sampled frames where a face was found; NaN for a video with no sampled frame."""
    detected = np.asarray(detected, bool)
    return float(detected.mean()) if detected.size else math.nan


def facesim(sims: np.ndarray) -> float:
    """Mean similarity over the frames where a face was found (NaN when there is none)."""
    sims = np.asarray(sims, np.float64)
    sims = sims[~np.isnan(sims)]
    return float(sims.mean()) if sims.size else math.nan


def facesim_strict(sims: np.ndarray) -> float:
    """Mean similarity over all sampled frames, a frame without a face scoring 0."""
    sims = np.asarray(sims, np.float64)
    return float(np.nan_to_num(sims, nan=0.0).mean()) if sims.size else math.nan


def identity_spread(embeddings: np.ndarray) -> tuple[float, float]:
    """Temporal identity stability of one video from its faces' embeddings (N, D), N >= 2.

    The video's centroid is ``c = normalize(mean_i normalize(e_i))``; returns
    ``(spread, self_similarity)`` = (standard deviation, mean) of ``cos(e_i, c)`` over frames.
    A stable identity has spread ~0; an identity that drifts or flickers has a large spread.
    """
    emb = np.asarray(embeddings, np.float32)
    if emb.ndim != 2 or len(emb) < 2:
        return math.nan, math.nan
    emb = l2_normalize(emb)
    centroid = l2_normalize(emb.mean(axis=0))
    to_centroid = emb @ centroid
    return float(to_centroid.std()), float(to_centroid.mean())


def facing_direction(yaw: float, pitch: float) -> np.ndarray:
    """Unit vector the face points along (camera frame of :mod:`lfa.face.angles`); roll does not move it."""
    return rotation_from_angles(yaw, pitch, 0.0)[:, 2]


def pose_distance(yaw: np.ndarray, pitch: np.ndarray, ref_poses: Sequence[tuple[float, float]]) -> np.ndarray:
    """Angle in degrees between each frame's facing direction and the nearest reference's (NaN when
    the frame has no pose). Roll is ignored: alignment removes in-plane rotation before embedding."""
    yaw, pitch = np.asarray(yaw, np.float64), np.asarray(pitch, np.float64)
    out = np.full(yaw.shape, np.nan)
    refs = [facing_direction(y, p) for y, p in ref_poses]
    if not refs:
        return out
    ref = np.stack(refs)
    for i, (y, p) in enumerate(zip(yaw, pitch)):
        if math.isnan(y) or math.isnan(p):
            continue
        cos = np.clip(ref @ facing_direction(y, p), -1.0, 1.0)
        out[i] = math.degrees(math.acos(float(cos.max())))
    return out


def similarity_vs_distance(sims: np.ndarray, dist: np.ndarray, edges: Sequence[float] = (0, 15, 30, 45, 60, 180)
                           ) -> dict[str, BucketStat]:
    """Mean similarity per pose-distance bucket (FaceSim vs distance from the reference pose)."""
    return bucket_means(sims, dist, edges)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D) and (M, D):
    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` — FID's formula, whatever the features.

    Needs at least 2 rows per set; covariances are unbiased (N - 1). The matrix square root is taken
    as ``S_a^(1/2) S_b S_a^(1/2)``'s, which has the same trace and is symmetric positive semi-definite,
    so it is computed by an eigen-decomposition without complex round-off.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or len(a) < 2 or len(b) < 2 or a.shape[1] != b.shape[1]:
        return math.nan
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = _psd_sqrt(cov_a)
    inner = _psd_sqrt(root_a @ cov_b @ root_a)
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(inner))
    return max(value, 0.0)


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    m = (m + m.T) / 2
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def nanmean(values: Sequence[float] | np.ndarray) -> float:
    """Mean ignoring NaN (NaN when nothing is left), without numpy's empty-slice warning."""
    arr = np.asarray(values, np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else math.nan
