"""Pose accuracy against rendered ground truth, every backend side by side, per |yaw| bucket.

The renders are MediaPipe's own mesh fitted to a photo, so the ``mediapipe`` landmark fit (and the
fused pose wherever it uses the landmarks) **shares geometry with the renderer**: its figures here
are optimistic. WHENet is an independent network (trained on 300W-LP and CMU Panoptic) and
does not (see :data:`SHARES_RENDER_GEOMETRY`). Checks whose truth is not the renderer's live in
the tests: mirror symmetry and in-plane rotation of real photos.

One detection pass per frame feeds every backend: ``mediapipe`` (landmark fit), ``whenet``,
``fused`` (:func:`lfa.face.pose.fused.fuse` of the two, what ``FaceAnalyzer`` returns by default)
and ``fused+track`` (the fused poses of each clip through :func:`lfa.face.pose.track.guard_track`).

Angles are compared relative to each clip's **frontal frames** (true yaw, pitch and roll all
within ``FRONTAL_DEG`` of 0): the median estimate there is subtracted, so a constant offset between a
backend's "frontal" and the photo's frontalised head does not count. That offset is reported
separately as ``frontal_offset`` (mean absolute yaw at true frontal), since the benchmark buckets
absolute yaw. ``pose_rate`` counts frames with a pose among frames in the bucket;
``detection_rate`` frames where the detector found the face.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from lfa.face import AnalyzerConfig, FaceAnalyzer
from lfa.face.pose.fused import FusionConfig, fuse
from lfa.face.pose.track import guard_track
from lfa.face.types import Face, HeadPose
from lfa.registry import ModelStore
from lfa.samples import SAMPLE_NAMES
from lfa.synth.backgrounds import make_backdrop
from lfa.synth.clip import HeadLibrary
from lfa.synth.render import HeadPlacement, render
from lfa.synth.trajectory import Trajectory, resolve

YAW_BUCKETS = ((0, 15), (15, 30), (30, 45), (45, 60), (60, 75), (75, 90))
FRONTAL_DEG = 3.0
BACKENDS = ("mediapipe", "whenet", "fused", "fused+track")
SHARES_RENDER_GEOMETRY = {"mediapipe": True, "whenet": False, "fused": True, "fused+track": True}
"""The renderer draws MediaPipe's canonical mesh: the landmark fit reads back its own geometry."""


SWEEPS: dict[str, Callable[[], Trajectory]] = {
    "yaw-sweep": lambda: resolve("yaw-sweep"),
    "profile-sweep": lambda: resolve("profile-sweep"),
    "pitch-sweep": lambda: resolve("pitch-sweep"),
    "roll-sweep": lambda: resolve("roll-sweep"),
}


@dataclass
class FrameEstimate:
    sweep: str
    photo: str
    truth: tuple[float, float, float]
    estimate: tuple[float, float, float] | None  # None: no face, or a face without a head pose
    detected: bool  # the detector found a face


def bucket_name(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g}"


def yaw_bucket_of(yaw: float) -> str | None:
    a = abs(yaw)
    last = YAW_BUCKETS[-1][1]
    return next((bucket_name(lo, hi) for lo, hi in YAW_BUCKETS if lo <= a < hi or (hi == last and a <= hi)), None)


def render_sweep(heads: HeadLibrary, photo: str, sweep: str, *, frames: int, size: int = 512,
                 face_size: float = 0.3, trajectory: Trajectory | None = None
                 ) -> list[tuple[np.ndarray, tuple[float, float, float]]]:
    """Frames of ``photo``'s head along the named sweep (or ``trajectory``) and their true angles."""
    head = heads.get(photo)
    trajectory = trajectory or (SWEEPS[sweep]() if sweep in SWEEPS else resolve(sweep))
    background = make_backdrop("photo", size, size, seed=sum(map(ord, sweep)) % 1000)
    scale = face_size * size / head.face_width
    out = []
    for i in range(frames):
        s = trajectory(i / frames, 1.0)
        image, _ = render(background, [HeadPlacement(head, s.yaw, s.pitch, s.roll, (size / 2, 0.55 * size), scale)])
        out.append((image, (s.yaw, s.pitch, s.roll)))
    return out


