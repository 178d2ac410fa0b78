"""Expert gate (MoFE; one per block in CoFE): softmax weights over the experts, per sample or per token."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ExpertGate(nn.Module):
    """Linear -> GELU -> Linear -> Softmax over the experts.

    ``sample`` granularity reads each expert's mean token and returns (B, E); ``token`` reads the
    experts' n-th tokens side by side and returns (B, N, E). With ``temb_dim`` the (layer-normed)
    timestep embedding is appended to the input, so the mix can change along the denoising path.
    """

    def __init__(self, num_experts: int, token_dim: int, hidden_dim: int, granularity: str,
                 temb_dim: int | None = None) -> None:
        super().__init__()
        self.num_experts, self.granularity = num_experts, granularity
        self.temb_norm = nn.LayerNorm(temb_dim, elementwise_affine=False) if temb_dim else None
        in_dim = num_experts * token_dim + (temb_dim or 0)
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, num_experts))
        # Small last layer: the mix starts near uniform but every layer already gets gradients.
        nn.init.normal_(self.net[2].weight, std=0.01)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, experts: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        """``experts`` (B, E, N, D) -> weights (B, E) or (B, N, E), summing to 1 over E."""
        b, e, n, d = experts.shape
        if self.granularity == "sample":
            x = experts.mean(dim=2).reshape(b, e * d)
        else:
            x = experts.permute(0, 2, 1, 3).reshape(b, n, e * d)
        if self.temb_norm is not None:
            if temb is None:
                raise ValueError("this gate is timestep-conditioned; pass temb")
            t = self.temb_norm(temb.to(x.dtype))
            x = torch.cat([x, t if x.ndim == 2 else t[:, None].expand(b, n, -1)], dim=-1)
        return F.softmax(self.net(x).float(), dim=-1).to(x.dtype)

    @staticmethod
    def fuse(experts: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Weighted sum over experts: (B, E, N, D) x (B, E) | (B, N, E) -> (B, N, D)."""
        w = weights[:, :, None, None] if weights.ndim == 2 else weights.permute(0, 2, 1)[..., None]
        return (experts * w.to(experts.dtype)).sum(dim=1)


def load_balance_loss(weights: list[torch.Tensor]) -> torch.Tensor:
    """``E * sum_e p_e^2 - 1`` of the mean expert usage p: 0 when the experts are used evenly."""
    per_gate = []
    for w in weights:
        usage = w.reshape(-1, w.shape[-1]).float().mean(dim=0)
        per_gate.append(w.shape[-1] * (usage**2).sum() - 1.0)
    return torch.stack(per_gate).mean()
