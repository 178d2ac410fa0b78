"""Per-forward work of the identity adapter: the transformer hooks and the :class:`ForwardConditioning` they build.

``adapter`` below is an :class:`~lfa.model.adapter.IdentityAdapter` (typed ``nn.Module``, so this
module does not import the adapter that imports it).

- The forward pre-hook (no backbone weights touched, so it is safe before an offload hook moves
  them) decides whether this call is conditioned, moves the adapter to the input's device,
  appends the reference frames to ``hidden_states`` and leaves a ``prepare`` callback on the rope.
- ``prepare`` runs inside the forward (in the rope): face tokens are projected, aligned and (with a
  shared gate) fused, the timestep-0 modulation of the references is computed, and everything is
  returned as one :class:`ForwardConditioning` that travels with the block calls.
- The forward hook crops the reference frames off the output and records the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from torch import nn

from lfa.errors import ConfigError
from lfa.model.references import reference_frames, region_mask
from lfa.model.state import ConditioningReport, ConditioningRequest, FaceConditioning, ForwardConditioning

if TYPE_CHECKING:
    from lfa.model.encoders import FaceFeatures

SHARED_GATE = "shared"


@dataclass
class _Active:
    """The forward in flight: what the output hook needs."""

    video_frames: int
    reference_frames: int
    call: ForwardConditioning | None = None


def before_forward(adapter: nn.Module, module: nn.Module, args: tuple,
                   kwargs: dict) -> tuple[tuple, dict] | None:
    adapter.last_report = None
    adapter._active = None
    module.rope.pending = None
    request = adapter._request
    if request is None:
        return None
    bound = adapter._signature.bind(*args, **kwargs)
    hidden, timestep = bound.arguments["hidden_states"], bound.arguments["timestep"]
    text = bound.arguments["encoder_hidden_states"]
    batch = hidden.shape[0]
    branch = _branch(request.text, text)
    if branch is not None and not bool(branch.any()):
        return None  # the unconditional branch of a guided pipeline: a plain forward
    adapter.follow(hidden.device)

    face_keep = _combine(_per_sample(request.face_keep, batch, "face_keep"), branch)
    ref_mask = None
    refs = None
    if request.references is not None:
        k = request.references.shape[2]
        ref_mask = _per_sample(request.reference_mask, batch, "reference_mask", k)
        if branch is not None:
            ref_mask = (ref_mask if ref_mask is not None else torch.ones(batch, k, dtype=torch.bool,
                                                                           device=branch.device)) & branch[:, None]
        if ref_mask is None or bool(ref_mask.any()):
            refs = reference_input(adapter, request.references, hidden)
        else:
            ref_mask = None
    if request.features is None and refs is None:
        return None

    active = _Active(hidden.shape[2], 0 if refs is None else refs.shape[2])
    if refs is not None:
        bound.arguments["hidden_states"] = torch.cat([hidden, refs], dim=2)
        if torch.as_tensor(timestep).ndim == 2:  # caller's per-token timesteps: references at 0
            per_frame = _tokens_per_frame(adapter, hidden)
            zeros = torch.zeros(batch, refs.shape[2] * per_frame, dtype=timestep.dtype, device=timestep.device)
            bound.arguments["timestep"] = torch.cat([timestep, zeros], dim=1)

    def prepare() -> ForwardConditioning:
        active.call = build_conditioning(adapter, request, hidden, timestep, text, face_keep, ref_mask,
                                         active.reference_frames)
        return active.call

    module.rope.pending = prepare
    adapter._active = active
    return bound.args, bound.kwargs


def after_forward(adapter: nn.Module, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
    active, adapter._active = adapter._active, None
    if active is None:
        return None
    call = active.call
    if call is not None:
        call.recording = False
        weights = call.shared_gate_weights if call.shared_gate_weights is not None else (
            dict(call.gate_weights) or None)
        adapter.last_report = ConditioningReport(weights, None, call.identity)
    if not active.reference_frames:
        return None
    frames = active.video_frames
    if isinstance(output, tuple):
        return (output[0][:, :, :frames], *output[1:])
    return Transformer2DModelOutput(sample=output.sample[:, :, :frames])


def build_conditioning(adapter: nn.Module, request: ConditioningRequest, hidden: torch.Tensor,
                       timestep: torch.Tensor, text: torch.Tensor, face_keep: torch.Tensor | None,
                       ref_mask: torch.Tensor | None, num_refs: int) -> ForwardConditioning:
    batch, _, frames = hidden.shape[:3]
    p_t = adapter.transformer.config.patch_size[0]
    per_frame = _tokens_per_frame(adapter, hidden)
    video_tokens = (frames // p_t) * per_frame
    call = ForwardConditioning(frames, video_tokens, num_refs, num_refs * per_frame,
                               face_blocks=frozenset(adapter.face_blocks))
    if num_refs:
        call.reference_modulation = reference_modulation(adapter.transformer, text)
        if ref_mask is not None and not bool(ref_mask.all()):
            video = torch.ones(batch, video_tokens, dtype=torch.bool, device=hidden.device)
            refs = ref_mask.to(hidden.device).repeat_interleave(per_frame, dim=1)
            call.key_mask = torch.cat([video, refs], dim=1)[:, None, None, :]
    if request.features is not None:
        call.face, call.identity, call.shared_gate_weights = face_conditioning(adapter, request, timestep, batch,
                                                                               face_keep)
    return call


def face_conditioning(adapter: nn.Module, request: ConditioningRequest, timestep: torch.Tensor, batch: int,
                      keep: torch.Tensor | None) -> tuple[FaceConditioning, torch.Tensor | None, torch.Tensor | None]:
    """Project, align and (shared gate) fuse the expert tokens; per-block gates fuse inside the blocks."""
    config = adapter.config
    grad = torch.is_grad_enabled()
    if not grad and batch in request.cache:
        tokens, identity = request.cache[batch]
    else:
        tokens, identity = project_faces(adapter, request.features, batch)
        if not grad:
            request.cache[batch] = (tokens, identity)
    experts = [tokens[name] for name in config.experts]
    extra = None if identity is None else adapter.aligner.token(identity, config.aligner_stop_gradient)
    keep_f = None if keep is None else keep.to(experts[0].device, experts[0].dtype)
    face = FaceConditioning(adapter.scale, keep=keep_f)
    shared_weights = None
    if adapter.gates is not None:
        stacked = torch.stack(experts, dim=1)
        temb = timestep_embedding(adapter.transformer, timestep, batch) if config.gate_timestep else None
        if config.gate_per_block:
            face.experts, face.extra, face.gates, face.gate_temb = stacked, extra, adapter.gates, temb
            return face, identity, None
        shared_weights = adapter.gates[SHARED_GATE](stacked, temb)
        fused = adapter.gates[SHARED_GATE].fuse(stacked, shared_weights)
    else:
        fused = torch.cat(experts, dim=1)
    face.fused = fused if extra is None else torch.cat([fused, extra.to(fused.dtype)], dim=1)
    return face, identity, shared_weights


def project_faces(adapter: nn.Module, features: FaceFeatures,
                  batch: int) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """Resample every expert to face tokens and run the aligner: the timestep-independent part."""
    device = adapter.device
    tokens = {name: adapter.projectors[name](_batch(features.tokens[name].to(device), batch, "faces"))
              for name in adapter.config.experts}
    identity = None
    if adapter.aligner is not None:
        identity = aligner_representation(adapter, features, batch, tokens)
    return tokens, identity


def aligner_representation(adapter: nn.Module, features: FaceFeatures, batch: int | None = None,
                           projected: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """The aligner's global representation (B, inner_dim) of these faces, from the configured input."""
    device = adapter.device
    batch = batch or features.batch_size
    if adapter.config.aligner_input == "image":
        x = _batch(features.tokens["semantic"].to(device), batch, "faces")
    elif projected is not None:
        x = projected["identity"]
    else:
        x = adapter.projectors["identity"](_batch(features.tokens["identity"].to(device), batch, "faces"))
    angles = None if features.angles is None else _batch(features.angles.to(device), batch, "angles")
    return adapter.aligner(x, angles)[0]


