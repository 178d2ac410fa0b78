"""Conditioning state: what one conditioned transformer forward carries to its blocks.

diffusers calls every block as ``block(hidden_states, encoder_hidden_states, temb, rotary_emb)``,
and gradient checkpointing re-runs that call at backward time with the same Python arguments.
So the per-forward conditioning rides on ``rotary_emb``: the adapter's rope returns a
:class:`ConditionedRotary` — the usual ``(cos, sin)`` tuple with a :class:`ForwardConditioning`
attached — and the blocks read it from their own argument, never from state that a later forward
could have overwritten. A recomputed block therefore sees exactly what it saw the first time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from lfa.model.gate import ExpertGate


@dataclass
class FaceConditioning:
    """Face tokens of one forward.

    ``fused``: the tokens every face block attends to (shared gate, or experts concatenated), or
    ``None`` with per-block gates, which fuse ``experts`` (B, E, N, D) inside each block from that
    block's pooled hidden state. ``extra`` (B, M, D) is appended after fusion (the aligner token).
    ``keep`` (B,) is 1 where a sample is conditioned on its face, 0 where the face is dropped.
    """

    scale: float
    fused: torch.Tensor | None = None
    experts: torch.Tensor | None = None
    extra: torch.Tensor | None = None
    gates: Mapping[str, ExpertGate] | None = None
    gate_temb: torch.Tensor | None = None
    keep: torch.Tensor | None = None

    def tokens(self, block_index: int, hidden: torch.Tensor | None = None) -> tuple[torch.Tensor,
                                                                                    torch.Tensor | None]:
        """(face tokens of ``block_index``, gate weights or None); ``hidden``: (B, D) pooled block state."""
        if self.fused is not None:
            return self.fused, None
        if self.experts is None or self.gates is None:
            raise RuntimeError("face conditioning holds neither fused tokens nor experts with gates")
        weights = self.gates[str(block_index)](self.experts, self.gate_temb, hidden)
        fused = ExpertGate.fuse(self.experts, weights)
        if self.extra is not None:
            fused = torch.cat([fused, self.extra.to(fused.dtype)], dim=1)
        return fused, weights


@dataclass
class ForwardConditioning:
    """Everything the blocks of one conditioned forward need, built once per forward by the adapter.

    The sequence is ``video_tokens`` video tokens followed by ``reference_tokens`` reference tokens
    (``reference_frames`` frames). ``reference_modulation`` (B or 1, 6, D) is Wan's modulation at
    timestep 0, applied to the reference segment while the video keeps its own (per-segment
    modulation, no per-token timesteps). ``key_mask`` (B, 1, 1, S) bool hides padded or dropped
    references from self-attention (None when every reference is real).
    """

    video_frames: int
    video_tokens: int
    reference_frames: int = 0
    reference_tokens: int = 0
    reference_modulation: torch.Tensor | None = None
    key_mask: torch.Tensor | None = None
    face: FaceConditioning | None = None
    face_blocks: frozenset[int] = frozenset()
    identity: torch.Tensor | None = None  # the aligner's representation, for the report
    shared_gate_weights: torch.Tensor | None = None
    # Gate weights per block, recorded during the forward only (a checkpointed recompute does not).
    gate_weights: dict[int, torch.Tensor] = field(default_factory=dict)
    recording: bool = True

    def face_tokens(self, block_index: int, hidden: torch.Tensor) -> torch.Tensor | None:
        """The face tokens block ``block_index`` attends to; ``hidden``: its cross-attention input (B, S, D)."""
        if self.face is None or block_index not in self.face_blocks:
            return None
        pooled = hidden[:, : self.video_tokens].float().mean(dim=1) if self.face.fused is None else None
        tokens, weights = self.face.tokens(block_index, pooled)
        if weights is not None and self.recording:
            self.gate_weights[block_index] = weights
        return tokens


class ConditionedRotary(tuple):
    """``(cos, sin)`` as Wan's blocks expect, carrying the forward's :class:`ForwardConditioning`."""

    conditioning: ForwardConditioning

    def __new__(cls, cos: torch.Tensor, sin: torch.Tensor, conditioning: ForwardConditioning) -> ConditionedRotary:
        out = super().__new__(cls, (cos, sin))
        out.conditioning = conditioning
        return out


def conditioning_of(rotary_emb: object) -> ForwardConditioning | None:
    """The conditioning a block call carries, or None for a plain (unconditioned) forward."""
    return rotary_emb.conditioning if isinstance(rotary_emb, ConditionedRotary) else None


@dataclass
class ConditioningRequest:
    """What ``adapter.conditioning(...)`` asks of the forwards inside it (batch-broadcastable tensors).

    ``reference_mask`` (B, K) bool: real references (False: padding or dropped). ``face_keep`` (B,)
    bool: samples conditioned on their face. ``text``: condition only the forwards (or batch rows)
    whose ``encoder_hidden_states`` equal it — the conditional branch of a guided pipeline.
    """

    features: object | None = None  # lfa.model.encoders.FaceFeatures
    references: torch.Tensor | None = None
    reference_mask: torch.Tensor | None = None
    face_keep: torch.Tensor | None = None
    text: torch.Tensor | None = None
    # batch size -> (projected expert tokens, aligner representation): reused across steps without autograd
    cache: dict[int, tuple[dict[str, torch.Tensor], torch.Tensor | None]] = field(default_factory=dict)


@dataclass
class ConditioningReport:
    """What a conditioned forward computed besides the prediction (None where a mechanism is off).

    ``gate_weights``: (B, E) or (B, N, E) — one tensor, or ``{block: tensor}`` with per-block gates;
    ``balance_loss``: load-balance loss on accumulated expert usage (only with ``balance_loss``);
    ``identity``: the aligner's global face representation (B, inner_dim).
    """

    gate_weights: torch.Tensor | dict[int, torch.Tensor] | None = None
    balance_loss: torch.Tensor | None = None
    identity: torch.Tensor | None = None


@dataclass
class AdapterOutput(ConditioningReport):
    """``sample``: the backbone's prediction for the video frames only (reference frames cropped)."""

    sample: torch.Tensor | None = None
