"""Reference views as clean tokens in the video sequence (Mv²ID; vanilla and Stand-In layouts).

K reference latents ride along the frame axis after the F video frames, so diffusers' patch
embedding, blocks and per-token timesteps work unchanged; what changes is where RoPE puts them
(units: latent frames and transformer patches; the video occupies t in [0, F), h in [0, H),
w in [0, W); reference k = 1..K):

- ``vanilla``: t = F + k - 1, same (h, w) grid — references are just extra frames;
- ``standin``: t = -1 (one step before the first frame), (h, w) offset by (kH, kW) — Stand-In's
  conditional position mapping, stepped per reference;
- ``mv2id``: t = F (one step past the last frame), (h, w) offset by (kH, kW) — Mv²ID's
  reference-decoupled RoPE: references overlap neither the video nor each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from diffusers.models.embeddings import get_1d_rotary_pos_embed
from torch import nn

from lfa.errors import ConfigError

if TYPE_CHECKING:
    from lfa.model.adapter import ConditioningState

ROPE_THETA = 10000.0  # WanRotaryPosEmbed's default, which WanTransformer3DModel always uses


def reference_positions(layout: str, frames: int, height: int, width: int, num_refs: int) -> torch.Tensor:
    """(K*H*W, 3) integer (t, h, w) positions of the reference tokens, in sequence order."""
    hh, ww = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    hh, ww = hh.reshape(-1), ww.reshape(-1)
    out = []
    for k in range(1, num_refs + 1):
        if layout == "vanilla":
            t, dh, dw = frames + k - 1, 0, 0
        elif layout == "standin":
            t, dh, dw = -1, k * height, k * width
        elif layout == "mv2id":
            t, dh, dw = frames, k * height, k * width
        else:
            raise ConfigError(f"unknown reference layout {layout!r}", "use vanilla, standin or mv2id")
        out.append(torch.stack([torch.full_like(hh, t), hh + dh, ww + dw], dim=1))
    return torch.cat(out)


def video_positions(frames: int, height: int, width: int) -> torch.Tensor:
    """(F*H*W, 3) positions of the video tokens, in diffusers' (f, h, w) flattening order."""
    f, h, w = torch.meshgrid(torch.arange(frames), torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([f.reshape(-1), h.reshape(-1), w.reshape(-1)], dim=1)


class ReferenceRope(nn.Module):
    """Drop-in for ``transformer.rope``: the original for the video, ``reference_positions`` for the rest."""

    def __init__(self, base: nn.Module, state: ConditioningState) -> None:
        super().__init__()
        self.base = base
        self._state = [state]  # a list, so the state is not registered as a submodule

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        num_refs = self._state[0].num_reference_frames
        if not num_refs:
            return self.base(hidden_states)
        b, c, f, h, w = hidden_states.shape
        p_t, p_h, p_w = self.base.patch_size
        video = hidden_states[:, :, : f - num_refs]
        cos_v, sin_v = self.base(video)
        pos = reference_positions(self._state[0].layout, (f - num_refs) // p_t, h // p_h, w // p_w, num_refs)
        cos_r, sin_r = self.rotary(pos.to(cos_v.device))
        return torch.cat([cos_v, cos_r.to(cos_v.dtype)], dim=1), torch.cat([sin_v, sin_r.to(sin_v.dtype)], dim=1)

    def rotary(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, 3) integer positions -> (1, S, 1, head_dim) cos and sin, in Wan's (t, h, w) channel split."""
        cos, sin = [], []
        for axis, dim in enumerate((self.base.t_dim, self.base.h_dim, self.base.w_dim)):
            c, s = get_1d_rotary_pos_embed(dim, positions[:, axis].to(torch.float64), ROPE_THETA, use_real=True,
                                           repeat_interleave_real=True, freqs_dtype=torch.float64)
            cos.append(c)
            sin.append(s)
        return torch.cat(cos, dim=1)[None, :, None], torch.cat(sin, dim=1)[None, :, None]


def reference_frames(latents: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Reference latents (B, z, K, H, W) -> transformer input frames (B, in_channels, K, H, W).

    T2V: the latents themselves. I2V (``in_channels = 2z + m``): ``[latent, ones(m), latent]`` —
    a reference is a known frame, as the I2V mask/condition channels say of the first frame.
    """
    z = latents.shape[1]
    extra = in_channels - z
    if extra == 0:
        return latents
    if extra > z:
        mask = torch.ones_like(latents[:, :1]).expand(-1, extra - z, -1, -1, -1)
        return torch.cat([latents, mask, latents], dim=1)
    raise ConfigError(f"cannot build {in_channels}-channel reference frames from {z}-channel latents",
                      "encode references with the backbone's own VAE")


def region_mask(frames: torch.Tensor, ratio: float, region: int,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero random ``region`` x ``region`` latent-pixel squares of each reference (B, C, K, H, W).

    Mv²ID's region masking against view-dependent copy-paste; each square is dropped with
    probability ``ratio``. The adapter calls it in training mode only.
    """
    b, _, k, h, w = frames.shape
    gh, gw = -(-h // region), -(-w // region)
    keep = torch.rand((b, 1, k, gh, gw), generator=generator, device=frames.device if generator is None else "cpu")
    keep = (keep >= ratio).to(frames.device, frames.dtype)
    keep = keep.repeat_interleave(region, dim=3).repeat_interleave(region, dim=4)[..., :h, :w]
    return frames * keep
