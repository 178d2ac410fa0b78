"""A face's surroundings kept from a frame, so that its pose can be measured after the frame is gone.

Curation detects faces on every sampled frame but measures pose only on the faces it needs (the main
track of a clip, known once the whole shot is tracked). A patch is the square of ``PATCH_SCALE`` x the
box's longer side around the face, clipped to the frame: it contains every crop the pose backends take
(MediaPipe 1.8x the box, WHENet the box grown by 0.4 of its width and 0.2 of its height), and clipping
at the frame's edges keeps their edge handling unchanged, so full-resolution patches give the same
angles as the frame. Patches larger than ``PATCH_MAX_SIDE`` are scaled down (the backends' inputs are
256 and 224 px), which bounds memory at ~0.3 MB a face.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


PATCH_SCALE = 2.0
PATCH_MAX_SIDE = 320


@dataclass
class FacePatch:
    image: np.ndarray  # RGB uint8
    offset: np.ndarray  # (2,) the patch's top-left corner in frame pixels
    scale: float  # patch pixels per frame pixel (<= 1)

    def to_patch(self, points: np.ndarray) -> np.ndarray:
        """Frame (x, y[, z]) -> patch coordinates (z scales with x and y)."""
        pts = np.array(points, np.float32, copy=True)
        pts[..., :2] -= self.offset
        return pts * self.scale

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        pts = np.array(points, np.float32, copy=True) / self.scale
        pts[..., :2] += self.offset
        return pts


def cut_patch(image: np.ndarray, box: np.ndarray, scale: float = PATCH_SCALE,
              max_side: int = PATCH_MAX_SIDE) -> FacePatch:
    x0, y0, x1, y1 = (float(v) for v in box)
    half = max(x1 - x0, y1 - y0) * scale / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    h, w = image.shape[:2]
    left, top = max(0, int(np.floor(cx - half))), max(0, int(np.floor(cy - half)))
    right, bottom = min(w, int(np.ceil(cx + half))), min(h, int(np.ceil(cy + half)))
    patch = image[top:bottom, left:right]
    factor = min(1.0, max_side / max(patch.shape[:2], default=1))
    if factor < 1.0:
        size = (max(1, round(patch.shape[1] * factor)), max(1, round(patch.shape[0] * factor)))
        patch = cv2.resize(patch, size, interpolation=cv2.INTER_AREA)
    return FacePatch(np.ascontiguousarray(patch), np.array([left, top], np.float32), factor)
