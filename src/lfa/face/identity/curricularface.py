"""CurricularFace IR-101 (PyTorch, user-supplied weights): 112x112 aligned RGB -> 512-d."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lfa.face.align import ARCFACE_112
from lfa.face.embedding import l2_normalize
from lfa.face.nets.irse import load_ir_backbone, preprocess_ir


class CurricularFaceEncoder:
    name = "curricularface"
    template = ARCFACE_112

    def __init__(self, model_path: Path, *, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.net = load_ir_backbone(model_path).to(self.device).eval()

    @torch.inference_mode()
    def embed_aligned(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, 512), np.float32)
        out = self.net(preprocess_ir(np.asarray(crops)).to(self.device))
        return l2_normalize(out.float().cpu().numpy())


def check_model(path: Path) -> None:
    load_ir_backbone(path)
