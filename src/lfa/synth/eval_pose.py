"""Pose accuracy against rendered ground truth, per backend and per |yaw| bucket.

Angles are compared relative to each clip's first estimated frame (the renders start frontal), so a
constant offset between a backend's idea of "frontal" and the photo's frontalised head does not count.
``detection_rate`` counts frames where the detector found the face; ``pose_rate`` frames where the
stack also returned a head pose (MediaPipe's landmarker can miss a face the detector found).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lfa.face import AnalyzerConfig, FaceAnalyzer
from lfa.registry import ModelStore
from lfa.samples import SAMPLE_NAMES
from lfa.synth.backgrounds import make_backdrop
from lfa.synth.clip import HeadLibrary
from lfa.synth.render import HeadPlacement, render
from lfa.synth.trajectory import resolve

YAW_BUCKETS = ((0, 15), (15, 30), (30, 45), (45, 60), (60, 75), (75, 90))
SWEEPS = ("profile-sweep", "pitch-sweep", "roll-sweep")
BACKENDS: dict[str, AnalyzerConfig] = {
    "mediapipe": AnalyzerConfig(pose="mediapipe", identity="none"),
    "mediapipe-matrix": AnalyzerConfig(pose="mediapipe", pose_solver="matrix", identity="none"),
    "sixdrepnet": AnalyzerConfig(pose="sixdrepnet", identity="none"),
}


@dataclass
class FrameEstimate:
    sweep: str
    photo: str
    truth: tuple[float, float, float]
    estimate: tuple[float, float, float] | None  # None: no face, or a face without a head pose
    detected: bool  # the detector found a face


def available_backends(store: ModelStore) -> list[str]:
    return [name for name in BACKENDS if name != "sixdrepnet" or store.is_available("sixdrepnet")]


def bucket_name(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g}"


def render_sweep(heads: HeadLibrary, photo: str, sweep: str, *, frames: int, size: int = 512,
                 face_size: float = 0.3) -> list[tuple[np.ndarray, tuple[float, float, float]]]:
    head = heads.get(photo)
    trajectory = resolve(sweep)
    background = make_backdrop("photo", size, size, seed=SWEEPS.index(sweep) if sweep in SWEEPS else 0)
    scale = face_size * size / head.face_width
    out = []
    for i in range(frames):
        s = trajectory(i / frames, 1.0)
        image, _ = render(background, [HeadPlacement(head, s.yaw, s.pitch, s.roll, (size / 2, 0.55 * size), scale)])
        out.append((image, (s.yaw, s.pitch, s.roll)))
    return out


def estimate_sweeps(analyzer: FaceAnalyzer, renders: dict[tuple[str, str], list]) -> list[FrameEstimate]:
    rows = []
    for (photo, sweep), frames in renders.items():
        for image, truth in frames:
            found = analyzer.analyze(image)
            faces = [f for f in found if not math.isnan(f.yaw)]
            best = max(faces, key=lambda f: f.area_ratio) if faces else None
            rows.append(FrameEstimate(sweep, photo, truth, (best.yaw, best.pitch, best.roll) if best else None,
                                      bool(found)))
    return rows


def summarise(rows: list[FrameEstimate]) -> dict[str, dict[str, float]]:
    """Per |yaw| bucket: MAE of each angle (relative to the clip's first estimate) and detection rate."""
    errors: dict[str, list[np.ndarray]] = {bucket_name(*b): [] for b in YAW_BUCKETS}
    seen: dict[str, list[bool]] = {bucket_name(*b): [] for b in YAW_BUCKETS}
    posed: dict[str, list[bool]] = {bucket_name(*b): [] for b in YAW_BUCKETS}
    for key in sorted({(r.photo, r.sweep) for r in rows}):
        clip = [r for r in rows if (r.photo, r.sweep) == key]
        ref = next((r for r in clip if r.estimate is not None), None)
        for r in clip:
            a = abs(r.truth[0])
            name = next((bucket_name(lo, hi) for lo, hi in YAW_BUCKETS if lo <= a < hi or (hi == YAW_BUCKETS[-1][1] and a <= hi)), None)
            if name is None:
                continue
            seen[name].append(r.detected)
            posed[name].append(r.estimate is not None)
            if r.estimate is not None and ref is not None:
                est = np.subtract(r.estimate, ref.estimate)
                tru = np.subtract(r.truth, ref.truth)
                errors[name].append(np.abs((est - tru + 180) % 360 - 180))
    out = {}
    for name in errors:
        e = np.array(errors[name]) if errors[name] else np.full((1, 3), np.nan)
        out[name] = {"mae_yaw": float(np.mean(e[:, 0])), "mae_pitch": float(np.mean(e[:, 1])),
                     "mae_roll": float(np.mean(e[:, 2])),
                     "detection_rate": float(np.mean(seen[name])) if seen[name] else float("nan"),
                     "pose_rate": float(np.mean(posed[name])) if posed[name] else float("nan"),
                     "frames": len(seen[name])}
    return out


def evaluate_pose(photos: list[str] | None = None, *, backends: list[str] | None = None, frames: int = 100,
                  store: ModelStore | None = None, on_progress: Callable[[str], None] | None = None
                  ) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, list[FrameEstimate]]]:
    store = store or ModelStore()
    photos = photos or list(SAMPLE_NAMES)
    heads = HeadLibrary()
    renders = {(p, s): render_sweep(heads, p, s, frames=frames) for p in photos for s in SWEEPS}
    summary, raw = {}, {}
    for name in backends or available_backends(store):
        if on_progress:
            on_progress(name)
        rows = estimate_sweeps(FaceAnalyzer(BACKENDS[name], store=store), renders)
        summary[name], raw[name] = summarise(rows), rows
    return summary, raw


def plot(summary: dict[str, Any], raw: dict[str, list[FrameEstimate]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for name, rows in raw.items():
        yaw = [(r.truth[0], r.estimate[0]) for r in rows if r.sweep == SWEEPS[0] and r.estimate]
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
                ylim=(0, 1.05), title="detection and pose rate (goal ≥ 95% up to 60°)")
    axes[1].legend()
    axes[2].legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
