"""Pose-shared identity aligner (FaithfulFaces).

Head Euler angles are embedded like diffusion timesteps and added to the face tokens; the tokens
are correlated with a learnable pose-shared dictionary, the correlations max-pooled over tokens and
soft-maxed into dictionary weights, and the weighted sum of entries is a global face representation.
A symmetric InfoNCE (learnable temperature) pulls together the representations of two poses of the
same person. The representation joins the face tokens as one extra token, layer-normed like the
resampled face tokens (:meth:`PoseSharedAligner.token`).

Its input is either the resampled identity tokens (``aligner_input='identity'``) or, as in
FaithfulFaces, the face-image token embeddings of the semantic encoder, which carry the pose
(``aligner_input='image'``; the aligner then has its own input projection).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import get_timestep_embedding
from torch import nn

from lfa.errors import ConfigError

MAX_LOGIT_SCALE = math.log(100.0)


class PoseSharedAligner(nn.Module):
    def __init__(self, dim: int, dictionary_size: int = 4096, pose_embed_dim: int = 256,
                 temperature: float = 0.07, in_dim: int | None = None) -> None:
        super().__init__()
        self.dim, self.pose_embed_dim = dim, pose_embed_dim
        self.proj_in = nn.Linear(in_dim, dim) if in_dim else None
        self.pose_mlp = nn.Sequential(nn.Linear(3 * pose_embed_dim, 2 * pose_embed_dim), nn.SiLU(),
                                      nn.Linear(2 * pose_embed_dim, dim))
        self.dictionary = nn.Parameter(torch.randn(dictionary_size, dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        self.token_norm = nn.LayerNorm(dim)  # on the generator side: trained by the flow-matching loss

    def pose_embedding(self, angles: torch.Tensor) -> torch.Tensor:
        """(B, 3) degrees (yaw, pitch, roll) -> (B, dim): sinusoids per angle, concatenated, then the MLP."""
        flat = angles.float().reshape(-1)
        emb = get_timestep_embedding(flat, self.pose_embed_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        emb = emb.reshape(angles.shape[0], 3 * self.pose_embed_dim)
        return self.pose_mlp(emb.to(self.dictionary.dtype))

    def forward(self, tokens: torch.Tensor, angles: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Face tokens (B, N, in_dim or dim) + angles (B, 3) -> (representation (B, dim), weights (B, K))."""
        if angles is None:
            raise ConfigError("the pose-shared aligner needs head angles and none were given",
                              "pass FaceInputs.angles / FaceFeatures.angles (lfa.face.angles), or set aligner=false")
        x = tokens.to(self.dictionary.dtype)
        if self.proj_in is not None:
            x = self.proj_in(x)
        x = x + self.pose_embedding(angles.to(x.device))[:, None]
        corr = x @ self.dictionary.t() / math.sqrt(self.dim)  # (B, N, K)
        weights = F.softmax(corr.amax(dim=1).float(), dim=-1).to(x.dtype)
        return weights @ self.dictionary, weights

    def token(self, representation: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        """The representation as one face token (B, 1, dim), normalised like the resampled face tokens.

        ``stop_gradient``: the generator's loss stops here and never reaches the aligner (FaithfulFaces).
        """
        x = representation.detach() if stop_gradient else representation
        return self.token_norm(x)[:, None]

    def info_nce(self, a: torch.Tensor, b: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """Symmetric InfoNCE over a batch: ``a[i]`` and ``b[i]`` (two poses of one identity) are positives;
        ``groups`` (B,): rows of one person, left out of each other's negatives."""
        a, b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
        logits = self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp() * a @ b.t()
        if groups is not None:
            groups = groups.to(logits.device)
            same = (groups[:, None] == groups[None, :]) & ~torch.eye(len(groups), dtype=torch.bool,
                                                                      device=logits.device)
            logits = logits.masked_fill(same, float("-inf"))
        labels = torch.arange(a.shape[0], device=a.device)
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))

    @property
    def temperature(self) -> float:
        return float(1.0 / self.logit_scale.detach().clamp(max=MAX_LOGIT_SCALE).exp())
