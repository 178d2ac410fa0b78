"""The one 5-point face alignment every identity backend uses.

Landmark order everywhere in lfa (InsightFace's): eye on the image's left, eye on the image's
right, nose tip, mouth corner on the image's left, mouth corner on the image's right.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class FaceTemplate:
    """Where the 5 landmarks land in an aligned crop of ``size`` x ``size`` pixels."""

    name: str
    size: int
    points: np.ndarray

    def scaled(self, size: int) -> FaceTemplate:
        return FaceTemplate(f"{self.name}@{size}", size, self.points * (size / self.size))


ARCFACE_112 = FaceTemplate(
    "arcface",
    112,
    np.array(
        [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
        dtype=np.float64,
    ),
)
"""The ArcFace (InsightFace) template for 112x112 crops."""

DLIB_150 = FaceTemplate(
    "dlib",
    150,
    np.array([[47.6, 46.6], [100.5, 46.6], [74.0, 76.6], [50.4, 103.0], [97.6, 103.0]], dtype=np.float64),
)
"""dlib's face chip (150 px, padding 0.25): its mean face shape's eye centres, nose tip and mouth
corners mapped through ``(v + 0.25) / 1.5 * 150``, so the ResNet sees the framing it was trained on."""


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """d x (d+1) least-squares similarity (rotation, uniform scale, translation) mapping src to dst (Umeyama), for
    (N, d) points: 2x3 for image points, 3x4 for 3-D landmarks."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    dim = src.shape[1]
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(dim)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1, -1] = -1
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / s.var(0).sum()
    m = np.zeros((dim, dim + 1))
    m[:, :dim] = scale * rot
    m[:, dim] = mu_d - scale * rot @ mu_s
    return m


def align_face(image: np.ndarray, landmarks5: np.ndarray, template: FaceTemplate = ARCFACE_112) -> np.ndarray:
    """Warp ``image`` so the 5 landmarks sit on ``template``; returns a ``size`` x ``size`` crop."""
    m = similarity_transform(landmarks5, template.points)
    return cv2.warpAffine(
        image, m, (template.size, template.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
