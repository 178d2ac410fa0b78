"""``AdapterConfig``: every identity-conditioning mechanism as one switch, with a JSON round trip."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from lfa.errors import ConfigError

EXPERTS = ("identity", "semantic", "detail")
GATE_GRANULARITIES = ("sample", "token")
REFERENCE_MODES = ("none", "vanilla", "standin", "mv2id")
LORA_TARGETS = ("attn1", "attn2", "ffn")


@dataclass(frozen=True)
class AdapterConfig:
    """What the identity adapter builds on a Wan transformer. Defaults: MoFE + aligner + Mv²ID, no LoRA.

    Token widths of the projected experts, the gate and the face key/values are the backbone's
    ``inner_dim``; the sizes below are the adapter's own.
    """

    # Experts (MoFE): which ones exist, and the width of what each frozen encoder emits.
    identity_expert: bool = True
    semantic_expert: bool = True
    detail_expert: bool = True
    identity_dim: int = 512  # ArcFace / IR embedding size
    semantic_dim: int = 1024  # CLIP ViT-L/14 hidden size (SigLIP-so400m: 1152)
    semantic_layers: tuple[int, ...] = (-2,)  # vision-tower hidden states used as semantic tokens
    detail_patch: int = 2  # VAE-latent patch (in latent pixels) per detail token
    detail_size: int = 128  # aligned face crop side (pixels) fed to the VAE for detail tokens
    train_encoders: bool = False  # encoders are frozen unless this is set

    # Expert projectors (perceiver resamplers).
    num_queries: int = 16
    projector_dim: int = 512
    projector_depth: int = 2
    projector_heads: int = 8
    projector_ff_mult: int = 2

    # Expert gate (Linear -> GELU -> Linear -> Softmax over the experts).
    gate: bool = True  # off: expert tokens are concatenated instead of fused
    gate_granularity: str = "sample"
    gate_per_block: bool = False  # CoFE: one gate per face-attention block
    gate_timestep: bool = True  # condition the gate on the backbone's timestep embedding
    gate_hidden_dim: int = 256
    balance_loss: bool = True  # report a load-balance loss over the experts

    # Face cross-attention on attn2.
    every_k_blocks: int = 2  # 1 = every block
    face_kv_rank: int = 128  # rank of the zero-initialised face key/value projections; 0 = full
    scale: float = 1.0

    # Pose-shared identity aligner (FaithfulFaces).
    aligner: bool = True
    dictionary_size: int = 4096
    pose_embed_dim: int = 256  # sinusoidal channels per Euler angle
    temperature: float = 0.07  # initial InfoNCE temperature (learnable)

    # Multi-view references (Mv²ID) and simpler layouts.
    references: str = "mv2id"
    mask_ratio: float = 0.25  # fraction of reference regions masked in training
    mask_region: int = 2  # side of one masked region, in transformer patches

    # Backbone LoRA (peft).
    lora_rank: int = 0  # 0 = no LoRA; FaithfulFaces trains rank 128
    lora_alpha: float | None = None  # None = lora_rank
    lora_targets: tuple[str, ...] = ("attn1", "attn2")

    def __post_init__(self) -> None:
        for name in ("semantic_layers", "lora_targets"):
            value = getattr(self, name)
            if isinstance(value, (list, str)):
                object.__setattr__(self, name, tuple([value] if isinstance(value, str) else value))
        _check_choice("gate_granularity", self.gate_granularity, GATE_GRANULARITIES)
        _check_choice("references", self.references, REFERENCE_MODES)
        for target in self.lora_targets:
            _check_choice("lora_targets entry", target, LORA_TARGETS)
        positive = ("identity_dim", "semantic_dim", "detail_patch", "detail_size", "num_queries", "projector_dim",
                    "projector_depth", "projector_heads", "projector_ff_mult", "gate_hidden_dim",
                    "every_k_blocks", "dictionary_size", "pose_embed_dim", "mask_region")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}", f"set {name} to 1 or more")
        for name in ("face_kv_rank", "lora_rank"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {value!r}", f"set {name} to 0 (off) or more")
        if self.projector_dim % self.projector_heads:
            raise ConfigError(f"projector_dim {self.projector_dim} is not divisible by projector_heads "
                              f"{self.projector_heads}", "pick projector_heads that divides projector_dim")
        if self.pose_embed_dim % 2:
            raise ConfigError(f"pose_embed_dim must be even, got {self.pose_embed_dim}", "use e.g. 256")
        if not self.semantic_layers or not all(isinstance(i, int) for i in self.semantic_layers):
            raise ConfigError(f"semantic_layers must be a non-empty list of layer indices, "
                              f"got {self.semantic_layers!r}",
                              "use e.g. [-2] (penultimate hidden state)")
        if not (0.0 <= self.mask_ratio < 1.0):
            raise ConfigError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}",
                              "use e.g. 0.25; 0 disables masking")
        if not (self.temperature > 0):
            raise ConfigError(f"temperature must be > 0, got {self.temperature}", "use 0.07 (CLIP's initial value)")
        if self.lora_alpha is not None and not self.lora_alpha > 0:
            raise ConfigError(f"lora_alpha must be > 0, got {self.lora_alpha}", "leave it unset to use lora_rank")
        if self.lora_rank and not self.lora_targets:
            raise ConfigError("lora_rank > 0 but lora_targets is empty", f"pick targets from {', '.join(LORA_TARGETS)}")
        if not self.experts:
            raise ConfigError("every face expert is disabled", "enable at least one of identity/semantic/detail_expert")
        if self.aligner and not self.identity_expert:
            raise ConfigError("the pose-shared aligner works on identity tokens but identity_expert is off",
                              "enable identity_expert or disable aligner")
        if self.gate_granularity == "token" and not self.gate:
            raise ConfigError("gate_granularity='token' needs the gate", "set gate=true or gate_granularity='sample'")

    @property
    def experts(self) -> tuple[str, ...]:
        """Enabled experts, in the fixed order identity, semantic, detail."""
        on = (self.identity_expert, self.semantic_expert, self.detail_expert)
        return tuple(name for name, enabled in zip(EXPERTS, on) if enabled)

    @property
    def gated(self) -> bool:
        """The gate only exists when there is more than one expert to weigh."""
        return self.gate and len(self.experts) > 1

    def face_blocks(self, num_layers: int) -> list[int]:
        """Indices of the DiT blocks whose ``attn2`` gets face cross-attention."""
        return list(range(0, num_layers, self.every_k_blocks))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdapterConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"adapter config must be a JSON object, got {type(data).__name__}",
                              "write the config as {\"key\": value, ...}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown adapter config keys: {', '.join(unknown)}",
                              f"valid keys: {', '.join(sorted(known))}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"invalid adapter config: {exc}", "check the value types") from exc

    def replace(self, **changes: Any) -> AdapterConfig:
        return AdapterConfig.from_dict({**self.to_dict(), **changes})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AdapterConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"adapter config is not valid JSON ({exc})", "fix the JSON syntax") from exc
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AdapterConfig:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: adapter config file not found", "pass the path of an adapter config JSON")
        return cls.from_json(p.read_text())


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {name} {value!r}", f"use one of: {', '.join(allowed)}")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["every_k_blocks=1", "references=none"]`` -> dict; values are JSON when they parse, else strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not KEY=VALUE", "write e.g. --set every_k_blocks=1")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out
