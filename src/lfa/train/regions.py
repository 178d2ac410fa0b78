"""Face regions at the latent resolution, for the face-weighted flow-matching loss (``face_loss_weight``).

A window's face boxes (source pixels, one per frame or ``None``) go through the same centre crop and
resize as its frames (:func:`bucket_crop`), then onto the VAE's latent grid: 8x8 pixels per latent cell
(16x16 for Wan2.2's VAE), and latent frame 0 = frame 0, latent frame i = frames 4i-3..4i (the causal VAE's
grouping). A cell's value
is the fraction of it the box covers (the largest over the frames of its group), so the loss weight
``1 + (face_loss_weight - 1) * mask`` is ``face_loss_weight`` inside a face and 1 outside.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lfa.wan.frames import bucket_crop

VAE_SPATIAL = 8
VAE_TEMPORAL = 4


def _coverage(lo: float, hi: float, cells: int) -> torch.Tensor:
    """Fraction of each unit cell [i, i+1) that the interval [lo, hi) covers."""
    edges = torch.arange(cells, dtype=torch.float64)
    return (torch.minimum(edges + 1, torch.tensor(hi)) - torch.maximum(edges, torch.tensor(lo))).clamp(0, 1)


def face_mask(boxes: Sequence[Sequence[float] | None], source_hw: tuple[int, int],
              bucket: tuple[int, int], *, spatial: int = VAE_SPATIAL, temporal: int = VAE_TEMPORAL) -> torch.Tensor:
    """(F', H/s, W/s) face coverage in [0, 1] of a window of ``len(boxes)`` = 4n+1 frames at ``bucket`` (H, W),
    ``spatial`` pixels per latent cell."""
    height, width = bucket
    y0, x0, ch, cw = bucket_crop(*source_hw, height, width)
    sy, sx = height / ch / spatial, width / cw / spatial  # source pixels -> latent cells
    h, w = height // spatial, width // spatial
    frames = torch.zeros(len(boxes), h, w, dtype=torch.float64)
    for i, box in enumerate(boxes):
        if box is not None:
            bx0, by0, bx1, by1 = (float(v) for v in box)
            frames[i] = torch.outer(_coverage((by0 - y0) * sy, (by1 - y0) * sy, h),
                                    _coverage((bx0 - x0) * sx, (bx1 - x0) * sx, w))
    groups = [frames[:1]] + [frames[i: i + temporal] for i in range(1, len(boxes), temporal)]
    return torch.stack([g.amax(dim=0) for g in groups]).float()


def loss_weights(mask: torch.Tensor, face_loss_weight: float) -> torch.Tensor:
    """``1 + (face_loss_weight - 1) * mask``: the per-cell weight of the flow-matching loss."""
    return 1.0 + (float(face_loss_weight) - 1.0) * mask
