"""Wan VAE latents of still images (face crops, reference views), normalised as Wan's pipelines do."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lfa.errors import ConfigError


@torch.no_grad()
def encode_images(vae: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) or (B, K, 3, H, W) in [-1, 1] -> normalised latents (B, z, K, H/s, W/s).

    Each image is encoded as a one-frame video (Wan's causal VAE encodes a first frame alone), so
    views never leak into each other. ``(latent - latents_mean) / latents_std`` as the Wan pipelines.
    """
    if images.ndim == 4:
        images = images[:, None]
    if images.ndim != 5 or images.shape[2] != 3:
        raise ConfigError(f"expected images (B, 3, H, W) or (B, K, 3, H, W), got {tuple(images.shape)}",
                          "pass RGB tensors scaled to [-1, 1]")
    b, k = images.shape[:2]
    param = next(vae.parameters())
    frames = images.reshape(b * k, 3, 1, *images.shape[-2:]).to(param.device, param.dtype)
    latents = encode_video(vae, frames)  # (B*K, z, 1, h, w)
    z = latents.shape[1]
    return latents.reshape(b, k, z, *latents.shape[-2:]).permute(0, 2, 1, 3, 4).contiguous()


@torch.no_grad()
def encode_video(vae: nn.Module, video: torch.Tensor) -> torch.Tensor:
    """(B, 3, F, H, W) in [-1, 1], F = 4n+1 -> normalised latents (B, z, n+1, H/s, W/s) (s = 8, or 16 for
    Wan2.2's VAE), as the Wan pipelines:
    ``(latent - latents_mean) / latents_std`` (the posterior's mode, no sampling)."""
    param = next(vae.parameters())
    latents = vae.encode(video.to(param.device, param.dtype)).latent_dist.mode()
    z = latents.shape[1]
    mean = torch.tensor(vae.config.latents_mean, device=latents.device, dtype=latents.dtype).view(1, z, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, device=latents.device, dtype=latents.dtype).view(1, z, 1, 1, 1)
    return (latents - mean) / std


def patchify(latents: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, z, h, w) -> (B, (h/p)(w/p), z*p*p) tokens, row-major over patches."""
    b, z, h, w = latents.shape
    if h % patch or w % patch:
        raise ConfigError(f"latent size {h}x{w} is not divisible by the detail patch {patch}",
                          "use a detail_size that is a multiple of the VAE's pixels per cell (8; 16 for Wan2.2's "
                          "VAE) times detail_patch")
    x = F.pixel_unshuffle(latents, patch)  # (B, z*p*p, h/p, w/p)
    return x.flatten(2).transpose(1, 2)
