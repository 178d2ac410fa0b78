"""``TrainConfig``: every training setting, from defaults < the base's defaults < ``--config`` YAML/JSON < ``--set``.

Adapter switches (:class:`lfa.model.AdapterConfig`) are set the same way, flat (``--set lora_rank=4``)
or under ``adapter.`` (``--set adapter.lora_rank=4``); a key that is neither is a one-line error that
names the closest valid key and lists them all.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from lfa.configfile import read_config_file, unknown_key_error
from lfa.errors import ConfigError
from lfa.model.config import AdapterConfig, parse_overrides

SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine")
PRECISIONS = ("no", "bf16", "fp16")
PARALLEL = ("ddp", "fsdp")
WAN_EXPERTS = ("high", "low", "both")
BASE_DTYPES = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    # what and how long
    max_steps: int = 1000
    batch_size: int = 1  # global batch (all processes, one optimizer step, accumulation included)
    gradient_accumulation: int = 1
    learning_rate: float = 1e-4  # adapter modules
    lora_learning_rate: float | None = None  # None = learning_rate
    weight_decay: float = 0.01
    lr_scheduler: str = "constant"
    warmup_steps: int = 0
    max_grad_norm: float = 1.0  # 0 = no clipping
    ema_decay: float = 0.0  # 0 = no EMA of the trainable weights
    seed: int = 0
    # data
    height: int = 480
    width: int = 832
    num_frames: int = 81  # 4n + 1
    fps: float = 16.0
    buckets: tuple[tuple[int, int], ...] = ()  # (height, width) choices; empty = only (height, width)
    window_stride: int = 0  # frames between window starts; 0 = num_frames (no overlap)
    max_sequence_length: int = 512
    face_size: int = 112  # aligned face crop side stored in the cache
    reference_views: int = 2  # cross-pose reference frames per sample (Mv²ID uses them all)
    yaw_bucket: float = 30.0  # degrees per yaw bucket for cross-pose references
    # validation (lfa.train.validation): held-out windows, fixed draws, identity metrics
    val_split: str = "clip"  # clip: held-out clips of known people; identity: held-out people
    val_fraction: float = 0.1  # of each identity cluster's clips (clip) or of the clusters (identity)
    val_samples: int = 8  # validation windows
    val_noise_draws: int = 2  # fixed noise/timestep draws per window
    face_shuffle: bool = False  # control: train with faces shuffled across identities
    # loss
    timestep_sampling: str = "logit_normal"
    shift: float = 3.0
    alignment_weight: float = 1.0
    aligner_batch_size: int = 256  # face pairs per step for the aligner's InfoNCE (FaithfulFaces: 1024)
    balance_weight: float = 0.01
    face_loss_weight: float = 1.0  # flow-loss weight inside the main track's face boxes (1 = uniform)
    # schedule of side outputs
    checkpoint_every: int = 100
    val_every: int = 50
    keep_checkpoints: int = 0  # 0 = keep all
    tensorboard: bool = True  # scalars under OUT/tensorboard/
    sample_every: int = 0  # a sample video OUT/samples/step-<N>.mp4 every N steps; 0 = none
    sample_steps: int = 20  # denoising steps of those samples
    sample_guidance_scale: float = 5.0
    # compute
    # Wan2.2 bases
    wan_expert: str = "both"  # A14B: high | low (one expert on its side of the boundary) | both (two phases)
    first_frame_ratio: float = 0.5  # TI2V: share of windows whose clean first frame conditions (image-to-video)
    mixed_precision: str = "no"
    base_dtype: str = "auto"  # the frozen base's weights; auto = mixed_precision's dtype (fp32 without it)
    gradient_checkpointing: bool = False
    parallel: str = "ddp"  # over --launch N processes: ddp (replicas) | fsdp (FSDP2: shards of everything)
    fsdp_cpu_offload: bool = False  # fsdp: shards, gradients and optimiser states in CPU memory
    memory_check: bool = True  # on GPUs: refuse a run whose memory plan exceeds the GPU (lfa model plan)
    # identity adapter
    adapter_preset: str = "cofe"
    adapter: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "buckets", tuple(tuple(int(v) for v in b) for b in self.buckets))
        for name in ("max_steps", "batch_size", "gradient_accumulation", "height", "width", "num_frames",
                     "checkpoint_every", "val_every", "face_size", "max_sequence_length", "val_samples",
                     "val_noise_draws", "aligner_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}", f"set {name} to 1 or more")
        if (self.num_frames - 1) % 4:
            raise ConfigError(f"num_frames must be 4n+1 (Wan's VAE), got {self.num_frames}",
                              f"use {4 * ((self.num_frames - 1) // 4) + 1} or {4 * ((self.num_frames - 1) // 4 + 1) + 1}")
        for h, w in ((self.height, self.width), *self.buckets):
            if h % 16 or w % 16:
                raise ConfigError(f"height and width must be multiples of 16, got {h}x{w}",
                                  "pick a bucket like 480x832 (VAE 8 x patch 2)")
        if self.val_split not in ("clip", "identity"):
            raise ConfigError(f"unknown val_split {self.val_split!r}", "use clip (held-out clips) or identity "
                              "(held-out people)")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}", "use e.g. 0.1")
        if self.lr_scheduler not in SCHEDULERS:
            raise ConfigError(f"unknown lr_scheduler {self.lr_scheduler!r}", f"use one of: {', '.join(SCHEDULERS)}")
        if self.mixed_precision not in PRECISIONS:
            raise ConfigError(f"unknown mixed_precision {self.mixed_precision!r}",
                              f"use one of: {', '.join(PRECISIONS)}")
        if self.wan_expert not in WAN_EXPERTS:
            raise ConfigError(f"unknown wan_expert {self.wan_expert!r}", "use high, low or both (Wan2.2 A14B experts; "
                              "the facial experts are identity_expert, semantic_expert, detail_expert)")
        if not 0.0 <= self.first_frame_ratio <= 1.0:
            raise ConfigError(f"first_frame_ratio must be in [0, 1], got {self.first_frame_ratio}", "use e.g. 0.5")
        if self.parallel not in PARALLEL:
            raise ConfigError(f"unknown parallel {self.parallel!r}", "use ddp (replicas) or fsdp (sharded)")
        if self.base_dtype not in BASE_DTYPES:
            raise ConfigError(f"unknown base_dtype {self.base_dtype!r}", f"use one of: {', '.join(BASE_DTYPES)}")
        if self.fsdp_cpu_offload and self.parallel != "fsdp":
            raise ConfigError("fsdp_cpu_offload needs parallel=fsdp", "add --set parallel=fsdp")
        if self.parallel == "fsdp" and self.sample_every:
            raise ConfigError("sample_every does not run under parallel=fsdp (one process would render while the "
                              "others wait on its shards)", "set sample_every=0 and run `lfa generate --adapter "
                              "OUT/checkpoint-N/adapter` on a checkpoint")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}", "use e.g. 0.999, or 0 (off)")
        if not isinstance(self.sample_every, int) or isinstance(self.sample_every, bool) or self.sample_every < 0:
            raise ConfigError(f"sample_every must be an integer >= 0, got {self.sample_every!r}",
                              "use e.g. 500, or 0 (no sample videos)")
        if self.sample_steps < 1:
            raise ConfigError(f"sample_steps must be >= 1, got {self.sample_steps}", "use e.g. 20")
        if not self.face_loss_weight > 0:
            raise ConfigError(f"face_loss_weight must be > 0, got {self.face_loss_weight}",
                              "use 1 (uniform) or e.g. 2 (faces count twice)")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}", "use e.g. 1e-4")
        self.adapter_config()  # validates the adapter switches and the flow-matching settings
        self.flow_config()

    @property
    def base_torch_dtype(self):
        """The dtype the frozen base transformer is loaded in (trainable weights stay fp32)."""
        import torch

        name = self.mixed_precision if self.base_dtype == "auto" else self.base_dtype
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(name, torch.float32)

    @property
    def bucket_list(self) -> tuple[tuple[int, int], ...]:
        return self.buckets or ((self.height, self.width),)

    def adapter_config(self, **widths: Any) -> AdapterConfig:
        return AdapterConfig(adapter_preset=self.adapter_preset, **{**widths, **self.adapter})

    def flow_config(self):
        from lfa.model.flow import FlowMatchingConfig

        return FlowMatchingConfig(sampling=self.timestep_sampling, shift=self.shift)

    def generation_defaults(self) -> dict[str, Any]:
        """What ``lfa generate`` defaults to for an adapter trained with this config (``lfa_training.json``)."""
        data = self.to_dict()
        return {k: data[k] for k in ("num_frames", "height", "width", "fps", "face_size", "max_sequence_length")}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["buckets"] = [list(b) for b in self.buckets]
        return data

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


_KEYS = {f.name for f in fields(TrainConfig)}


def _adapter_keys() -> set[str]:
    return {f.name for f in fields(AdapterConfig)} - {"adapter_preset"}


def apply_changes(config: TrainConfig, changes: dict[str, Any], where: str) -> TrainConfig:
    """``config`` with ``changes`` (train keys, adapter keys flat or as ``adapter.KEY``); unknown keys fail."""
    own: dict[str, Any] = {}
    adapter = dict(config.adapter)
    adapter_keys = _adapter_keys()
    for key, value in changes.items():
        if key == "adapter" and isinstance(value, dict):
            for sub, v in value.items():
                adapter[_adapter_key(sub, adapter_keys, where)] = v
        elif key.startswith("adapter."):
            adapter[_adapter_key(key[len("adapter."):], adapter_keys, where)] = value
        elif key == "validation_samples":
            raise ConfigError(f"validation_samples is gone ({where}): validation now holds clips out of training",
                              "use val_samples (windows), val_noise_draws, val_fraction and val_split "
                              "(clip | identity)")
        elif key in _KEYS:
            own[key] = value
        elif key in adapter_keys:
            adapter[key] = value
        else:
            raise unknown_key_error(key, {"training keys": _KEYS - {"adapter"}, "adapter keys": adapter_keys},
                                    where=where)
    try:
        return replace(config, **own, adapter=adapter)
    except TypeError as exc:
        raise ConfigError(f"invalid config value ({exc}) ({where})", "check the value types") from exc


def _adapter_key(key: str, known: set[str], where: str) -> str:
    if key not in known:
        raise unknown_key_error(key, {"adapter keys": known}, what="adapter config key", where=where)
    return key


def check_batch_split(config: TrainConfig, processes: int) -> None:
    """``batch_size`` is the global batch: it must split evenly over processes and accumulation steps."""
    parts = processes * config.gradient_accumulation
    if config.batch_size % parts:
        raise ConfigError(f"batch_size {config.batch_size} does not split over {processes} process(es) x "
                          f"{config.gradient_accumulation} accumulation step(s)",
                          f"set batch_size to a multiple of {parts} (e.g. --set batch_size={parts})")


def load_config(base_defaults: dict[str, Any] | None = None, config_file: str | os.PathLike[str] | None = None,
                sets: list[str] | None = None) -> TrainConfig:
    """Defaults, then the base's ``train_defaults``, then the YAML/JSON file, then ``--set KEY=VALUE`` items."""
    config = apply_changes(TrainConfig(), dict(base_defaults or {}), "the base's lfa_base.json")
    if config_file:
        config = apply_changes(config, read_config_file(config_file), str(config_file))
    if sets:
        config = apply_changes(config, parse_overrides(sets), "--set")
    return config
