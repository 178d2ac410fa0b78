"""Reference views as clean tokens in the video sequence (Mv²ID; vanilla and Stand-In layouts).

K reference latents ride along the frame axis after the F video frames, so diffusers' patch
embedding works unchanged; the blocks modulate them as clean frames (timestep 0, per segment:
:mod:`lfa.model.blocks`), and RoPE puts them
(units: latent frames and transformer patches; the video occupies t in [0, F), h in [0, H),
w in [0, W); reference k = 1..K):

- ``vanilla``: t = F + k - 1, same (h, w) grid — references are just extra frames;
- ``standin``: t = -1 (one step before the first frame), (h, w) offset by (kH, kW) — Stand-In's
  conditional position mapping, stepped per reference;
- ``mv2id``: t = F (one step past the last frame), (h, w) offset by (kH, kW) — Mv²ID's
  reference-decoupled RoPE: references overlap neither the video nor each other.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from lfa.errors import ConfigError
from lfa.model.state import ConditionedRotary, ForwardConditioning


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


class ConditionedRope(nn.Module):
    """Drop-in for ``transformer.rope``: Wan's rope, plus reference positions, plus the forward's conditioning.

    The adapter's pre-hook leaves a ``prepare`` callback in :attr:`pending`; the rope is the first
    module a Wan forward calls (after any offload hook moved the weights), so it builds the
    forward's :class:`ForwardConditioning` there and returns it attached to ``(cos, sin)``.
    Reference rotations are looked up in the base rope's own tables (its dtype, no float64 of our
    own); a negative position uses cos(-x) = cos(x), sin(-x) = -sin(x).
    """

    def __init__(self, base: nn.Module, layout: str) -> None:
        super().__init__()
        self.base, self.layout = base, layout
        self.pending: Callable[[], ForwardConditioning] | None = None

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        prepare, self.pending = self.pending, None
        if prepare is None:
            return self.base(hidden_states)
        call = prepare()
        num_refs = call.reference_frames
        if not num_refs:
            return ConditionedRotary(*self.base(hidden_states), call)
        _, _, f, h, w = hidden_states.shape
        p_t, p_h, p_w = self.base.patch_size
        cos_v, sin_v = self.base(hidden_states[:, :, : f - num_refs])
        pos = reference_positions(self.layout, (f - num_refs) // p_t, h // p_h, w // p_w, num_refs)
        cos_r, sin_r = self.rotary(pos)  # integer positions on the CPU; looked up on the tables' device
        return ConditionedRotary(torch.cat([cos_v, cos_r], dim=1), torch.cat([sin_v, sin_r], dim=1), call)

    def rotary(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(S, 3) integer positions -> (1, S, 1, head_dim) cos and sin, in Wan's (t, h, w) channel split."""
        base = self.base
        positions = positions.cpu()
        limit = base.freqs_cos.shape[0]
        if positions.abs().max() >= limit:
            raise ConfigError(f"reference positions reach {int(positions.abs().max())}, beyond the rope's "
                              f"{limit} positions", "use fewer references or a smaller latent size")
        splits = [base.t_dim, base.h_dim, base.w_dim]
        cos_tables, sin_tables = base.freqs_cos.split(splits, dim=1), base.freqs_sin.split(splits, dim=1)
        cos, sin = [], []
        for axis in range(3):
            p = positions[:, axis]
            index, sign = p.abs().to(base.freqs_cos.device), torch.where(p < 0, -1.0, 1.0)
            cos.append(cos_tables[axis][index])
            sin.append(sin_tables[axis][index] * sign.to(base.freqs_sin)[:, None])
        return torch.cat(cos, dim=1)[None, :, None], torch.cat(sin, dim=1)[None, :, None]


def reference_frames(latents: torch.Tensor, in_channels: int, known: torch.Tensor | None = None) -> torch.Tensor:
    """Reference latents (B, z, K, H, W) -> transformer input frames (B, in_channels, K, H, W).

    T2V: the latents themselves. I2V (``in_channels = 2z + m``): ``[latent, mask(m), latent]`` —
    a reference is a known frame, as the I2V mask/condition channels say of the first frame; where
    ``known`` (B, 1, K, H, W) is 0 (a masked region) the mask channels say "unknown" too.
    """
    z = latents.shape[1]
    extra = in_channels - z
    if extra == 0:
        return latents
    if extra > z:
        mask = torch.ones_like(latents[:, :1]) if known is None else known.to(latents.dtype)
        return torch.cat([latents, mask.expand(-1, extra - z, -1, -1, -1), latents], dim=1)
    raise ConfigError(f"cannot build {in_channels}-channel reference frames from {z}-channel latents",
                      "encode references with the backbone's own VAE")


def region_mask(frames: torch.Tensor, ratio: float, region: int,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero random ``region`` x ``region`` latent-pixel squares of each reference (B, C, K, H, W).

    Mv²ID's region masking against view-dependent copy-paste; each square is dropped with
    probability ``ratio``. Returns (masked frames, keep mask (B, 1, K, H, W)). The adapter calls it
    in training mode only.
    """
    b, _, k, h, w = frames.shape
    gh, gw = -(-h // region), -(-w // region)
    keep = torch.rand((b, 1, k, gh, gw), generator=generator, device=frames.device if generator is None else "cpu")
    keep = (keep >= ratio).to(frames.device, frames.dtype)
    keep = keep.repeat_interleave(region, dim=3).repeat_interleave(region, dim=4)[..., :h, :w]
    return frames * keep, keep
