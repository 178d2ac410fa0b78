"""Pose-shared identity aligner (FaithfulFaces).

Head Euler angles are embedded like diffusion timesteps and added to the identity tokens; the
tokens are correlated with a learnable pose-shared dictionary, the correlations max-pooled over
tokens and soft-maxed into dictionary weights, and the weighted sum of entries is a global face
representation. It joins the face tokens as an extra identity token, and a symmetric InfoNCE
(learnable temperature) pulls together the representations of two poses of the same person.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import get_timestep_embedding
from torch import nn

MAX_LOGIT_SCALE = math.log(100.0)


class PoseSharedAligner(nn.Module):
    def __init__(self, dim: int, dictionary_size: int = 4096, pose_embed_dim: int = 256,
                 temperature: float = 0.07) -> None:
        super().__init__()
        self.dim, self.pose_embed_dim = dim, pose_embed_dim
        self.pose_mlp = nn.Sequential(nn.Linear(3 * pose_embed_dim, 2 * pose_embed_dim), nn.SiLU(),
                                      nn.Linear(2 * pose_embed_dim, dim))
        self.dictionary = nn.Parameter(torch.randn(dictionary_size, dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    def pose_embedding(self, angles: torch.Tensor) -> torch.Tensor:
        """(B, 3) degrees (yaw, pitch, roll) -> (B, dim): sinusoids per angle, concatenated, then the MLP."""
        flat = angles.float().reshape(-1)
        emb = get_timestep_embedding(flat, self.pose_embed_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        emb = emb.reshape(angles.shape[0], 3 * self.pose_embed_dim)
        return self.pose_mlp(emb.to(self.dictionary.dtype))

    def forward(self, tokens: torch.Tensor, angles: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Identity tokens (B, N, dim) + angles -> (global representation (B, dim), dictionary weights (B, K))."""
        x = tokens.to(self.dictionary.dtype)
        if angles is not None:
            x = x + self.pose_embedding(angles.to(x.device))[:, None]
        corr = x @ self.dictionary.t() / math.sqrt(self.dim)  # (B, N, K)
        weights = F.softmax(corr.amax(dim=1).float(), dim=-1).to(x.dtype)
        return weights @ self.dictionary, weights

    def info_nce(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Symmetric InfoNCE over a batch: ``a[i]`` and ``b[i]`` (two poses of one identity) are positives."""
        a, b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
        logits = self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp() * a @ b.t()
        labels = torch.arange(a.shape[0], device=a.device)
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))

    @property
    def temperature(self) -> float:
        return float(1.0 / self.logit_scale.detach().clamp(max=MAX_LOGIT_SCALE).exp())
