"""``AdapterConfig``: every identity-conditioning mechanism as one switch, with a JSON round trip.

``adapter_preset`` picks the papers' combinations (``ADAPTER_PRESETS``: ``mofe``, ``cofe``,
``faithfulfaces``, ``mv2id``; default ``cofe``); every switch given explicitly overrides the preset.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from lfa.configfile import read_config_file, unknown_key_error
from lfa.errors import ConfigError

EXPERTS = ("identity", "semantic", "detail")
ALIGNER_INPUTS = ("identity", "image")
GATE_GRANULARITIES = ("sample", "token")
IDENTITY_PROJECTORS = ("mlp", "perceiver")
REFERENCE_MODES = ("none", "vanilla", "standin", "mv2id")
LORA_TARGETS = ("attn1", "attn2", "ffn")
DEFAULT_PRESET = "cofe"

_NO_FACE_PATH = dict(identity_expert=False, semantic_expert=False, detail_expert=False, gate=False, aligner=False)

ADAPTER_PRESETS: dict[str, dict[str, Any]] = {
    # MoFE: three experts fused by one gate, face cross-attention every other block.
    "mofe": dict(identity_expert=True, semantic_expert=True, detail_expert=True, gate=True, gate_per_block=False,
                 every_k_blocks=2, aligner=False, references="none", lora_rank=0),
    # CoFE: a gate in every block, fed that block's own pooled hidden state with the expert tokens.
    "cofe": dict(identity_expert=True, semantic_expert=True, detail_expert=True, gate=True, gate_per_block=True,
                 every_k_blocks=1, gate_hidden_dim=64, aligner=False, references="none", lora_rank=0),
    # FaithfulFaces: aligner over face-image tokens (InfoNCE only), LoRA + injection trained by flow matching.
    "faithfulfaces": dict(identity_expert=True, semantic_expert=True, detail_expert=False, gate=False,
                          every_k_blocks=1, aligner=True, aligner_input="image", aligner_stop_gradient=True,
                          references="none", lora_rank=128, lora_targets=("attn1", "attn2")),
    # Mv²ID: reference views in the sequence, region masking, reference-decoupled RoPE; LoRA learns to read them.
    "mv2id": dict(_NO_FACE_PATH, references="mv2id", mask_ratio=0.25, lora_rank=128,
                  lora_targets=("attn1", "attn2")),
}


@dataclass(frozen=True, init=False)
class AdapterConfig:
    """What the identity adapter builds on a Wan transformer.

    ``AdapterConfig(adapter_preset="mofe", every_k_blocks=1)``: the field defaults below, then the
    preset's values, then the switches given. Token widths of the projected experts, the gate and
    the face key/values are the backbone's ``inner_dim``; the sizes below are the adapter's own.
    """

    adapter_preset: str = DEFAULT_PRESET

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

    # Expert projectors: perceiver resamplers; the identity vector through an MLP (lfa.model.resampler).
    identity_projector: str = "mlp"  # mlp (IP-Adapter-FaceID) | perceiver
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
    balance_loss: bool = False  # load-balance loss on expert usage accumulated over many samples

    # Face cross-attention on attn2.
    every_k_blocks: int = 2  # 1 = every block
    face_kv_rank: int = 128  # rank of the zero-initialised face key/value projections; 0 = full
    scale: float = 1.0

    # Pose-shared identity aligner (FaithfulFaces).
    aligner: bool = True
    dictionary_size: int = 4096
    pose_embed_dim: int = 256  # sinusoidal channels per Euler angle
    temperature: float = 0.07  # initial InfoNCE temperature (learnable)
    aligner_input: str = "identity"  # identity: resampled identity tokens; image: face-image (semantic) tokens
    aligner_stop_gradient: bool = False  # the generator's loss does not reach the aligner (InfoNCE trains it)
    min_pose_difference: float = 15.0  # degrees (largest of |dyaw|, |dpitch|, |droll|) between InfoNCE positives

    # Per-sample conditioning dropout in training (classifier-free guidance on identity).
    face_dropout: float = 0.1
    reference_dropout: float = 0.1

    # Multi-view references (Mv²ID) and simpler layouts.
    references: str = "mv2id"
    mask_ratio: float = 0.25  # fraction of reference regions masked in training
    mask_region: int = 2  # side of one masked region, in transformer patches

    # Backbone LoRA (peft).
    lora_rank: int = 0  # 0 = no LoRA; FaithfulFaces trains rank 128
    lora_alpha: float | None = None  # None = lora_rank
    lora_targets: tuple[str, ...] = ("attn1", "attn2")

    def __init__(self, adapter_preset: str = DEFAULT_PRESET, **switches: Any) -> None:
        _check_choice("adapter_preset", adapter_preset, tuple(ADAPTER_PRESETS))
        known = {f.name: f for f in fields(self)}
        unknown = sorted(set(switches) - set(known))
        if unknown:
            raise unknown_key_error(unknown[0], {"valid keys": known}, what="adapter config key")
        values = {name: f.default for name, f in known.items()}
        values.update(ADAPTER_PRESETS[adapter_preset], **switches, adapter_preset=adapter_preset)
        for name, value in values.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_explicit", frozenset(switches))
        self._validate()

    def _validate(self) -> None:
        for name in ("semantic_layers", "lora_targets"):
            value = getattr(self, name)
            if isinstance(value, (list, str)):
                object.__setattr__(self, name, tuple([value] if isinstance(value, str) else value))
        _check_choice("gate_granularity", self.gate_granularity, GATE_GRANULARITIES)
        _check_choice("identity_projector", self.identity_projector, IDENTITY_PROJECTORS)
        _check_choice("references", self.references, REFERENCE_MODES)
        _check_choice("aligner_input", self.aligner_input, ALIGNER_INPUTS)
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
        for name in ("face_dropout", "reference_dropout"):
            if not (0.0 <= getattr(self, name) < 1.0):
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}",
                                  "use e.g. 0.1; 0 disables it")
        if not self.min_pose_difference >= 0:
            raise ConfigError(f"min_pose_difference must be >= 0 degrees, got {self.min_pose_difference}",
                              "use e.g. 15")
        if not (0.0 <= self.mask_ratio < 1.0):
            raise ConfigError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}",
                              "use e.g. 0.25; 0 disables masking")
        if not (self.temperature > 0):
            raise ConfigError(f"temperature must be > 0, got {self.temperature}", "use 0.07 (CLIP's initial value)")
        if self.lora_alpha is not None and not self.lora_alpha > 0:
            raise ConfigError(f"lora_alpha must be > 0, got {self.lora_alpha}", "leave it unset to use lora_rank")
        if self.lora_rank and not self.lora_targets:
            raise ConfigError("lora_rank > 0 but lora_targets is empty", f"pick targets from {', '.join(LORA_TARGETS)}")
        if not self.experts and self.references == "none":
            raise ConfigError("every face expert is disabled and references='none': nothing conditions the video",
                              "enable at least one of identity/semantic/detail_expert, or set references")
        if self.aligner and self.aligner_input == "identity" and not self.identity_expert:
            raise ConfigError("the pose-shared aligner works on identity tokens but identity_expert is off",
                              "enable identity_expert, set aligner_input='image', or disable aligner")
        if self.aligner and self.aligner_input == "image" and not self.semantic_expert:
            raise ConfigError("aligner_input='image' reads the semantic encoder's face-image tokens but "
                              "semantic_expert is off", "enable semantic_expert or set aligner_input='identity'")
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

    @property
    def has_face_path(self) -> bool:
        """Face tokens exist (some expert is on); without them only references condition the video."""
        return bool(self.experts)

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
        every = {f.name for f in fields(cls)} - {"identity_projector"}
        if "identity_projector" not in data and every <= set(data):  # a whole config saved before the MLP
            data = {**data, "identity_projector": "perceiver"}
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"invalid adapter config: {exc}", "check the value types") from exc

    def replace(self, **changes: Any) -> AdapterConfig:
        """A copy with ``changes``; a new ``adapter_preset`` keeps only the switches set explicitly so far."""
        if "adapter_preset" in changes and changes["adapter_preset"] != self.adapter_preset:
            kept = {k: v for k, v in self.to_dict().items() if k in self._explicit}
            return AdapterConfig.from_dict({**kept, **changes})
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
        return cls.from_dict(read_config_file(path))


_BACKBONE_KEYS = ("num_layers", "num_attention_heads", "attention_head_dim", "in_channels", "out_channels")


def backbone_dims(config: Any) -> dict[str, int]:
    """The Wan transformer config values the adapter's shapes depend on (plus ``inner_dim``)."""
    try:
        dims = {k: int(config[k]) for k in _BACKBONE_KEYS}
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"not a WanTransformer3DModel config (missing {exc})",
                          "pass a diffusers Wan transformer config") from exc
    dims["inner_dim"] = dims["num_attention_heads"] * dims["attention_head_dim"]
    return dims


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
