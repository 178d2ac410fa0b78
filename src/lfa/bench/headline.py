"""The headline: large-angle identity, which a pasted photo or a head that never turns cannot win.

Per video (pure arithmetic on per-frame numbers; docs/BENCH.md gives the same definition):

1. **Verification per frame.** Each sampled frame's face is compared with the item's reference faces by
   lfa's one pose-aware, calibrated identity score (:class:`lfa.face.identity.score.IdentityScorer`,
   ``score_frames``); ``verified`` = the score reaches the threshold of the stated false-accept rate.
   A frame **without a face or without a pose is a failure** (never verified).
2. **Buckets.** Every frame gets a |yaw| bucket (``YAW_EDGES``): its measured yaw, or, for a frame
   without a pose (or face), the yaw interpolated in time between the nearest posed frames. Frames
   beyond the target's last bucket count in that bucket.
3. **Target.** The buckets the item asks for: those below the largest |yaw| of the spec's
   ``labels.target_yaw`` (``[lo, hi]`` degrees, written by ``lfa bench make-spec``), or every bucket
   (the standard set, up to 90°) when the spec has none.
4. **Score** = mean over the target buckets of the bucket's verification rate (verified frames /
   frames in the bucket); a target bucket that no posed frame reached scores 0.

The views a frame is compared with are the item's ``reference`` and ``eval_references`` (scoring only);
a frame is *pose-matched* when one of them lies within ``MAX_DYAW`` of its yaw (same side). A bucket whose
posed frames are mostly not pose-matched (below ``MATCHED_SHARE``) is marked ``cross_pose``: its
verification rests on cross-pose pairs (:func:`view_coverage` says which ranges the views cover).

So a head that never leaves the frontal bucket scores at most ``1 / len(target buckets)``, whatever its
similarity, and a frame the perception stack cannot read pulls the score down instead of vanishing.

Flags (per video): ``no_motion`` (posed yaw and pitch ranges below ``NO_MOTION_DEG``), ``angle_not_reached``
(the head stopped more than ``ANGLE_TOLERANCE`` short of the target on a side the target asks for) and
``copy_paste`` (:mod:`lfa.bench.copypaste`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lfa.bench.metrics import YAW_EDGES, bucket_labels, bucket_of
from lfa.errors import ConfigError
from lfa.face.identity.score import MAX_DYAW

NO_MOTION_DEG = 10.0
ANGLE_TOLERANCE = 15.0
FLAGS = ("copy_paste", "no_motion", "angle_not_reached")
MATCHED_SHARE = 0.5  # a bucket with fewer of its posed frames pose-matched than this is marked cross_pose
SIDES = ("both", "left", "right", "none")  # left: yaw > 0, the subject's own left


def view_coverage(view_yaws: Sequence[float], edges: Sequence[float] = YAW_EDGES, max_dyaw: float = MAX_DYAW
                  ) -> dict[str, str]:
    """Per |yaw| bucket, on which side a frame there can be pose-matched by one of the views (yaw within
    ``max_dyaw``, same sign convention): ``both``, ``left`` (yaw > 0), ``right`` or ``none``."""
    out = {}
    for lab, lo, hi in zip(bucket_labels(edges), edges[:-1], edges[1:]):
        left = any(y + max_dyaw > lo and y - max_dyaw < hi for y in view_yaws)
        right = any(-y + max_dyaw > lo and -y - max_dyaw < hi for y in view_yaws)
        out[lab] = "both" if left and right else "left" if left else "right" if right else "none"
    return out


def covered_ranges(view_yaws: Sequence[float], max_dyaw: float = MAX_DYAW, limit: float = 90.0) -> str:
    """The signed yaw ranges within ``max_dyaw`` of a view, merged: e.g. ``"-90…-60, -15…15"``."""
    spans: list[list[float]] = []
    for y in sorted(view_yaws):
        lo, hi = max(-limit, y - max_dyaw), min(limit, y + max_dyaw)
        if spans and lo <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], hi)
        else:
            spans.append([lo, hi])
    return ", ".join(f"{lo:.0f}…{hi:.0f}" for lo, hi in spans) or "none"


@dataclass(frozen=True)
class Target:
    """The yaw an item asks for: ``[lo, hi]`` degrees (lfa's signed convention)."""

    lo: float
    hi: float
    source: str  # "labels.target_yaw" | "standard"

    @property
    def extent(self) -> float:
        return max(abs(self.lo), abs(self.hi))

    def buckets(self, edges: Sequence[float] = YAW_EDGES) -> list[int]:
        """Indices of the |yaw| buckets the target reaches into (the frontal one at least)."""
        return [b for b in range(len(edges) - 1) if b == 0 or edges[b] < self.extent]


def target_of(labels: Mapping[str, Any], edges: Sequence[float] = YAW_EDGES, where: str = "spec item") -> Target:
    """The item's target from ``labels["target_yaw"]`` (a ``[lo, hi]`` pair), else the standard set."""
    value = labels.get("target_yaw")
    if value is None:
        return Target(-float(edges[-1]), float(edges[-1]), "standard")
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: labels.target_yaw must be a [lo, hi] pair of degrees, got {value!r}",
                          "write e.g. \"target_yaw\": [-75, 75] (or leave it out for the standard buckets)") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ConfigError(f"{where}: labels.target_yaw {value!r} is not an increasing pair of degrees",
                          "write e.g. \"target_yaw\": [-75, 75]")
    return Target(lo, hi, "labels.target_yaw")


