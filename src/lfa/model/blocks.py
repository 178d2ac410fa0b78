"""The Wan block forward with identity conditioning: per-segment modulation, face tokens, reference masking.

Installed as each ``WanTransformerBlock``'s ``forward``; a block called with a plain ``(cos, sin)``
runs diffusers' own forward untouched. With a :class:`~lfa.model.state.ConditionedRotary` it
computes the same operations in the same order, except that:

- the reference segment of the sequence is modulated with Wan's timestep-0 modulation
  (``ForwardConditioning.reference_modulation``, (B, 6, D)) and the video segment with its own —
  instead of per-token timesteps, which turn every modulation tensor into (B, S, 6, D);
- ``attn2`` of a face block also attends to the block's face tokens (per-block gates fuse the
  experts here, from the block's own pooled cross-attention input);
- self-attention hides padded or dropped references (``key_mask``).

Everything comes from the block's arguments, so gradient checkpointing recomputes it exactly.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from lfa.model.state import ForwardConditioning, conditioning_of


class _Modulation:
    """Wan's six modulation vectors, per segment: video (B, 1, D) and, when present, references."""

    def __init__(self, table: torch.Tensor, temb: torch.Tensor, call: ForwardConditioning) -> None:
        if temb.ndim == 4:  # per-token timesteps given by the caller (Wan2.2 TI2V): (B, S, 6, D)
            self.video = [c.squeeze(2) for c in (table.unsqueeze(0) + temb.float()).chunk(6, dim=2)]
            self.refs = None
        else:
            self.video = list((table + temb.float()).chunk(6, dim=1))
            self.refs = None
            if call.reference_tokens and call.reference_modulation is not None:
                self.refs = list((table + call.reference_modulation.float()).chunk(6, dim=1))
        self.split = call.video_tokens

    def affine(self, x: torch.Tensor, shift: int, scale: int) -> torch.Tensor:
        """``x * (1 + scale) + shift`` with each segment's own vectors."""
        if self.refs is None:
            return x * (1 + self.video[scale]) + self.video[shift]
        v, r = x[:, : self.split], x[:, self.split:]
        return torch.cat([v * (1 + self.video[scale]) + self.video[shift],
                          r * (1 + self.refs[scale]) + self.refs[shift]], dim=1)

    def gated(self, residual: torch.Tensor, update: torch.Tensor, gate: int) -> torch.Tensor:
        """``residual + update * gate`` with each segment's own gate."""
        if self.refs is None:
            return residual + update * self.video[gate]
        s = self.split
        return residual + torch.cat([update[:, :s] * self.video[gate], update[:, s:] * self.refs[gate]], dim=1)


def conditioned_block_forward(block: nn.Module, index: int, original, hidden_states: torch.Tensor,
                              encoder_hidden_states: torch.Tensor, temb: torch.Tensor,
                              rotary_emb: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    call = conditioning_of(rotary_emb)
    if call is None:
        return original(hidden_states, encoder_hidden_states, temb, rotary_emb)
    rotary = (rotary_emb[0], rotary_emb[1])
    mod = _Modulation(block.scale_shift_table, temb, call)

    # 1. Self-attention (0 shift, 1 scale, 2 gate)
    norm = mod.affine(block.norm1(hidden_states.float()), 0, 1).type_as(hidden_states)
    attn_output = block.attn1(norm, None, call.key_mask, rotary)
    hidden_states = mod.gated(hidden_states.float(), attn_output, 2).type_as(hidden_states)

    # 2. Cross-attention (text, CLIP image in I2V, faces)
    norm = block.norm2(hidden_states.float()).type_as(hidden_states)
    face = call.face_tokens(index, norm)
    if face is not None:
        attn_output = block.attn2(norm, encoder_hidden_states, None, None, face_tokens=face,
                                  face_keep=call.face.keep, face_scale=call.face.scale)
    else:
        attn_output = block.attn2(norm, encoder_hidden_states, None, None)
    hidden_states = hidden_states + attn_output

    # 3. Feed-forward (3 shift, 4 scale, 5 gate)
    norm = mod.affine(block.norm3(hidden_states.float()), 3, 4).type_as(hidden_states)
    ff_output = block.ffn(norm)
    return mod.gated(hidden_states.float(), ff_output.float(), 5).type_as(hidden_states)


def install_block_forwards(transformer: nn.Module) -> None:
    """Give every block the conditioned forward (an instance attribute over the class's ``forward``)."""
    for index, block in enumerate(transformer.blocks):
        original = type(block).forward.__get__(block)
        block.forward = functools.partial(conditioned_block_forward, block, index, original)


def uninstall_block_forwards(transformer: nn.Module) -> None:
    for block in transformer.blocks:
        if isinstance(block.__dict__.get("forward"), functools.partial):
            del block.forward
