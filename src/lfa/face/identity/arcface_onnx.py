"""InsightFace ArcFace recognisers in ONNX (user-supplied): 112x112 aligned RGB -> 512-d."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from lfa.errors import ModelLoadError
from lfa.face.align import ARCFACE_112
from lfa.face.embedding import l2_normalize
from lfa.face.onnx_session import open_session


def _has_builtin_normalisation(path: Path) -> bool:
    """InsightFace's rule (``model_zoo/arcface_onnx.py``): a graph whose first 8 nodes include one *named*
    ``Sub…``/``_minus…`` and one named ``Mul…``/``_mul…`` (the MXNet exports) normalises inside the graph, so
    it is fed 0–255 pixels (mean 0, std 1); any other graph gets ``(x - 127.5) / 127.5``."""
    graph = onnx.load(str(path), load_external_data=False).graph
    names = [n.name for n in graph.node[:8]]
    find_sub = any(n.startswith(("Sub", "_minus")) for n in names)
    find_mul = any(n.startswith(("Mul", "_mul")) for n in names)
    return find_sub and find_mul


class ArcFaceOnnxEncoder:
    name = "arcface"
    template = ARCFACE_112

    def __init__(self, model_path: Path) -> None:
        self.session = open_session(model_path, "ArcFace recogniser")
        inp = self.session.get_inputs()[0]
        if len(inp.shape) != 4 or inp.shape[2:] != [112, 112]:
            raise ModelLoadError(f"{model_path} takes input {inp.shape}; an ArcFace model takes (N, 3, 112, 112)",
                                 "pass an InsightFace recognition model such as w600k_r50.onnx or glintr100.onnx")
        self.input_name = inp.name
        self.mean, self.std = (0.0, 1.0) if _has_builtin_normalisation(model_path) else (127.5, 127.5)
        self.batch_fixed = isinstance(inp.shape[0], int) and inp.shape[0] == 1

    def embed_aligned(self, crops: np.ndarray) -> np.ndarray:
        blob = ((np.asarray(crops, np.float32) - self.mean) / self.std).transpose(0, 3, 1, 2)
        if self.batch_fixed:
            out = np.concatenate([self.session.run(None, {self.input_name: b[None]})[0] for b in blob])
        else:
            out = self.session.run(None, {self.input_name: blob})[0]
        return l2_normalize(out.reshape(len(crops), -1))


def check_model(path: Path) -> None:
    ArcFaceOnnxEncoder(path).embed_aligned(np.zeros((1, 112, 112, 3), np.uint8))