def _angles(pose: HeadPose | Face | None) -> tuple[float, float, float] | None:
    if pose is None or math.isnan(pose.yaw):
        return None
    return (pose.yaw, pose.pitch, pose.roll)


def estimate_sweeps(analyzer: FaceAnalyzer, renders: dict[tuple[str, str], list], fusion: FusionConfig
                    ) -> dict[str, list[FrameEstimate]]:
    """Every backend's estimate of every frame (largest detected face), from one detection pass."""
    assert analyzer.pose is not None and hasattr(analyzer.pose, "landmarks_backend")
    landmarks, whenet = analyzer.pose.landmarks_backend, analyzer.pose.whenet_backend
    rows: dict[str, list[FrameEstimate]] = {name: [] for name in BACKENDS}
    for (photo, sweep), frames in renders.items():
        track: list[Face] = []
        for image, truth in frames:
            detections = analyzer.detector.detect(image)
            det = max(detections, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]), default=None)
            lm = landmarks.estimate(image, det) if det is not None else None
            wh = whenet.estimate(image, det) if det is not None else None
            fused, _ = fuse(lm, wh, fusion) if det is not None else (None, "")
            for name, pose in (("mediapipe", lm), ("whenet", wh), ("fused", fused)):
                rows[name].append(FrameEstimate(sweep, photo, truth, _angles(pose), det is not None))
            face = Face(np.zeros(4), 0.0, np.zeros((5, 2)), 0.0, 0.0)
            if fused is not None:
                face.yaw, face.pitch, face.roll, face.pose_source = fused.yaw, fused.pitch, fused.roll, fused.source
                face.pose_confidence = fused.confidence
                face.pose_readings = {k: (p.yaw, p.pitch, p.roll) for k, p in (("landmarks", lm), ("whenet", wh)) if p}
            track.append(face)
        guard_track(track, [i / len(frames) for i in range(len(frames))], fusion)
        for face, (image, truth), row in zip(track, frames, rows["fused"][-len(frames):]):
            rows["fused+track"].append(FrameEstimate(sweep, photo, truth, _angles(face), row.detected))
    return rows


def _frontal_reference(clip: list[FrameEstimate]) -> np.ndarray | None:
    frontal = [r.estimate for r in clip if r.estimate is not None and max(map(abs, r.truth)) <= FRONTAL_DEG]
    return np.median(np.array(frontal), axis=0) if frontal else None


def summarise(rows: list[FrameEstimate]) -> dict[str, dict[str, float]]:
    """Per |yaw| bucket: MAE of each angle (relative to the clip's frontal frames), pose and detection
    rates; under ``"frontal"``: the mean absolute yaw at true frontal (the offset the MAEs leave out)."""
    names = [bucket_name(*b) for b in YAW_BUCKETS]
    errors: dict[str, list[np.ndarray]] = {n: [] for n in names}
    seen: dict[str, list[bool]] = {n: [] for n in names}
    posed: dict[str, list[bool]] = {n: [] for n in names}
    offsets: list[float] = []
    for key in sorted({(r.photo, r.sweep) for r in rows}):
        clip = [r for r in rows if (r.photo, r.sweep) == key]
        ref = _frontal_reference(clip)
        offsets += [abs(r.estimate[0]) for r in clip if r.estimate is not None and max(map(abs, r.truth)) <= FRONTAL_DEG]
        for r in clip:
            name = yaw_bucket_of(r.truth[0])
            if name is None:
                continue
            seen[name].append(r.detected)
            posed[name].append(r.estimate is not None)
            if r.estimate is not None and ref is not None:
                errors[name].append(np.abs((np.subtract(r.estimate, ref) - np.array(r.truth) + 180) % 360 - 180))
    out: dict[str, dict[str, float]] = {}
    for name in names:
        e = np.array(errors[name]) if errors[name] else np.full((1, 3), np.nan)
        out[name] = {"mae_yaw": float(np.mean(e[:, 0])), "mae_pitch": float(np.mean(e[:, 1])),
                     "mae_roll": float(np.mean(e[:, 2])),
                     "detection_rate": float(np.mean(seen[name])) if seen[name] else float("nan"),
                     "pose_rate": float(np.mean(posed[name])) if posed[name] else float("nan"),
                     "frames": len(seen[name])}
    out["frontal"] = {"frontal_offset": float(np.mean(offsets)) if offsets else float("nan"),
                      "frames": len(offsets)}
    return out


