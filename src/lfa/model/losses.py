"""The aligner's pose-pair InfoNCE (the gates' balance loss is ``gate.UsageBalance``)."""

from __future__ import annotations

import torch
from torch import nn

from lfa.errors import ConfigError
from lfa.model.encoders import FaceFeatures, FaceInputs
from lfa.model.prepare import aligner_representation


def pose_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, 3) x (B, 3) degrees -> (B,) largest absolute angle difference, wrapped to [0, 180]."""
    d = (a.float() - b.float()).abs().remainder(360.0)
    return torch.minimum(d, 360.0 - d).amax(dim=-1)


def identity_alignment_loss(adapter: nn.Module, view_a: FaceInputs | FaceFeatures,
                            view_b: FaceInputs | FaceFeatures, groups: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE between the aligner's representations of two poses of the same identities.

    Row i of both views is one identity; the pair must differ in pose by ``min_pose_difference``. Rows with
    the same ``groups`` entry (one person, several clips) are not each other's negatives.
    The loss reaches the aligner (and, with ``aligner_input='identity'``, the identity projector).
    """
    if adapter.aligner is None:
        raise ConfigError("the aligner is disabled", "set aligner=true in the adapter config")
    features = [adapter.features(v) for v in (view_a, view_b)]
    a, b = features
    if a.batch_size != b.batch_size:
        raise ConfigError(f"alignment views hold {a.batch_size} and {b.batch_size} faces",
                          "pair every face of view A with one of the same identity in view B")
    if a.batch_size < 2:
        raise ConfigError("InfoNCE needs at least 2 identities per batch (the others are the negatives)",
                          "batch two or more identities' pose pairs")
    gap = pose_difference(a.angles, b.angles)
    minimum = adapter.config.min_pose_difference
    if bool((gap < minimum).any()):
        bad = int((gap < minimum).sum())
        raise ConfigError(f"{bad} of {len(gap)} positive pairs differ in pose by less than {minimum:g} degrees "
                          f"(smallest {float(gap.min()):.1f})",
                          "pair two different poses of each identity, or lower min_pose_difference")
    reps = [aligner_representation(adapter, f) for f in features]
    return adapter.aligner.info_nce(*reps, groups=groups)
