"""Frames for a Wan base: fitted to a bucket (centre crop to its aspect ratio, then resize), as tensors in
[-1, 1], and the first-frame condition of an image-to-video base. Training and generation both use these.

The first-frame condition, as diffusers' ``WanImageToVideoPipeline`` builds it:

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


def bucket_crop(h: int, w: int, height: int, width: int) -> tuple[int, int, int, int]:
    """(y, x, crop height, crop width) of the centre crop of an h x w image with the bucket's aspect ratio."""
    scale = max(height / h, width / w)
    ch, cw = min(h, round(height / scale)), min(w, round(width / scale))
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def fit_to_bucket(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre-crop to the bucket's aspect ratio, then resize (area) to (height, width)."""
    import cv2

    y, x, ch, cw = bucket_crop(*image.shape[:2], height, width)
    crop = image[y: y + ch, x: x + cw]
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)


def to_video_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """RGB uint8 frames (F, H, W, 3) -> (3, F, H, W) float in [-1, 1]."""
    arr = np.stack(images).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(3, 0, 1, 2).contiguous()


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