def evaluate_pose(photos: list[str] | None = None, *, backends: list[str] | None = None, frames: int = 100,
                  sweeps: tuple[str, ...] = tuple(SWEEPS), store: ModelStore | None = None,
                  fusion: FusionConfig | None = None, on_progress: Callable[[str], None] | None = None
                  ) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, list[FrameEstimate]]]:
    """Summary per backend and |yaw| bucket, and the per-frame estimates, on sweeps of ``photos``."""
    store = store or ModelStore()
    photos = photos or list(SAMPLE_NAMES)
    heads = HeadLibrary()
    analyzer = FaceAnalyzer(AnalyzerConfig(pose="fused", identity="none"), store=store)
    raw: dict[str, list[FrameEstimate]] = {name: [] for name in BACKENDS}
    for photo in photos:
        if on_progress:
            on_progress(photo)
        renders = {(photo, s): render_sweep(heads, photo, s, frames=frames) for s in sweeps}
        for name, rows in estimate_sweeps(analyzer, renders, fusion or FusionConfig()).items():
            raw[name] += rows
    wanted = backends or list(BACKENDS)
    return {name: summarise(raw[name]) for name in wanted}, {name: raw[name] for name in wanted}


def plot(summary: dict[str, Any], raw: dict[str, list[FrameEstimate]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for name, rows in raw.items():
        yaw = [(r.truth[0], r.estimate[0]) for r in rows if r.sweep in ("yaw-sweep", "profile-sweep") and r.estimate]
        if yaw:
            t, e = np.array(yaw).T
            axes[0].scatter(t, e, s=6, label=name)
    axes[0].plot([-90, 90], [-90, 90], "k--", lw=0.8)
    axes[0].set(xlabel="true yaw (°)", ylabel="estimated yaw (°)", title="yaw sweep")
    axes[0].legend()
    names = [bucket_name(*b) for b in YAW_BUCKETS]
    x = np.arange(len(names))
    width = 0.8 / max(len(summary), 1)
    for k, (name, buckets) in enumerate(summary.items()):
        axes[1].bar(x + k * width, [buckets[b]["mae_yaw"] for b in names], width, label=f"{name} yaw")
        axes[2].bar(x + k * width, [buckets[b]["detection_rate"] for b in names], width, alpha=0.35,
                    label=f"{name} detected")
        axes[2].plot(x + k * width, [buckets[b]["pose_rate"] for b in names], "o-", label=f"{name} with pose")
    axes[1].axhline(5, color="k", lw=0.8, ls="--")
    axes[1].set(xticks=x + 0.4 - width / 2, xticklabels=names, xlabel="|yaw| bucket (°)", ylabel="MAE yaw (°)",
                title="yaw error per bucket (goal ≤ 5° up to 45°)")
    axes[2].axhline(0.95, color="k", lw=0.8, ls="--")
    axes[2].set(xticks=x + 0.4 - width / 2, xticklabels=names, xlabel="|yaw| bucket (°)", ylabel="rate",
                ylim=(0, 1.05), title="detection and pose rate (goal ≥ 95% up to 75°)")
    axes[1].legend()
    axes[2].legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
