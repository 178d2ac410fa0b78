"""dlib's ResNet face recogniser (128-d), the offline default identity model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lfa.face.align import DLIB_150
from lfa.face.embedding import l2_normalize


class DlibResNetEncoder:
    name = "dlib_resnet"
    template = DLIB_150

    def __init__(self, model_path: Path) -> None:
        import dlib

        self._net = dlib.face_recognition_model_v1(str(model_path))

    def embed_aligned(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, 128), np.float32)
        chips = [np.ascontiguousarray(c) for c in crops]
        return l2_normalize(np.array(self._net.compute_face_descriptor(chips), np.float32))


def check_model(path: Path) -> None:
    out = DlibResNetEncoder(path).embed_aligned(np.zeros((1, 150, 150, 3), np.uint8))
    assert out.shape == (1, 128)