def assigned_yaw(yaw: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Measured yaw, and for frames without one the yaw interpolated in time between posed frames
    (held constant before the first and after the last); all NaN when no frame has a pose."""
    yaw, t = np.asarray(yaw, np.float64), np.asarray(t, np.float64)
    posed = ~np.isnan(yaw)
    if not posed.any():
        return yaw.copy()
    order = np.argsort(t[posed], kind="stable")
    return np.where(posed, yaw, np.interp(t, t[posed][order], yaw[posed][order]))


@dataclass
class VideoHeadline:
    score: float
    target: Target
    buckets: list[str]  # labels of the target buckets
    frames: dict[str, int]  # frames counted in each target bucket
    verified: dict[str, int]
    no_face: dict[str, int]
    no_pose: dict[str, int]  # face found, pose not
    reached: dict[str, bool]
    yaw_min: float
    yaw_max: float
    flags: list[str] = field(default_factory=list)
    matched: dict[str, int] = field(default_factory=dict)  # posed frames compared with a pose-matched view

    def posed(self, label: str) -> int:
        """Frames of the bucket with a face and a pose."""
        return self.frames.get(label, 0) - self.no_face.get(label, 0) - self.no_pose.get(label, 0)

    @property
    def cross_pose(self) -> list[str]:
        """Reached target buckets whose posed frames were mostly compared without a pose-matched view."""
        return [b for b in self.buckets if self.reached[b] and self.posed(b)
                and self.matched.get(b, 0) < MATCHED_SHARE * self.posed(b)]

    @property
    def coverage(self) -> float:
        """Share of the target buckets reached by a posed frame."""
        return float(np.mean([self.reached[b] for b in self.buckets])) if self.buckets else math.nan

    def rate(self, label: str) -> float:
        n = self.frames.get(label, 0)
        return self.verified[label] / n if n and self.reached[label] else (0.0 if label in self.reached else math.nan)


def video_headline(verified: np.ndarray, detected: np.ndarray, yaw: np.ndarray, pitch: np.ndarray, t: np.ndarray,
                   target: Target, edges: Sequence[float] = YAW_EDGES, matched: np.ndarray | None = None
                   ) -> VideoHeadline:
    """The headline of one video from its frames (see the module docstring). ``verified``: the identity
    decision per frame (ignored where there is no face or no pose); ``matched``: whether the frame was
    compared with a pose-matched view (default: none was)."""
    detected = np.asarray(detected, bool)
    yaw = np.where(detected, np.asarray(yaw, np.float64), np.nan)
    pitch = np.where(detected, np.asarray(pitch, np.float64), np.nan)
    posed = ~np.isnan(yaw)
    success = np.asarray(verified, bool) & posed
    matched = posed & (np.asarray(matched, bool) if matched is not None else np.zeros(len(posed), bool))
    wanted = target.buckets(edges)
    last = wanted[-1]
    b = bucket_of(assigned_yaw(yaw, t), edges)
    labels = bucket_labels(edges)
    out = VideoHeadline(0.0, target, [labels[k] for k in wanted], {}, {}, {}, {}, {},
                        float(np.min(yaw[posed])) if posed.any() else math.nan,
                        float(np.max(yaw[posed])) if posed.any() else math.nan)
    for k in wanted:
        lab = labels[k]
        # no posed frame at all: every frame is a failure in every target bucket
        sel = (b == k) | ((b > last) if k == last else False) | (b < 0)
        out.frames[lab] = int(sel.sum())
        out.verified[lab] = int((success & sel).sum())
        out.no_face[lab] = int((~detected & sel).sum())
        out.no_pose[lab] = int((detected & ~posed & sel).sum())
        out.matched[lab] = int((matched & sel).sum())
        out.reached[lab] = bool((posed & ((b == k) | ((b > last) if k == last else False))).any())
    out.score = float(np.mean([out.rate(lab) for lab in out.buckets]))
    out.flags = motion_flags(yaw, pitch, target)
    return out


def motion_flags(yaw: np.ndarray, pitch: np.ndarray, target: Target) -> list[str]:
    """``no_motion`` and ``angle_not_reached`` of one video (posed frames only)."""
    yaw, pitch = np.asarray(yaw, np.float64), np.asarray(pitch, np.float64)
    posed = ~np.isnan(yaw)
    flags = []
    if posed.sum() < 2 or (np.ptp(yaw[posed]) < NO_MOTION_DEG and np.ptp(np.nan_to_num(pitch[posed])) < NO_MOTION_DEG):
        flags.append("no_motion")
    lo = float(np.min(yaw[posed])) if posed.any() else math.nan
    hi = float(np.max(yaw[posed])) if posed.any() else math.nan
    short = not posed.any()
    if target.lo < -ANGLE_TOLERANCE and not (lo <= target.lo + ANGLE_TOLERANCE):
        short = True
    if target.hi > ANGLE_TOLERANCE and not (hi >= target.hi - ANGLE_TOLERANCE):
        short = True
    if short:
        flags.append("angle_not_reached")
    return flags


# -- over items ----------------------------------------------------------------------------------------------
def resampled_means(values: np.ndarray, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Means of ``n_boot`` bootstrap resamples (with replacement) of ``values``."""
    v = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    return v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)


