"""Face cross-attention on a Wan block's ``attn2`` (IP-Adapter style, decoupled keys/values).

The processor computes Wan's own cross-attention (text, plus CLIP-image tokens in I2V) and adds
``scale * attention(query, face_k(face), face_v(face))`` before the output projection, sharing the
text query. ``face_k``/``face_v`` start at zero, so at initialisation the block's output is the
backbone's. Their names differ from peft's usual targets (``to_q``, ``to_k``, ...) on purpose.

diffusers does not forward ``attention_kwargs`` to processors, so face tokens reach them through
the adapter's :class:`~lfa.model.adapter.ConditioningState`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from torch import nn

if TYPE_CHECKING:
    from lfa.model.adapter import ConditioningState

TEXT_CONTEXT_LEN = 512
"""Wan's text context length: in I2V, ``encoder_hidden_states[:, :-512]`` are CLIP image tokens."""


class ZeroLinear(nn.Module):
    """A ``dim -> dim`` projection that outputs zeros at init: full rank, or ``up(down(x))`` with rank r."""

    def __init__(self, dim: int, rank: int = 0) -> None:
        super().__init__()
        self.down = nn.Linear(dim, rank, bias=False) if rank else None
        self.up = nn.Linear(rank or dim, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x) if self.down is not None else x)


class FaceKV(nn.Module):
    """The new key/value projections of one block's face cross-attention."""

    def __init__(self, dim: int, rank: int = 0) -> None:
        super().__init__()
        self.face_k = ZeroLinear(dim, rank)
        self.face_v = ZeroLinear(dim, rank)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, mask: torch.Tensor | None,
            backend: object) -> torch.Tensor:
    """(B, S, H*D) query x (B, M, H*D) keys/values -> (B, S, H*D), through diffusers' backend dispatch."""
    k, v = k.unflatten(2, (heads, -1)), v.unflatten(2, (heads, -1))
    out = dispatch_attention_fn(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False, backend=backend)
    return out.flatten(2, 3).type_as(q)


class FaceCrossAttnProcessor:
    """Replaces ``WanAttnProcessor`` on the ``attn2`` of one block; holds no weights of its own."""

    _attention_backend = None
    _parallel_config = None

    def __init__(self, block_index: int, kv: FaceKV, state: ConditioningState) -> None:
        self.block_index, self.kv, self.state = block_index, kv, state

    def __call__(self, attn: nn.Module, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, rotary_emb: object = None) -> torch.Tensor:
        if encoder_hidden_states is None or rotary_emb is not None:
            raise RuntimeError("FaceCrossAttnProcessor only serves Wan cross-attention (attn2)")
        image_ctx = None
        if attn.add_k_proj is not None:
            n_image = encoder_hidden_states.shape[1] - TEXT_CONTEXT_LEN
            image_ctx, encoder_hidden_states = encoder_hidden_states[:, :n_image], encoder_hidden_states[:, n_image:]

        query = attn.norm_q(attn.to_q(hidden_states))
        key = attn.norm_k(attn.to_k(encoder_hidden_states))
        value = attn.to_v(encoder_hidden_states)
        q = query.unflatten(2, (attn.heads, -1))
        backend = self._attention_backend

        out_image = None
        if image_ctx is not None:
            key_img = attn.norm_added_k(attn.add_k_proj(image_ctx))
            out_image = _attend(q, key_img, attn.add_v_proj(image_ctx), attn.heads, None, backend)
        out = _attend(q, key, value, attn.heads, attention_mask, backend)
        if out_image is not None:
            out = out + out_image

        face = self.state.face_tokens(self.block_index)
        if face is not None and self.state.scale != 0.0:
            face = face.to(device=q.device, dtype=self.kv.face_k.up.weight.dtype)
            if face.shape[0] != q.shape[0]:
                face = face.expand(q.shape[0], -1, -1)
            k_face = self.kv.face_k(face).to(q.dtype)
            v_face = self.kv.face_v(face).to(q.dtype)
            out = out + self.state.scale * _attend(q, k_face, v_face, attn.heads, None, backend)

        out = attn.to_out[0](out)
        return attn.to_out[1](out)
