"""The first-frame condition of a Wan image-to-video base, as diffusers' ``WanImageToVideoPipeline`` builds it.

``condition`` (4 + z, F', h, w): the frame mask (first latent frame known) and the VAE latents of the
first frame followed by black frames, normalised; ``image_embeds`` (N, D): the CLIP vision tokens
(penultimate layer) of the first frame, when the base has an image encoder (Wan2.1 I2V). Training caches
both per sample (the window's first frame); generation builds them from ``--image`` (default: the first
face photo), fitted to the video's size the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


@torch.no_grad()
def first_frame_condition(pipe: Any, image: np.ndarray, num_frames: int) -> dict[str, torch.Tensor]:
    """``{"condition": (4 + z, F', h, w)[, "image_embeds": (N, D)]}`` of one RGB uint8 frame at the video's size."""
    height, width = image.shape[:2]
    device = next(pipe.vae.parameters()).device
    pixels = torch.from_numpy(np.ascontiguousarray(image)).float().div(127.5).sub(1.0).permute(2, 0, 1)[None]
    _, condition = pipe.prepare_latents(pixels, 1, pipe.vae.config.z_dim, height, width, num_frames, torch.float32,
                                        device, torch.Generator("cpu").manual_seed(0))
    out = {"condition": condition[0].float().cpu().contiguous()}
    if pipe.image_encoder is not None:
        out["image_embeds"] = pipe.encode_image(image, device)[0].float().cpu().contiguous()
    return out