def bootstrap_ci(values: np.ndarray, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
                 ) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (items resampled with replacement)."""
    if np.asarray(values).size == 0:
        return math.nan, math.nan
    means = resampled_means(values, n_boot, seed)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


@dataclass(frozen=True)
class Paired:
    a: str
    b: str
    n_items: int
    mean_diff: float  # mean over items of score_a - score_b
    ci95: tuple[float, float]  # paired bootstrap interval of mean_diff
    win_rate: float  # share of items where a beats b (ties count half)
    p_not_better: float  # share of bootstrap resamples where a does not beat b on average

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "n_items": self.n_items, "mean_diff": self.mean_diff,
                "ci95": list(self.ci95), "win_rate": self.win_rate, "p_not_better": self.p_not_better}


def paired(a: str, b: str, scores_a: np.ndarray, scores_b: np.ndarray, *, n_boot: int = 2000, seed: int = 0
           ) -> Paired:
    """Model ``a`` against ``b`` on the same items (paired): win rate and paired bootstrap of the difference."""
    d = np.asarray(scores_a, np.float64) - np.asarray(scores_b, np.float64)
    if d.size == 0:
        return Paired(a, b, 0, math.nan, (math.nan, math.nan), math.nan, math.nan)
    means = resampled_means(d, n_boot, seed)
    win = float(((d > 0) + 0.5 * (d == 0)).mean())
    return Paired(a, b, int(d.size), float(d.mean()), (float(np.quantile(means, 0.025)),
                                                       float(np.quantile(means, 0.975))),
                  win, float((means <= 0).mean()))
