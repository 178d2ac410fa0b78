"""Rectified-flow training helpers in Wan's convention.

``x_t = (1 - sigma) * x_0 + sigma * noise``, the transformer predicts the velocity
``noise - x_0``, and its timestep is ``sigma * 1000`` (diffusers' flow-match schedulers for Wan).
Sigmas are drawn uniform or logit-normal, then shifted like Wan's sampler shifts them:
``sigma' = s * sigma / (1 + (s - 1) * sigma)``. A ``sigma_range`` truncates that distribution (a Wan2.2
A14B expert trains on its own side of the boundary): drawn exactly, by inverting the CDF, not by rejection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lfa.errors import ConfigError

NUM_TRAIN_TIMESTEPS = 1000
SAMPLINGS = ("uniform", "logit_normal")


@dataclass(frozen=True)
class FlowMatchingConfig:
    """How training draws noise levels. ``shift`` 1 = no shift; Wan2.1 samples 480p with 3, 720p with 5."""

    sampling: str = "logit_normal"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    shift: float = 3.0
    sigma_range: tuple[float, float] = (0.0, 1.0)  # draws truncated to [lo, hi)

    def __post_init__(self) -> None:
        lo, hi = self.sigma_range
        if not 0.0 <= lo < hi <= 1.0:
            raise ConfigError(f"sigma_range must satisfy 0 <= lo < hi <= 1, got {self.sigma_range}",
                              "use e.g. (0.875, 1.0)")
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"unknown timestep sampling {self.sampling!r}", f"use one of: {', '.join(SAMPLINGS)}")
        if not self.shift > 0:
            raise ConfigError(f"shift must be > 0, got {self.shift}", "use 1 (none) or Wan's 3 (480p) / 5 (720p)")
        if not self.logit_std > 0:
            raise ConfigError(f"logit_std must be > 0, got {self.logit_std}", "use 1.0")


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """``s * sigma / (1 + (s - 1) * sigma)``: more steps at high noise for s > 1; identity at s = 1."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def sample_sigmas(batch: int, config: FlowMatchingConfig = FlowMatchingConfig(), *,
                  generator: torch.Generator | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """(batch,) noise levels in (0, 1), drawn per ``config`` and shifted."""
    if tuple(config.sigma_range) != (0.0, 1.0):
        return _truncated(batch, config, generator).to(device)
    if config.sampling == "uniform":
        u = torch.rand(batch, generator=generator)
    else:
        u = torch.sigmoid(torch.randn(batch, generator=generator) * config.logit_std + config.logit_mean)
    return shift_sigmas(u, config.shift).to(device)


def unshift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """The inverse of :func:`shift_sigmas`."""
    return sigmas / (shift - (shift - 1) * sigmas)


def _truncated(batch: int, config: FlowMatchingConfig, generator: torch.Generator | None) -> torch.Tensor:
    """Draws of the shifted distribution conditioned on ``sigma_range``: u in the matching interval."""
    lo, hi = (float(unshift_sigmas(torch.tensor(v, dtype=torch.float64), config.shift)) for v in config.sigma_range)
    r = torch.rand(batch, generator=generator, dtype=torch.float64)
    if config.sampling == "uniform":
        u = lo + r * (hi - lo)
    else:  # u = sigmoid(n * std + mean), n standard normal: truncate n through its CDF
        def cdf(v: float) -> float:
            if v <= 0.0:
                return 0.0
            if v >= 1.0:
                return 1.0
            n = (math.log(v / (1 - v)) - config.logit_mean) / config.logit_std
            return 0.5 * (1 + math.erf(n / math.sqrt(2)))

        a, b = cdf(lo), cdf(hi)
        p = (a + r * (b - a)).clamp(1e-12, 1 - 1e-12)
        n = torch.special.ndtri(p)
        u = torch.sigmoid(n * config.logit_std + config.logit_mean)
    return shift_sigmas(u.clamp(lo, hi), config.shift).float().clamp(*config.sigma_range)


def add_noise(latents: torch.Tensor, noise: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """``(1 - sigma) * latents + sigma * noise``, sigma per sample."""
    s = sigmas.to(latents.device, torch.float32).reshape(-1, *([1] * (latents.ndim - 1)))
    return ((1 - s) * latents.float() + s * noise.float()).to(latents.dtype)


def flow_target(latents: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The velocity the transformer predicts: ``noise - latents``."""
    return noise - latents


def timesteps(sigmas: torch.Tensor) -> torch.Tensor:
    """Wan's transformer timestep for each noise level: ``sigma * 1000``."""
    return sigmas.float() * NUM_TRAIN_TIMESTEPS
