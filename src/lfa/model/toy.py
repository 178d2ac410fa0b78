"""Toy-sized Wan backbones, adapter configs and random face features, for tests and CPU benchmarks.

Random weights, built in memory: nothing is downloaded and nothing here is a real model.
"""

from __future__ import annotations

from typing import Any

import torch

from lfa.model.config import AdapterConfig
from lfa.model.encoders import FaceFeatures

TOY_TEXT_LEN = 512  # Wan's text length; I2V splits image tokens from text at it


def toy_backbone_config(*, i2v: bool = False, layers: int = 2, heads: int = 2, head_dim: int = 16,
                        latent_channels: int = 4, text_dim: int = 16, ffn_dim: int = 64) -> dict[str, Any]:
    """A WanTransformer3DModel config with patch (1, 2, 2); I2V adds CLIP-image tokens and mask channels."""
    inner = heads * head_dim
    config: dict[str, Any] = {
        "patch_size": (1, 2, 2), "num_attention_heads": heads, "attention_head_dim": head_dim,
        "in_channels": latent_channels, "out_channels": latent_channels, "text_dim": text_dim,
        "freq_dim": 16, "ffn_dim": ffn_dim, "num_layers": layers, "rope_max_seq_len": 64,
    }
    if i2v:
        config.update(in_channels=2 * latent_channels + 4, image_dim=8, added_kv_proj_dim=inner)
    return config


def toy_adapter_config(**changes: Any) -> AdapterConfig:
    """``adapter_preset`` (default cofe) at toy widths (identity 8-d, semantic 12-d tokens, LoRA rank 4)."""
    base = dict(identity_dim=8, semantic_dim=12, num_queries=4, projector_dim=16, projector_depth=1, projector_heads=2,
                gate_hidden_dim=8, dictionary_size=32, pose_embed_dim=8, every_k_blocks=1, face_kv_rank=4,
                detail_size=32)
    base.update(changes)
    config = AdapterConfig(**base)
    if config.lora_rank > 4 and "lora_rank" not in changes:
        config = config.replace(lora_rank=4)
    return config


def random_features(config: AdapterConfig, batch: int, *, detail_dim: int, semantic_tokens: int = 5,
                    detail_tokens: int = 16, generator: torch.Generator | None = None) -> FaceFeatures:
    """Random expert tokens of the widths ``config`` expects (``detail_dim`` = latent channels * patch^2)."""
    dims = {"identity": (1, config.identity_dim), "semantic": (semantic_tokens, config.semantic_dim),
            "detail": (detail_tokens, detail_dim)}
    tokens = {name: torch.randn(batch, *dims[name], generator=generator) for name in config.experts}
    angles = (torch.rand(batch, 3, generator=generator) - 0.5) * torch.tensor([180.0, 90.0, 60.0])
    return FaceFeatures(tokens, angles)
