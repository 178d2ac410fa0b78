"""Per-face image measurements that do not need a model."""

from __future__ import annotations

import cv2
import numpy as np

SHARPNESS_SIZE = 128


def face_crop(image: np.ndarray, box: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, tuple[int, int]]:
    """Crop a square of side ``scale * max(w, h)`` around ``box``, padded with edge pixels when it
    leaves the frame. Returns the crop and its top-left corner in image coordinates."""
    x0, y0, x1, y1 = [float(v) for v in box]
    side = max(x1 - x0, y1 - y0) * scale
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    size = max(int(round(side)), 1)
    h, w = image.shape[:2]
    pad = max(0, -left, -top, left + size - w, top + size - h)
    src = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else image
    crop = src[top + pad : top + pad + size, left + pad : left + pad + size]
    return crop, (left, top)


def sharpness(image: np.ndarray, box: np.ndarray) -> float:
    """Variance of the Laplacian of the face box resized to 128 px: comparable across face sizes."""
    crop, _ = face_crop(image, box)
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if crop.ndim == 3 else crop
    gray = cv2.resize(gray, (SHARPNESS_SIZE, SHARPNESS_SIZE), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def area_ratio(box: np.ndarray, width: int, height: int) -> float:
    """Area of the box clipped to the frame, as a fraction of the frame."""
    x0, y0, x1, y1 = np.clip(box, [0, 0, 0, 0], [width, height, width, height])
    return float(max(0.0, x1 - x0) * max(0.0, y1 - y0) / (width * height))
