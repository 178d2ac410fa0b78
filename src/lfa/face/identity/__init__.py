"""Identity encoders: aligned crops (one template each, :mod:`lfa.face.align`) to L2-normalised embeddings."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from lfa.face.align import FaceTemplate, align_face


class IdentityEncoder(Protocol):
    name: str
    template: FaceTemplate

    def embed_aligned(self, crops: np.ndarray) -> np.ndarray:
        """(N, size, size, 3) RGB uint8 aligned crops -> (N, D) L2-normalised float32."""
        ...


def embed_faces(encoder: IdentityEncoder, image: np.ndarray, landmarks5: list[np.ndarray]) -> np.ndarray:
    """Align every face of ``image`` with the encoder's template and embed them in one batch."""
    if not landmarks5:
        return np.zeros((0, 0), np.float32)
    crops = np.stack([align_face(image, lm, encoder.template) for lm in landmarks5])
    return encoder.embed_aligned(crops)
