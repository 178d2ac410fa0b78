"""What a benchmark run holds once it is scored: references, analyses, rows, aggregates, the leaderboard.

Plain data shared by :mod:`lfa.bench.runner` (which builds it) and :mod:`lfa.bench.report` /
:mod:`lfa.bench.leaderboard` (which read it), so that neither reader imports the runner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lfa.bench import metrics as M
from lfa.bench.config import BenchConfig
from lfa.bench.headline import Paired, VideoHeadline
from lfa.bench.records import FrameRecord, VideoAnalysis
from lfa.bench.spec import SpecItem
from lfa.face.identity.score import FaceSet

REFERENCE_MODEL = "(reference)"


@dataclass
class Reference:
    """An item's reference faces: one record per reference image (``records``: what the generator is given)
    and per evaluation view (``eval_records``: scoring only), and what the metrics use. The identity metrics
    (``embeddings``, ``faces``) rest on both; the copy-paste check and the pose distance on ``records``."""

    item: SpecItem
    records: list[FrameRecord]
    eval_records: list[FrameRecord] = field(default_factory=list)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # normalised mean over all views' faces
    faces: dict[str, FaceSet] = field(default_factory=dict)  # every view's face with its yaw, per model
    poses: list[tuple[float, float]] = field(default_factory=list)  # (yaw, pitch) of each posed reference
    pose_assumed: bool = False  # no reference had a pose: frontal (0, 0) assumed
    compat: FrameRecord | None = None  # the first reference, processed the compat way
    identity_key: str = ""  # the person, for impostors: labels.cluster_id, else the item id

    @property
    def thumbs(self) -> list[np.ndarray]:
        return [r.thumb for r in self.records if r.thumb is not None]

    @property
    def views(self) -> list[FrameRecord]:
        """Every face the identity metrics compare with: the references and the evaluation views."""
        return [r for r in self.records + self.eval_records if r.detected]

    @property
    def view_yaws(self) -> list[float]:
        """Yaw of every posed view (reference or evaluation view), degrees."""
        return sorted(r.yaw for r in self.views if r.has_pose)


@dataclass
class BenchResult:
    config: BenchConfig
    items: list[SpecItem]
    models: dict[str, Path]
    references: dict[str, Reference]
    analyses: list[VideoAnalysis]
    rows: list[dict[str, Any]]
    frames: list[dict[str, Any]]
    aggregates: dict[str, dict[str, Any]]
    curves: dict[str, dict[str, dict[str, M.BucketStat]]]
    summary: dict[str, Any]
    headlines: dict[tuple[str, str], VideoHeadline] = field(default_factory=dict)  # (model, id) -> headline
    leaderboard: list[dict[str, Any]] = field(default_factory=list)  # leaderboard.json's "models", ranked
    pairs: list[Paired] = field(default_factory=list)
    out_dir: Path | None = None