@torch.no_grad()
def timestep_embedding(transformer: nn.Module, timestep: torch.Tensor, batch: int) -> torch.Tensor:
    """The backbone's own timestep embedding (frozen) of the video timestep, (B, inner_dim)."""
    embedder = transformer.condition_embedder
    param = next(embedder.time_embedder.parameters())
    t = torch.as_tensor(timestep)
    if t.ndim == 2:  # per-token timesteps (Wan2.2 TI2V): the video's noise level is the largest
        t = t.amax(dim=1)
    t = t.reshape(-1).expand(batch) if t.numel() == 1 else t.reshape(-1)
    return embedder.time_embedder(embedder.timesteps_proj(t.to(param.device)).to(param.dtype))


def reference_modulation(transformer: nn.Module, text: torch.Tensor) -> torch.Tensor:
    """Wan's modulation (1, 6, inner_dim) at timestep 0, computed as ``WanTimeTextImageEmbedding`` does."""
    embedder = transformer.condition_embedder
    param = next(embedder.time_embedder.parameters())
    proj = embedder.timesteps_proj(torch.zeros(1, device=param.device))
    if param.dtype != torch.int8:
        proj = proj.to(param.dtype)
    temb = embedder.time_embedder(proj).type_as(text)
    return embedder.time_proj(embedder.act_fn(temb)).unflatten(1, (6, -1))


