"""Expert gate (MoFE; one per block in CoFE): softmax weights over the experts, per sample or per token."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

USAGE_DECAY = 0.99  # accumulated expert usage: exponential average over about 100 forwards


class ExpertGate(nn.Module):
    """Linear -> GELU -> Linear -> Softmax over the experts.

    ``sample`` granularity reads each expert's mean token and returns (B, E); ``token`` reads the
    experts' n-th tokens side by side and returns (B, N, E). With ``temb_dim`` the (layer-normed)
    timestep embedding is appended to the input, so the mix can change along the denoising path;
    with ``state_dim`` (CoFE) the (layer-normed) pooled hidden state of the gate's own block is
    appended too, so each block's gate sees what that block's fusion sees.
    """

    def __init__(self, num_experts: int, token_dim: int, hidden_dim: int, granularity: str,
                 temb_dim: int | None = None, state_dim: int | None = None) -> None:
        super().__init__()
        self.num_experts, self.granularity = num_experts, granularity
        self.temb_norm = nn.LayerNorm(temb_dim, elementwise_affine=False) if temb_dim else None
        self.state_norm = nn.LayerNorm(state_dim, elementwise_affine=False) if state_dim else None
        in_dim = num_experts * token_dim + (temb_dim or 0) + (state_dim or 0)
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, num_experts))
        # Small last layer: the mix starts near uniform but every layer already gets gradients.
        nn.init.normal_(self.net[2].weight, std=0.01)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, experts: torch.Tensor, temb: torch.Tensor | None = None,
                state: torch.Tensor | None = None) -> torch.Tensor:
        """``experts`` (B, E, N, D), ``temb``/``state`` (B, *) -> weights (B, E) or (B, N, E), summing to 1."""
        b, e, n, d = experts.shape
        dtype = self.net[0].weight.dtype
        experts = experts.to(dtype)
        if self.granularity == "sample":
            x = experts.mean(dim=2).reshape(b, e * d)
        else:
            x = experts.permute(0, 2, 1, 3).reshape(b, n, e * d)
        extra = []
        for norm, value, what in ((self.temb_norm, temb, "temb"), (self.state_norm, state, "state")):
            if norm is None:
                continue
            if value is None:
                raise ValueError(f"this gate reads {what}; pass it")
            v = norm(value.to(dtype))
            extra.append(v if x.ndim == 2 else v[:, None].expand(b, n, -1))
        if extra:
            x = torch.cat([x, *extra], dim=-1)
        return F.softmax(self.net(x).float(), dim=-1).to(dtype)

    @staticmethod
    def fuse(experts: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Weighted sum over experts: (B, E, N, D) x (B, E) | (B, N, E) -> (B, N, D)."""
        w = weights[:, :, None, None] if weights.ndim == 2 else weights.permute(0, 2, 1)[..., None]
        return (experts * w.to(experts.dtype)).sum(dim=1)


class UsageBalance(nn.Module):
    """Load-balance loss ``E * sum_e p_e^2 - 1`` (0 when even) on expert usage accumulated over many samples.

    One batch's usage (at batch 1, one video) says nothing about balance; this keeps an exponential
    average of past usage (decay :data:`USAGE_DECAY`, a buffer outside the state dict) and scores the
    current batch's usage mixed into it, so only a persistent imbalance is penalised. Every expert is
    always computed, so balance is not needed for compute; the loss is off unless configured.
    """

    def __init__(self, num_experts: int, decay: float = USAGE_DECAY) -> None:
        super().__init__()
        self.decay = decay
        self.register_buffer("usage", torch.full((num_experts,), 1.0 / num_experts), persistent=False)
        self.register_buffer("seen", torch.zeros(()), persistent=False)

    def forward(self, weights: list[torch.Tensor]) -> torch.Tensor:
        batch = torch.stack([w.reshape(-1, w.shape[-1]).float().mean(dim=0) for w in weights]).mean(dim=0)
        history = self.usage.to(batch.device)
        # Weight of the history: 0 at the first call, growing to ``decay`` (bias-corrected average).
        keep = self.decay * (1 - self.decay ** self.seen.item()) / (1 - self.decay ** (self.seen.item() + 1))
        mixed = keep * history + (1 - keep) * batch
        if self.training:
            with torch.no_grad():
                self.usage.copy_(mixed.detach().to(self.usage.device))
                self.seen += 1
        return batch.shape[0] * (mixed**2).sum() - 1.0
