"""Face cross-attention on a Wan block's ``attn2`` (IP-Adapter style, decoupled keys/values).

The processor computes Wan's own cross-attention (text, plus CLIP-image tokens in I2V) and adds
``scale * attention(query, face_k(face), face_v(face))`` before the output projection, sharing the
text query. ``face_k``/``face_v`` start at zero, so at initialisation the block's output is the
backbone's. Their names differ from peft's usual targets (``to_q``, ``to_k``, ...) on purpose.

The adapter's block forward (:mod:`lfa.model.blocks`) hands the face tokens of the current call
to ``attn2`` as keyword arguments, so the processor holds no per-forward state: a block recomputed
by gradient checkpointing gets the same tokens again.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from torch import nn

TEXT_CONTEXT_LEN = 512
"""Wan's text context length: in I2V, ``encoder_hidden_states[:, :-512]`` are CLIP image tokens."""


class ZeroLinear(nn.Module):
    """A ``dim -> dim`` projection that outputs zeros at init: full rank, or ``up(down(x))`` with rank r."""

    def __init__(self, dim: int, rank: int = 0, bias: bool = True) -> None:
        super().__init__()
        self.down = nn.Linear(dim, rank, bias=False) if rank else None
        self.up = nn.Linear(rank or dim, dim, bias=bias)
        nn.init.zeros_(self.up.weight)
        if bias:
            nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x) if self.down is not None else x)


class FaceKV(nn.Module):
    """The new key/value projections of one block's face cross-attention.

    The key has no bias: a bias shared by all keys adds the same ``q . b`` to every logit of a
    query, which softmax ignores — its gradient is zero and it would never train.
    """

    def __init__(self, dim: int, rank: int = 0) -> None:
        super().__init__()
        self.face_k = ZeroLinear(dim, rank, bias=False)
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

    def __init__(self, block_index: int, kv: FaceKV) -> None:
        self.block_index, self.kv = block_index, kv

    def __call__(self, attn: nn.Module, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, rotary_emb: object = None, *,
                 face_tokens: torch.Tensor | None = None, face_keep: torch.Tensor | None = None,
                 face_scale: float = 1.0) -> torch.Tensor:
        """Wan's cross-attention, plus ``face_scale * face_keep * attn(q, face_k(face), face_v(face))``.

        ``face_tokens`` (B or 1, M, D); ``face_keep`` (B,) zeroes the face term of samples whose face
        is dropped (classifier-free guidance on identity). Without face tokens: Wan's processor.
        """
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

        if face_tokens is not None and face_scale != 0.0:
            face = face_tokens.to(device=q.device, dtype=self.kv.face_k.up.weight.dtype)
            if face.shape[0] != q.shape[0]:
                face = face.expand(q.shape[0], -1, -1)
            k_face = self.kv.face_k(face).to(q.dtype)
            v_face = self.kv.face_v(face).to(q.dtype)
            face_out = _attend(q, k_face, v_face, attn.heads, None, backend)
            if face_keep is not None:
                face_out = face_out * face_keep.to(face_out.dtype)[:, None, None]
            out = out + face_scale * face_out

        out = attn.to_out[0](out)
        return attn.to_out[1](out)
