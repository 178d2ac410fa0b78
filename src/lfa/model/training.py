"""``IdentityTrainingModule``: one ``nn.Module`` whose forward returns the prediction and every loss.

It owns the transformer (with its LoRA) and the adapter, so DDP/FSDP wrap one thing, and its
``forward(batch)`` draws noise levels, noises the latents, drops faces and references per sample
(classifier-free guidance on identity), runs the conditioned transformer and returns
:class:`TrainingOutput` with ``loss`` (the weighted total) and ``losses`` (each term).

    module = IdentityTrainingModule(adapter)
    optimizer = torch.optim.AdamW(module.parameter_groups(), lr=1e-4, weight_decay=0.01)
    out = module(TrainingBatch(latents, text, faces=faces, references=refs, alignment=(pose_a, pose_b)))
    out.loss.backward()

Routing of the losses: ``flow`` (velocity MSE) trains what the prediction depends on — projectors,
gates, face key/values, LoRA, and the aligner unless ``aligner_stop_gradient``; ``alignment``
(InfoNCE on pose pairs) trains the aligner; ``balance`` (off by default) the gates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lfa.errors import ConfigError
from lfa.model.adapter import IdentityAdapter
from lfa.model.encoders import FaceFeatures, FaceInputs
from lfa.model.flow import FlowMatchingConfig, add_noise, flow_target, sample_sigmas, timesteps


@dataclass
class TrainingBatch:
    """One training batch. ``latents``: clean normalised video latents (B, z, F, h, w); ``text``: (B, L, text_dim).

    ``condition``: I2V mask + image-latent channels (B, in - z, F, h, w), concatenated after noising.
    ``reference_mask`` (B, K) bool: real references (a variable number per sample; False = padding).
    ``alignment``: two views (same identities, two poses) for the aligner's InfoNCE, independent of the
    diffusion rows (the aligner's own batch); ``alignment_groups``: the identity of each of its pairs.
    ``noise`` / ``sigmas``: fixed noise and noise levels (evaluation, tests); drawn when absent.
    ``face_keep`` / ``reference_keep`` (B,) bool: the training dropout drawn by the caller (a trainer that
    draws per sample, whatever the split over processes); drawn here when absent.
    ``loss_weights`` (B, 1, F, h, w): per-cell weights of the flow loss (e.g. higher on faces); each
    sample's squared error is averaged with its weights, then samples are averaged (so the loss does not
    depend on how a batch is split over processes).
    ``first_frame`` (B,) bool (Wan2.2 TI2V): rows whose first latent frame stays clean and conditions the
    rest, as TI2V's image-to-video mode: per-token timesteps, 0 on that frame, which the loss leaves out.
    """

    latents: torch.Tensor
    text: torch.Tensor
    faces: FaceInputs | FaceFeatures | None = None
    references: torch.Tensor | None = None
    reference_mask: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    condition: torch.Tensor | None = None
    alignment: tuple[FaceInputs | FaceFeatures, FaceInputs | FaceFeatures] | None = None
    alignment_groups: torch.Tensor | None = None  # (P,) identity of each alignment pair: never a negative
    noise: torch.Tensor | None = None
    sigmas: torch.Tensor | None = None
    face_keep: torch.Tensor | None = None
    reference_keep: torch.Tensor | None = None
    loss_weights: torch.Tensor | None = None
    first_frame: torch.Tensor | None = None


def weighted_mse(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """MSE; with ``weights`` (broadcast to the prediction) a weighted mean per sample, then the mean over samples."""
    if weights is None:
        return F.mse_loss(prediction.float(), target.float())
    squared = (prediction.float() - target.float()) ** 2
    w = weights.to(squared.device, squared.dtype).expand_as(squared)
    return ((w * squared).flatten(1).sum(1) / w.flatten(1).sum(1)).mean()


@dataclass
class TrainingOutput:
    loss: torch.Tensor
    losses: dict[str, torch.Tensor]
    prediction: torch.Tensor
    target: torch.Tensor
    sigmas: torch.Tensor
    gate_weights: torch.Tensor | dict[int, torch.Tensor] | None = None
    dropped: dict[str, torch.Tensor] = field(default_factory=dict)  # per-sample masks of what was dropped


class IdentityTrainingModule(nn.Module):
    """Transformer + identity adapter as one module: ``forward(batch) -> TrainingOutput``."""

    def __init__(self, adapter: IdentityAdapter, flow: FlowMatchingConfig | None = None, *,
                 alignment_weight: float = 1.0, balance_weight: float = 0.01) -> None:
        super().__init__()
        self.adapter = adapter
        self.transformer = adapter.transformer
        self.flow = flow or FlowMatchingConfig()
        self.alignment_weight, self.balance_weight = float(alignment_weight), float(balance_weight)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The adapter's optimiser groups (LoRA included; no weight decay on norms, biases, dictionary, temperature)."""
        return self.adapter.parameter_groups()

    def forward(self, batch: TrainingBatch) -> TrainingOutput:
        latents = batch.latents
        b = latents.shape[0]
        device = latents.device
        noise = torch.randn_like(latents) if batch.noise is None else batch.noise.to(device, latents.dtype)
        sigmas = sample_sigmas(b, self.flow, device=device) if batch.sigmas is None else batch.sigmas.to(device)
        if tuple(sigmas.shape) != (b,):
            raise ConfigError(f"sigmas must be ({b},), got {tuple(sigmas.shape)}", "give one noise level per sample")
        hidden = add_noise(latents, noise, sigmas)
        t = timesteps(sigmas)
        weights = batch.loss_weights
        if batch.first_frame is not None:
            hidden, t, weights = self._clean_first_frame(batch.first_frame.to(device), latents, hidden, t, weights)
        if batch.condition is not None:
            hidden = torch.cat([hidden, batch.condition.to(device, hidden.dtype)], dim=1)
        face_keep, ref_mask = self._dropout(batch, b, device)
        dtype = next(self.transformer.parameters()).dtype
        out = self.adapter(hidden.to(dtype), t, batch.text.to(device, dtype),
                           faces=batch.faces, references=batch.references, reference_mask=ref_mask,
                           face_keep=face_keep,
                           encoder_hidden_states_image=None if batch.image_embeds is None
                           else batch.image_embeds.to(device, dtype))
        target = flow_target(latents, noise)
        losses = {"flow": weighted_mse(out.sample, target, weights)}
        total = losses["flow"]
        if batch.alignment is not None and self.adapter.aligner is not None:
            losses["alignment"] = self.adapter.identity_alignment_loss(*batch.alignment, batch.alignment_groups)
            total = total + self.alignment_weight * losses["alignment"]
        if out.balance_loss is not None:
            losses["balance"] = out.balance_loss
            total = total + self.balance_weight * out.balance_loss
        dropped = {}
        if face_keep is not None:
            dropped["faces"] = ~face_keep
        if ref_mask is not None and batch.references is not None:
            dropped["references"] = ~ref_mask.any(dim=1)
        return TrainingOutput(total, losses, out.sample, target, sigmas, out.gate_weights, dropped)

    def _clean_first_frame(self, keep: torch.Tensor, latents: torch.Tensor, hidden: torch.Tensor, t: torch.Tensor,
                           weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows of ``keep``: the clean first frame in the input, timestep 0 on its tokens, no loss there."""
        b, _, frames, h, w = latents.shape
        p_t, p_h, p_w = self.transformer.config.patch_size
        hidden = hidden.clone()
        hidden[keep, :, 0] = latents[keep, :, 0].to(hidden.dtype)
        per_frame = (h // p_h) * (w // p_w)
        t = t[:, None].expand(b, (frames // p_t) * per_frame).clone()
        t[keep, :per_frame] = 0.0
        mask = torch.ones(b, 1, frames, h, w, device=latents.device)
        mask[keep, :, 0] = 0.0
        weights = mask if weights is None else weights.to(mask.device, mask.dtype).expand_as(mask) * mask
        return hidden, t, weights

    def _dropout(self, batch: TrainingBatch, b: int, device: torch.device) -> tuple[torch.Tensor | None,
                                                                                    torch.Tensor | None]:
        """Per-sample face keep (B,) and reference mask (B, K), with training-mode dropout applied."""
        config = self.adapter.config
        face_keep = None
        if batch.faces is not None and self.training and batch.face_keep is not None:
            face_keep = torch.as_tensor(batch.face_keep, dtype=torch.bool).to(device)
        elif batch.faces is not None and self.training and config.face_dropout > 0:
            face_keep = torch.rand(b, device=device) >= config.face_dropout
        ref_mask = batch.reference_mask
        if batch.references is not None:
            k = batch.references.shape[2]
            if ref_mask is None:
                ref_mask = torch.ones(b, k, dtype=torch.bool, device=device)
            ref_mask = torch.as_tensor(ref_mask, dtype=torch.bool).to(device)
            if self.training and batch.reference_keep is not None:
                ref_mask = ref_mask & torch.as_tensor(batch.reference_keep, dtype=torch.bool).to(device)[:, None]
            elif self.training and config.reference_dropout > 0:
                ref_mask = ref_mask & (torch.rand(b, 1, device=device) >= config.reference_dropout)
        return face_keep, ref_mask
