"""Identity conditioning on diffusers' Wan transformer: MoFE/CoFE experts, FaithfulFaces aligner, Mv²ID references.

Importing this package does not import torch or diffusers until a name is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AdapterConfig": "lfa.model.config",
    "IdentityAdapter": "lfa.model.adapter",
    "ADAPTER_PRESETS": "lfa.model.config",
    "AdapterOutput": "lfa.model.state",
    "ConditioningReport": "lfa.model.state",
    "IdentityTrainingModule": "lfa.model.training",
    "TrainingBatch": "lfa.model.training",
    "TrainingOutput": "lfa.model.training",
    "FlowMatchingConfig": "lfa.model.flow",
    "FaceInputs": "lfa.model.encoders",
    "FaceFeatures": "lfa.model.encoders",
    "FaceEncoder": "lfa.model.encoders",
    "ArcFaceEncoder": "lfa.model.encoders",
    "EmbeddingIdentityEncoder": "lfa.model.encoders",
    "VisionTowerEncoder": "lfa.model.encoders",
    "VaeDetailEncoder": "lfa.model.encoders",
    "prepare_faces": "lfa.model.encoders",
    "encode_images": "lfa.model.vae",
    "PerceiverResampler": "lfa.model.resampler",
    "ExpertGate": "lfa.model.gate",
    "PoseSharedAligner": "lfa.model.aligner",
    "FaceCrossAttnProcessor": "lfa.model.attention",
    "ConditionedRope": "lfa.model.references",
    "PRESETS": "lfa.model.presets",
    "describe": "lfa.model.presets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lfa.model' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
