"""Per-GPU memory of a training run, before it starts: ``lfa model plan`` and the trainer's ``memory_check``.

Everything is counted on the meta device, so a 14B backbone costs no memory:

- weights, gradients and AdamW states from the real training module's parameters (the frozen base in
  ``config.base_torch_dtype`` with ``_keep_in_fp32_modules`` fp32; adapter and LoRA fp32), sharded exactly
  as :mod:`lfa.model.sharding` shards them under FSDP2 (``sharded_parameters``, ``shard_rows``: rank 0's
  share, the largest);
- activations: what autograd saves for one micro batch (:func:`lfa.model.memory.saved_activation_bytes`,
  flash-attention accounting) for a 1-block and a (1 + every_k_blocks)-block model, extrapolated to all
  blocks; with gradient checkpointing, each block's input plus one block recomputed;
- the cache phase (text encoder, VAE, CLIP image encoder, face encoders) runs before training and is
  reported on its own: the optimisation steps run on cached tensors.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lfa.errors import ConfigError
from lfa.train.config import TrainConfig, check_batch_split

GIB = 1024**3
IDENTITY_TOKENS = 1  # an ArcFace/IR embedding is one 512-d token
SEMANTIC_TOKENS = 257  # CLIP ViT-L/14 at 224 px: 16 x 16 patches + the class token
CLIP_IMAGE_TOKENS = 257  # Wan I2V: open-clip ViT-H/14 at 224 px, penultimate layer


@dataclass(frozen=True)
class Strategy:
    """Bytes on the busiest GPU (rank 0) under one parallel strategy; ``cpu``: what offload keeps in CPU memory."""

    parallel: str
    gpus: int
    gradient_checkpointing: bool
    cpu_offload: bool
    weights: int
    gradients: int
    optimizer: int
    activations: int
    gathered: int  # FSDP: unsharded parameters of the unit computing + the one prefetched, and its gradients
    cpu: int
    optimizer_by_rank: tuple[int, ...] = ()  # FSDP: each rank's optimiser states (rank 0's is ``optimizer``)

    @property
    def per_gpu(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations + self.gathered

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(per_gpu=self.per_gpu, per_gpu_gib=round(self.per_gpu / GIB, 3), cpu_gib=round(self.cpu / GIB, 3),
                    breakdown_gib={k: round(data[k] / GIB, 3)
                                   for k in ("weights", "gradients", "optimizer", "activations", "gathered")})
        return data


@dataclass(frozen=True)
class MemoryPlan:
    """Both strategies for one config (``ddp``, ``fsdp``) and the one ``config.parallel`` picks (``chosen``).

    ``variants`` holds every (parallel, gradient_checkpointing, cpu_offload) combination, so
    :func:`check_fits` can name the change that makes a run fit."""

    name: str
    gpus: int
    micro_batch: int
    latent: tuple[int, int, int]  # (frames, height, width) of the VAE latents
    tokens: int  # transformer tokens per sample (video + reference frames)
    compute_dtype: str
    parallel: str
    gradient_checkpointing: bool
    cpu_offload: bool
    parameters: dict[str, int]  # frozen / trainable parameter counts
    encoders: dict[str, int]  # cache-phase models: name -> parameters
    cache_phase: int  # bytes of the cache phase's frozen encoders (fp32, as the cache loads them)
    variants: dict[tuple[str, bool, bool], Strategy] = field(repr=False)

    def strategy(self, parallel: str, *, gradient_checkpointing: bool | None = None,
                 cpu_offload: bool | None = None) -> Strategy:
        ckpt = self.gradient_checkpointing if gradient_checkpointing is None else gradient_checkpointing
        offload = (self.cpu_offload if cpu_offload is None else cpu_offload) and parallel == "fsdp"
        return self.variants[(parallel, ckpt, offload)]

    @property
    def ddp(self) -> Strategy:
        return self.strategy("ddp")

    @property
    def fsdp(self) -> Strategy:
        return self.strategy("fsdp")

    @property
    def chosen(self) -> Strategy:
        return self.strategy(self.parallel)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "gpus": self.gpus, "micro_batch": self.micro_batch, "latent": list(self.latent),
                "tokens": self.tokens, "compute_dtype": self.compute_dtype, "parallel": self.parallel,
                "gradient_checkpointing": self.gradient_checkpointing, "fsdp_cpu_offload": self.cpu_offload,
                "parameters": self.parameters, "ddp": self.ddp.to_dict(), "fsdp": self.fsdp.to_dict(),
                "per_gpu_gib": round(self.chosen.per_gpu / GIB, 3),
                "cache_phase": {"per_gpu_gib": round(self.cache_phase / GIB, 3), "encoders": self.encoders,
                                "note": "runs before training, on cached tensors' inputs; not resident in training"}}


# ---------------------------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class _Param:
    shape: tuple[int, ...]
    itemsize: int
    trainable: bool
    sharded: bool
    unit: int  # index of the sharding unit that owns it; -1 = replicated

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def local(self, world: int, rank: int | None = None) -> int:
        """Elements a rank stores under FSDP over ``world`` ranks (padded; with ``rank``: that rank's own rows;
        all of them when replicated)."""
        from lfa.model.sharding import shard_rows

        return shard_rows(self.shape, world, rank) if self.sharded else self.numel


def training_module(backbone_config: dict[str, Any], config: TrainConfig, *, device: Any = "meta",
                    dtype: Any = None, adapter_dtype: Any = None, num_layers: int | None = None):
    """The trainer's ``IdentityTrainingModule`` (base in ``dtype``, default ``config.base_torch_dtype``;
    adapter and LoRA in ``adapter_dtype``, default fp32) on ``device``."""
    import torch

    from lfa.model.adapter import IdentityAdapter
    from lfa.model.presets import build_transformer
    from lfa.model.training import IdentityTrainingModule

    if num_layers is not None:
        backbone_config = dict(backbone_config, num_layers=num_layers)
    transformer = build_transformer(backbone_config, device, dtype or config.base_torch_dtype)
    adapter = IdentityAdapter.attach(transformer, config.adapter_config(), dtype=adapter_dtype or torch.float32)
    return IdentityTrainingModule(adapter, config.flow_config(), alignment_weight=config.alignment_weight,
                                  balance_weight=config.balance_weight)


def _parameters(module: Any) -> list[_Param]:
    from lfa.model.sharding import sharded_parameters, sharding_units

    owner: dict[int, int] = {}
    for i, unit in enumerate(sharding_units(module)):  # innermost first: a parameter belongs to its first unit
        for p in unit.parameters():
            owner.setdefault(id(p), i)
    sharded = {id(p) for _, p in sharded_parameters(module)}
    seen: set[int] = set()
    out = []
    for p in module.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        out.append(_Param(tuple(p.shape), p.element_size(), p.requires_grad, id(p) in sharded, owner.get(id(p), -1)))
    return out


# ---------------------------------------------------------------------------------------------- activations
@dataclass(frozen=True)
class _Shapes:
    micro: int
    latent: tuple[int, int, int]
    references: int  # reference frames per sample (Mv²ID)
    face_tokens: dict[str, int]


def _shapes(backbone_config: dict[str, Any], config: TrainConfig, micro: int, vae_spatial: int = 8) -> _Shapes:
    """``vae_spatial``: pixels per latent cell (16 for Wan2.2's VAE)."""
    adapter = config.adapter_config()
    s = vae_spatial
    latent = ((config.num_frames - 1) // 4 + 1, config.height // s, config.width // s)
    detail = max(1, adapter.detail_size // s // adapter.detail_patch) ** 2
    tokens = {"identity": IDENTITY_TOKENS, "semantic": SEMANTIC_TOKENS, "detail": detail}
    refs = config.reference_views if adapter.references != "none" else 0
    return _Shapes(micro, latent, refs, {name: tokens[name] for name in adapter.experts})


def meta_batch(backbone_config: dict[str, Any], config: TrainConfig, shapes: _Shapes, device: Any = "meta",
               dtype: Any = None) -> Any:
    """One micro batch as the trainer builds it from the cache (fp32 tensors), on ``device``."""
    import torch

    from lfa.model.encoders import FaceFeatures
    from lfa.model.training import TrainingBatch

    adapter = config.adapter_config()
    dims = _dims(backbone_config, adapter)
    kw = dict(device=device, dtype=dtype or torch.float32)
    b, (f, h, w) = shapes.micro, shapes.latent
    z, c = backbone_config.get("out_channels", 16), backbone_config.get("in_channels", 16)

    def faces(n: int) -> FaceFeatures:
        tokens = {name: torch.randn(n, shapes.face_tokens[name], dims[name], **kw) for name in adapter.experts}
        return FaceFeatures(tokens, torch.randn(n, 3, **kw))

    batch = TrainingBatch(torch.randn(b, z, f, h, w, **kw),
                          torch.randn(b, config.max_sequence_length, backbone_config.get("text_dim", 4096), **kw),
                          noise=torch.randn(b, z, f, h, w, **kw), sigmas=torch.rand(b, **kw),
                          face_keep=torch.ones(b, dtype=torch.bool, device=device),
                          reference_keep=torch.ones(b, dtype=torch.bool, device=device))
    if adapter.experts:
        batch.faces = faces(b)
    if shapes.references:
        batch.references = torch.randn(b, z, shapes.references, h, w, **kw)
    if c != z:
        batch.condition = torch.randn(b, c - z, f, h, w, **kw)
    if backbone_config.get("image_dim"):
        batch.image_embeds = torch.randn(b, CLIP_IMAGE_TOKENS, backbone_config["image_dim"], **kw)
    if adapter.aligner:
        batch.alignment = (faces(config.aligner_batch_size), faces(config.aligner_batch_size))
    return batch


def _dims(backbone_config: dict[str, Any], adapter: Any) -> dict[str, int]:
    return {"identity": adapter.identity_dim, "semantic": adapter.semantic_dim,
            "detail": backbone_config.get("out_channels", 16) * adapter.detail_patch**2}


def training_step_forward(module: Any, batch: Any) -> Any:
    """What one micro step's forward runs: the flow forward and, with the aligner, its InfoNCE (called
    on the aligner directly, so meta tensors skip the pose-gap check)."""
    from lfa.model.losses import aligner_representation

    alignment, batch.alignment = batch.alignment, None
    try:
        out = module(batch)
    finally:
        batch.alignment = alignment
    loss = out.loss
    adapter = module.adapter
    if alignment is not None and adapter.aligner is not None:
        reps = [aligner_representation(adapter, adapter.features(v)) for v in alignment]
        loss = loss + module.alignment_weight * adapter.aligner.info_nce(*reps)
    return loss


_SAVED: dict[str, int] = {}  # meta counts already made (the CLI and tests plan the same model several times)


def _saved_bytes(backbone_config: dict[str, Any], config: TrainConfig, micro: int, layers: int, dtype: Any,
                 vae_spatial: int = 8) -> int:
    from lfa.model.memory import saved_activation_bytes

    key = json.dumps([backbone_config, config.to_dict(), micro, layers, str(dtype), vae_spatial], sort_keys=True,
                     default=str)
    if key in _SAVED:
        return _SAVED[key]
    module = training_module(backbone_config, config, dtype=dtype, adapter_dtype=dtype, num_layers=layers).train()
    batch = meta_batch(backbone_config, config, _shapes(backbone_config, config, micro, vae_spatial))
    _SAVED[key] = saved_activation_bytes(lambda: training_step_forward(module, batch), [module], flash_attention=True)
    return _SAVED[key]


def activation_bytes(backbone_config: dict[str, Any], config: TrainConfig, micro: int,
                     vae_spatial: int = 8) -> dict[str, int]:
    """Saved activations of one micro batch: ``full`` (no checkpointing) and ``checkpointed``, plus
    ``per_block`` (autograd's count for a (1 + k)-block model minus a 1-block model, over k)."""
    import torch

    dtype = _compute_dtype(config)
    k = config.adapter_config().every_k_blocks
    one, more = (_saved_bytes(backbone_config, config, micro, n, dtype, vae_spatial) for n in (1, 1 + k))
    per_block = max(0, (more - one) // k)
    layers = int(backbone_config["num_layers"])
    outside = one - per_block
    shapes = _shapes(backbone_config, config, micro, vae_spatial)
    f, h, w = shapes.latent
    patch = backbone_config.get("patch_size", (1, 2, 2))
    tokens = (f // patch[0] + shapes.references) * (h // patch[1]) * (w // patch[2])
    inner = int(backbone_config["num_attention_heads"]) * int(backbone_config["attention_head_dim"])
    block_input = micro * tokens * inner * torch.empty((), dtype=dtype).element_size()
    return {"full": outside + layers * per_block, "checkpointed": outside + layers * block_input + per_block,
            "per_block": per_block, "tokens": tokens}


def _compute_dtype(config: TrainConfig) -> Any:
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.mixed_precision, config.base_torch_dtype)


# ---------------------------------------------------------------------------------------------- cache phase
def cache_encoders(backbone_config: dict[str, Any], config: TrainConfig, base: Any = None) -> dict[str, int]:
    """Parameters of what the cache phase runs, counted on meta: from ``base``'s own configs (a diffusers
    folder; its face encoders are not counted), else from the published configs of the real models."""
    if base is not None:
        return _base_encoders(base)
    counts = {"text encoder (UMT5-XXL encoder)": _umt5_xxl(), "Wan2.1 VAE": _wan_vae()}
    if backbone_config.get("image_dim"):
        counts["image encoder (CLIP ViT-H/14)"] = _clip_vision(1280, 32, 16, 5120)
    experts = config.adapter_config().experts
    if "identity" in experts:
        # insightface arcface_torch iresnet100 (the IR-100 backbone of ArcFace/antelopev2): about 65.2 M.
        counts["face: identity (ArcFace IR-100)"] = 65_200_000
    if "semantic" in experts:
        counts["face: semantic (CLIP ViT-L/14)"] = _clip_vision(1024, 24, 16, 4096)
    return counts  # the detail expert runs the Wan VAE above


def _base_encoders(base: Any) -> dict[str, int]:
    from pathlib import Path

    import torch
    from diffusers import AutoencoderKLWan
    from transformers import AutoConfig, CLIPVisionModel, UMT5EncoderModel

    folder, counts = Path(base), {}
    with torch.device("meta"):
        if (folder / "text_encoder" / "config.json").is_file():
            model = UMT5EncoderModel(AutoConfig.from_pretrained(folder / "text_encoder"))
            counts["text encoder"] = sum(p.numel() for p in model.parameters())
        if (folder / "vae" / "config.json").is_file():
            vae = AutoencoderKLWan.from_config(AutoencoderKLWan.load_config(folder / "vae"))
            counts["VAE"] = sum(p.numel() for p in vae.parameters())
        if (folder / "image_encoder" / "config.json").is_file():
            clip = CLIPVisionModel(AutoConfig.from_pretrained(folder / "image_encoder"))
            counts["image encoder"] = sum(p.numel() for p in clip.parameters())
    return counts


@functools.lru_cache(maxsize=1)
def _umt5_xxl() -> int:
    # Wan2.1 diffusers text_encoder/config.json (google/umt5-xxl encoder): d_model 4096, d_ff 10240, d_kv 64,
    # 64 heads, 24 layers, vocabulary 256384, gated-gelu; ~5.68 B parameters.
    import torch
    from transformers import UMT5Config, UMT5EncoderModel

    cfg = UMT5Config(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                     relative_attention_num_buckets=32, feed_forward_proj="gated-gelu")
    with torch.device("meta"):
        return sum(p.numel() for p in UMT5EncoderModel(cfg).parameters())


@functools.lru_cache(maxsize=1)
def _wan_vae() -> int:
    # diffusers AutoencoderKLWan's defaults are the Wan2.1 VAE (base_dim 96, z_dim 16): ~127 M parameters.
    import torch
    from diffusers import AutoencoderKLWan

    with torch.device("meta"):
        return sum(p.numel() for p in AutoencoderKLWan().parameters())


@functools.lru_cache(maxsize=4)
def _clip_vision(hidden: int, layers: int, heads: int, mlp: int) -> int:
    # CLIP vision towers at 224 px, patch 14 (ViT-H/14: Wan I2V's image_encoder, ~632 M; ViT-L/14: ~303 M).
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel

    cfg = CLIPVisionConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                           intermediate_size=mlp, patch_size=14, image_size=224)
    with torch.device("meta"):
        return sum(p.numel() for p in CLIPVisionModel(cfg).parameters())


# ---------------------------------------------------------------------------------------------- the plan
def _strategy(params: list[_Param], activations: int, parallel: str, gpus: int, ckpt: bool, offload: bool,
              ema: bool) -> Strategy:
    world = gpus if parallel == "fsdp" else 1
    weights = grads = optim = cpu = 0
    for p in params:
        local = p.local(world) if parallel == "fsdp" else p.numel
        w = local * p.itemsize
        g = local * p.itemsize if p.trainable else 0
        o = _optimizer_bytes(p, local, ema)
        if offload and p.sharded:
            cpu += w + g + o
        else:
            weights, grads, optim = weights + w, grads + g, optim + o
    if parallel == "ddp" and gpus > 1:
        grads += sum(p.numel * p.itemsize for p in params if p.trainable)  # DDP's reducer buckets
    gathered = 0
    if parallel == "fsdp":
        units: dict[int, list[_Param]] = {}
        for p in params:
            if p.unit >= 0:
                units.setdefault(p.unit, []).append(p)
        full = [sum(p.numel * p.itemsize for p in ps) for ps in units.values()]
        grad = [sum(p.numel * p.itemsize for p in ps if p.trainable) for ps in units.values()]
        gathered = 2 * max(full, default=0) + max(grad, default=0)
    by_rank = tuple(sum(_optimizer_bytes(p, p.local(world, r), ema) for p in params if not (offload and p.sharded))
                    for r in range(world)) if parallel == "fsdp" else ()
    return Strategy(parallel, gpus, ckpt, offload, weights, grads, optim, activations, gathered, cpu, by_rank)


def _optimizer_bytes(p: _Param, local: int, ema: bool) -> int:
    """AdamW's exp_avg + exp_avg_sq in the parameter's dtype and a 0-dim float32 step; EMA: one more copy."""
    return (2 + ema) * local * p.itemsize + 4 if p.trainable else 0


def plan_training(backbone_config: dict[str, Any], config: TrainConfig, gpus: int, *, name: str = "",
                  base: Any = None, vae_spatial: int | None = None) -> MemoryPlan:
    """The memory plan of training ``config`` on ``gpus`` GPUs (one process each), DDP and FSDP;
    ``base``: the diffusers folder whose encoders the cache phase runs (default: the real Wan2.1 ones);
    ``vae_spatial``: pixels per latent cell (default: ``base``'s VAE, else 8). A Wan2.2 A14B run trains one
    expert at a time, so one expert's plan is the run's."""
    if not isinstance(gpus, int) or gpus < 1:
        raise ConfigError(f"gpus must be a positive integer, got {gpus!r}", "use e.g. --gpus 8")
    check_batch_split(config, gpus)
    micro = config.batch_size // gpus // config.gradient_accumulation
    if vae_spatial is None:
        vae_config = None if base is None else Path(base) / "vae" / "config.json"
        vae_spatial = 8
        if vae_config is not None and vae_config.is_file():
            vae_spatial = int(json.loads(vae_config.read_text()).get("scale_factor_spatial") or 8)
    params = _parameters(training_module(backbone_config, config))
    acts = activation_bytes(backbone_config, config, micro, vae_spatial)
    ema = config.ema_decay > 0
    variants = {(par, ckpt, off): _strategy(params, acts["checkpointed" if ckpt else "full"], par, gpus, ckpt, off,
                                            ema)
                for par in ("ddp", "fsdp") for ckpt in (False, True) for off in (False, True)
                if not (off and par == "ddp")}
    encoders = cache_encoders(backbone_config, config, base)
    shapes = _shapes(backbone_config, config, micro, vae_spatial)
    return MemoryPlan(name=name, gpus=gpus, micro_batch=micro, latent=shapes.latent, tokens=acts["tokens"],
                      compute_dtype=str(_compute_dtype(config)).removeprefix("torch."), parallel=config.parallel,
                      gradient_checkpointing=config.gradient_checkpointing, cpu_offload=config.fsdp_cpu_offload,
                      parameters={"frozen": sum(p.numel for p in params if not p.trainable),
                                  "trainable": sum(p.numel for p in params if p.trainable)},
                      encoders=encoders, cache_phase=4 * sum(encoders.values()), variants=variants)


_FIXES = (  # (what to change, its --set items), cheapest in speed first
    (dict(parallel="fsdp"), "--set parallel=fsdp"),
    (dict(gradient_checkpointing=True), "--set gradient_checkpointing=true"),
    (dict(parallel="fsdp", gradient_checkpointing=True), "--set parallel=fsdp --set gradient_checkpointing=true"),
    (dict(parallel="fsdp", cpu_offload=True), "--set parallel=fsdp --set fsdp_cpu_offload=true"),
    (dict(parallel="fsdp", gradient_checkpointing=True, cpu_offload=True),
     "--set parallel=fsdp --set gradient_checkpointing=true --set fsdp_cpu_offload=true"),
)


def check_fits(plan: MemoryPlan, parallel: str, gpu_bytes: int) -> None:
    """Raise a one-line :class:`ConfigError` naming the setting to change when the run needs more than
    ``gpu_bytes`` on a GPU under ``parallel``."""
    need = plan.strategy(parallel)
    if need.per_gpu <= gpu_bytes:
        return
    current = dict(parallel=parallel, gradient_checkpointing=plan.gradient_checkpointing,
                   cpu_offload=plan.cpu_offload and parallel == "fsdp")
    fix = None
    for change, flags in _FIXES:
        wanted = {**current, **change}
        if wanted != current and plan.strategy(**wanted).per_gpu <= gpu_bytes:
            fix = f"{flags} ({plan.strategy(**wanted).per_gpu / GIB:.1f} GiB per GPU)"
            break
    if fix is None:
        fix = ("use more GPUs (FSDP shards over them), fewer frames or a smaller size "
               "(--set num_frames=... / height=... / width=...)")
        if plan.micro_batch > 1:
            fix = f"raise gradient_accumulation (micro batch {plan.micro_batch}), or {fix}"
    raise ConfigError(f"the run needs {need.per_gpu / GIB:.1f} GiB per GPU under {parallel} and the GPU has "
                      f"{gpu_bytes / GIB:.1f} GiB (lfa model plan shows where it goes)",
                      f"{fix}; or --set memory_check=false to start anyway")


def format_plan(plan: MemoryPlan) -> list[str]:
    """The plan as lines of at most 80 columns (``lfa model plan``, and the trainer's log)."""
    def gib(n: int) -> str:
        return f"{n / GIB:9.2f}"

    ddp, fsdp = plan.ddp, plan.fsdp
    f, h, w = plan.latent
    flags = [f"checkpointing {'on' if plan.gradient_checkpointing else 'off'}"]
    if plan.cpu_offload:
        flags.append("fsdp cpu offload")
    total = plan.parameters["trainable"] + plan.parameters["frozen"]
    lines = [f"memory plan{' of ' + plan.name if plan.name else ''}: {plan.gpus} GPU(s), micro batch "
             f"{plan.micro_batch}",
             f"  latent {f}x{h}x{w} ({plan.tokens:,} tokens), {plan.compute_dtype}, {', '.join(flags)}",
             f"  {plan.parameters['trainable'] / 1e6:,.1f} M trainable of {total / 1e6:,.0f} M parameters",
             f"  {'GiB per GPU':<30}{'DDP':>9}{'FSDP':>9}"]
    for label, attr in (("weights", "weights"), ("gradients", "gradients"), ("optimiser states", "optimizer"),
                        ("activations", "activations"), ("FSDP all-gathers (transient)", "gathered")):
        lines.append(f"  {label:<30}{gib(getattr(ddp, attr))}{gib(getattr(fsdp, attr))}")
    lines.append(f"  {'total per GPU':<30}{gib(ddp.per_gpu)}{gib(fsdp.per_gpu)}")
    if fsdp.cpu:
        lines.append(f"  {'in CPU memory (offload)':<30}{'':>9}{gib(fsdp.cpu)}")
    lines.append(f"  this run: {plan.parallel}, {plan.chosen.per_gpu / GIB:.2f} GiB per GPU")
    lines.append(f"  cache phase (before training, frozen encoders in fp32): {plan.cache_phase / GIB:.2f} GiB")
    for label, n in plan.encoders.items():
        lines.append(f"    {label:<40}{n / 1e6:>10,.0f} M params")
    return lines
