"""Image features for the face-distribution distance: a user-supplied Inception network in ONNX.

Contract of the ONNX file: input ``(N, 3, H, W)`` float32 RGB with values in ``[0, 1]`` (``H``/``W``
from the model when fixed, else 299); first output ``(N, D)`` or ``(N, D, 1, 1)``. pytorch-fid's
``InceptionV3([3])`` (pool3, 2048-d, it resizes and normalises inside) exported with
``torch.onnx.export`` fits it. lfa never downloads it.

Face crops are aligned on the ArcFace template at 224 px (what ConsisID and OpenS2V feed their
feature networks) and resized to the network's input size.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lfa.errors import ModelLoadError, ModelMissingError
from lfa.face.align import ARCFACE_112, FaceTemplate, align_face

FACE_CROP = ARCFACE_112.scaled(224)
DEFAULT_SIZE = 299


class OnnxFeatureExtractor:
    """Runs an image-feature network (Inception for FID) on RGB uint8 crops."""

    def __init__(self, path: str | Path, *, name: str = "inception", threads: int | None = None) -> None:
        from lfa.face.onnx_session import open_session

        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise ModelMissingError(f"feature network not found: {self.path}",
                                    "pass an ONNX export of Inception (pool3 features), see docs/BENCH.md")
        if self.path.suffix.lower() != ".onnx":
            raise ModelLoadError(f"{self.path}: the feature network must be an ONNX file",
                                 "export it with torch.onnx.export (docs/BENCH.md shows how)")
        self.name = name
        self.session = open_session(self.path, "feature network", threads=threads)
        inp = self.session.get_inputs()[0]
        if len(inp.shape) != 4 or inp.shape[1] not in (3, "3"):
            raise ModelLoadError(f"{self.path} takes input {inp.shape}; expected (N, 3, H, W)",
                                 "export the network with an NCHW RGB image input")
        self.input_name = inp.name
        h, w = inp.shape[2], inp.shape[3]
        self.size = (int(w), int(h)) if isinstance(h, int) and isinstance(w, int) else (DEFAULT_SIZE, DEFAULT_SIZE)
        self.batch_fixed = isinstance(inp.shape[0], int) and inp.shape[0] == 1

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """(N, h, w, 3) RGB uint8 -> (N, D) float32 features."""
        crops = np.asarray(crops)
        if len(crops) == 0:
            return np.zeros((0, 0), np.float32)
        resized = np.stack([cv2.resize(c, self.size, interpolation=cv2.INTER_LINEAR) for c in crops])
        blob = (resized.astype(np.float32) / 255.0).transpose(0, 3, 1, 2)
        if self.batch_fixed:
            out = np.concatenate([self.session.run(None, {self.input_name: b[None]})[0] for b in blob])
        else:
            out = self.session.run(None, {self.input_name: blob})[0]
        return np.asarray(out, np.float32).reshape(len(crops), -1)

    def sha256(self) -> str:
        from lfa.registry.store import sha256_file

        return sha256_file(self.path)


def face_crop_224(image: np.ndarray, landmarks5: np.ndarray, template: FaceTemplate = FACE_CROP) -> np.ndarray:
    """The aligned face crop the feature network sees (lfa's one alignment, 224 px)."""
    return align_face(image, landmarks5, template)
