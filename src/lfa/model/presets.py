"""Real Wan2.1 transformer configs, and parameter counts of backbone and adapter on the meta device."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfa.errors import ConfigError
from lfa.model.config import AdapterConfig

_SOURCE = ("diffusers scripts/convert_wan_to_diffusers.py, get_transformer_config({name!r}) "
           "(github.com/huggingface/diffusers, commit 7d5682739a1e)")


@dataclass(frozen=True)
class BackbonePreset:
    name: str
    description: str
    source: str
    config: dict[str, Any] = field(repr=False)
    experts: int = 1  # Wan2.2 A14B: two transformers of this config (high- and low-noise)
    vae_spatial: int = 8  # pixels per latent cell (Wan2.2's VAE: 16)


# Wan-T2V-14B; the other Wan configs differ from it in the keys they name.
_WAN14B = {"added_kv_proj_dim": None, "attention_head_dim": 128, "cross_attn_norm": True, "eps": 1e-06,
           "ffn_dim": 13824, "freq_dim": 256, "in_channels": 16, "num_attention_heads": 40, "num_layers": 40,
           "out_channels": 16, "patch_size": [1, 2, 2], "qk_norm": "rms_norm_across_heads", "text_dim": 4096}
PRESETS: dict[str, BackbonePreset] = {
    "wan2.1-t2v-1.3b": BackbonePreset(
        "wan2.1-t2v-1.3b",
        "Wan2.1 text-to-video 1.3B (Wan-AI/Wan2.1-T2V-1.3B-Diffusers)",
        _SOURCE.format(name="Wan-T2V-1.3B"),
        {**_WAN14B, "ffn_dim": 8960, "num_attention_heads": 12, "num_layers": 30},
    ),
    "wan2.1-t2v-14b": BackbonePreset(
        "wan2.1-t2v-14b",
        "Wan2.1 text-to-video 14B (Wan-AI/Wan2.1-T2V-14B-Diffusers)",
        _SOURCE.format(name="Wan-T2V-14B"),
        dict(_WAN14B),
    ),
    "wan2.1-i2v-14b": BackbonePreset(
        "wan2.1-i2v-14b",
        "Wan2.1 image-to-video 14B, 480P and 720P share it (Wan-AI/Wan2.1-I2V-14B-480P-Diffusers)",
        _SOURCE.format(name="Wan-I2V-14B-480p"),
        {**_WAN14B, "image_dim": 1280, "added_kv_proj_dim": 5120, "in_channels": 36},
    ),
}


PRESETS.update({
    "wan2.2-ti2v-5b": BackbonePreset(
        "wan2.2-ti2v-5b",
        "Wan2.2 text/image-to-video 5B, 48-channel VAE of 4x16x16 (Wan-AI/Wan2.2-TI2V-5B-Diffusers)",
        _SOURCE.format(name="Wan2.2-TI2V-5B"),
        {**_WAN14B, "ffn_dim": 14336, "in_channels": 48, "num_attention_heads": 24, "num_layers": 30,
         "out_channels": 48},
        vae_spatial=16,
    ),
    "wan2.2-t2v-a14b": BackbonePreset(
        "wan2.2-t2v-a14b",
        "Wan2.2 text-to-video A14B: two 14B experts, high noise above boundary 0.875 "
        "(Wan-AI/Wan2.2-T2V-A14B-Diffusers)",
        _SOURCE.format(name="Wan2.2-T2V-A14B"), dict(_WAN14B), experts=2,
    ),
    "wan2.2-i2v-a14b": BackbonePreset(
        "wan2.2-i2v-a14b",
        "Wan2.2 image-to-video A14B: two 14B experts (boundary 0.9), first-frame channels, no CLIP branch "
        "(Wan-AI/Wan2.2-I2V-A14B-Diffusers)",
        _SOURCE.format(name="Wan2.2-I2V-14B-720p"), {**_WAN14B, "in_channels": 36}, experts=2,
    ),
})


def get_preset(name: str) -> BackbonePreset:
    if name not in PRESETS:
        raise ConfigError(f"unknown backbone preset {name!r}", f"use one of: {', '.join(PRESETS)}")
    return PRESETS[name]


def load_backbone_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A diffusers Wan transformer ``config.json`` (or a folder holding one, or its ``transformer/``)."""
    p = Path(path)
    for candidate in (p, p / "config.json", p / "transformer" / "config.json"):
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text())
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{candidate}: not valid JSON ({exc})", "pass a diffusers config.json") from exc
            if not isinstance(data, dict) or "num_layers" not in data:
                raise ConfigError(f"{candidate}: not a Wan transformer config (no num_layers)",
                                  "pass the transformer's config.json")
            return {k: v for k, v in data.items() if not k.startswith("_")}
    raise ConfigError(f"{p}: no Wan transformer config.json found", "pass a config.json or a model folder")


def build_meta_transformer(backbone_config: dict[str, Any]):
    """A ``WanTransformer3DModel`` on the meta device: shapes only, no memory, no weights."""
    return build_transformer(backbone_config, "meta")


def build_transformer(backbone_config: dict[str, Any], device: Any = "cpu", dtype: Any = None):
    """A randomly initialised ``WanTransformer3DModel`` on ``device``, in ``dtype`` where
    ``from_pretrained(torch_dtype=...)`` would put it (``_keep_in_fp32_modules`` stay float32)."""
    import torch
    from diffusers import WanTransformer3DModel

    default = torch.get_default_dtype()
    if dtype is not None:
        torch.set_default_dtype(dtype)  # build in place, in the target dtype
    try:
        with torch.device(device):
            transformer = WanTransformer3DModel.from_config(backbone_config)
    except TypeError as exc:
        raise ConfigError(f"invalid Wan transformer config ({exc})", "check the config keys") from exc
    finally:
        torch.set_default_dtype(default)
    if dtype is not None and dtype != torch.float32:
        for name, module in transformer.named_modules():
            if set(name.split(".")) & set(transformer._keep_in_fp32_modules):
                module.float()
    return transformer


def describe(backbone_config: dict[str, Any], adapter_config: AdapterConfig | None = None, *,
             experts: int = 1) -> dict[str, Any]:
    """Parameter counts of the backbone and of the adapter in ``adapter_config``, computed on meta;
    ``experts`` transformers of this config (Wan2.2 A14B: 2, each with its own adapter) are all counted."""
    from lfa.model.adapter import IdentityAdapter

    adapter_config = adapter_config or AdapterConfig()
    transformer = build_meta_transformer(backbone_config)
    backbone_params = sum(p.numel() for p in transformer.parameters())
    adapter = IdentityAdapter.attach(transformer, adapter_config)
    parts = adapter.parameter_counts()
    adapter_params = sum(parts.values())
    inner = adapter.dims["inner_dim"]
    return {
        "backbone_params": backbone_params * experts,
        "adapter_params": adapter_params * experts,
        "adapter_percent": round(100.0 * adapter_params / backbone_params, 3),
        "adapter_parts": parts,  # per expert
        "experts": experts,
        "per_expert": {"backbone_params": backbone_params, "adapter_params": adapter_params},
        "backbone": {"inner_dim": inner, "num_layers": adapter.dims["num_layers"],
                     "in_channels": adapter.dims["in_channels"],
                     "image_to_video": backbone_config["in_channels"] != backbone_config.get("out_channels")},
        "face_blocks": adapter.face_blocks,
        "adapter_config": adapter_config.to_dict(),
        "note": "face encoders (ArcFace/IR, CLIP/SigLIP, Wan VAE) are user-supplied and frozen: not counted",
    }
