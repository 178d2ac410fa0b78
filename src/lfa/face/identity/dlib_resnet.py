"""dlib's ResNet face recogniser (128-d), the offline default identity model.

It runs on ONNX Runtime (the same network read from dlib's .dat, :mod:`lfa.face.nets.dlib_resnet_onnx`):
dlib's prebuilt wheels have no BLAS, and ONNX Runtime is several times faster on one core
(bench/dlib_runtime.py) with the same descriptors to ~1e-6. ``runtime="dlib"`` runs dlib's C++ instead,
the reference the ONNX graph is tested against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from lfa.face.align import DLIB_150
from lfa.face.embedding import l2_normalize


class DlibResNetEncoder:
    name = "dlib_resnet"
    template = DLIB_150

    def __init__(self, model_path: Path, runtime: Literal["onnx", "dlib"] = "onnx",
                 threads: int | None = None) -> None:
        self.runtime = runtime
        if runtime == "onnx":
            from lfa.face.nets.dlib_resnet_onnx import DlibResNetOnnx

            self._onnx = DlibResNetOnnx(model_path, threads=threads)
        elif runtime == "dlib":
            import dlib

            self._dlib = dlib.face_recognition_model_v1(str(model_path))
        else:
            raise ValueError(f"runtime must be 'onnx' or 'dlib', not {runtime!r}")

    def embed_aligned(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, 128), np.float32)
        if self.runtime == "onnx":
            return l2_normalize(self._onnx(np.asarray(crops, np.uint8)))
        chips = [np.ascontiguousarray(c) for c in crops]
        return l2_normalize(np.array(self._dlib.compute_face_descriptor(chips), np.float32))


def check_model(path: Path) -> None:
    """Loads and runs the model once (`lfa models verify`), on the ONNX graph that fetch built."""
    out = DlibResNetEncoder(path).embed_aligned(np.zeros((1, 150, 150, 3), np.uint8))
    assert out.shape == (1, 128)
