"""Identity-embedding arithmetic, in one place."""

from __future__ import annotations

import numpy as np


def l2_normalize(x: np.ndarray, axis: int = -1, eps: float = 1e-12) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), eps)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of the last axis; broadcasts like ``a @ b.T`` for 2-D inputs."""
    a, b = l2_normalize(a), l2_normalize(b)
    return a @ b.T if a.ndim == 2 and b.ndim == 2 else np.sum(a * b, axis=-1)