def reference_input(adapter: nn.Module, latents: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """Reference latents (B or 1, z, K, h, w) -> transformer input frames, region-masked in training."""
    b, _, _, h, w = hidden.shape
    if tuple(latents.shape[-2:]) != (h, w):
        raise ConfigError(f"reference latents are {tuple(latents.shape[-2:])}, the video latents {(h, w)}",
                          "resize the reference views to the video resolution before VAE encoding")
    latents = _batch(latents.to(hidden.device, hidden.dtype), b, "reference sets")
    known = None
    if adapter.training and adapter.config.mask_ratio > 0:
        latents, known = region_mask(latents, adapter.config.mask_ratio,
                                     adapter.config.mask_region * adapter.transformer.config.patch_size[1])
    return reference_frames(latents, adapter.dims["in_channels"], known)


def _tokens_per_frame(adapter: nn.Module, hidden: torch.Tensor) -> int:
    _, p_h, p_w = adapter.transformer.config.patch_size
    return (hidden.shape[3] // p_h) * (hidden.shape[4] // p_w)


def _batch(x: torch.Tensor, batch: int, what: str) -> torch.Tensor:
    if x.shape[0] == batch:
        return x
    if x.shape[0] != 1:
        raise ConfigError(f"{x.shape[0]} {what} for a batch of {batch} videos", "pass one per video, or one for all")
    return x.expand(batch, *x.shape[1:])


def _per_sample(mask: torch.Tensor | None, batch: int, what: str, k: int | None = None) -> torch.Tensor | None:
    if mask is None:
        return None
    mask = torch.as_tensor(mask, dtype=torch.bool)
    expected = (batch,) if k is None else (batch, k)
    if mask.shape[0] == 1 and batch != 1:
        mask = mask.expand(batch, *mask.shape[1:])
    if tuple(mask.shape) != expected:
        raise ConfigError(f"{what} must be {expected}, got {tuple(mask.shape)}", "pass one entry per sample")
    return mask


def _combine(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    if a is None or b is None:
        return a if b is None else b
    return a.to(b.device) & b


def _branch(selector: torch.Tensor | None, text: torch.Tensor) -> torch.Tensor | None:
    """(B,) bool: batch rows whose text embeddings equal one of ``selector``'s rows (None: every row)."""
    if selector is None:
        return None
    ref = selector.to(text.device, text.dtype)
    if ref.ndim == 2:
        ref = ref[None]
    if ref.shape[1:] != text.shape[1:]:
        return torch.zeros(text.shape[0], dtype=torch.bool, device=text.device)
    return torch.stack([(ref == row).flatten(1).all(dim=1).any() for row in text])

