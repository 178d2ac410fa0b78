"""6DRepNet head pose (user-supplied weights) on the face box enlarged as the official demo does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lfa.face.nets.sixdrepnet import (
    euler_from_rotation,
    expand_face_box,
    load_sixdrepnet,
    preprocess_sixdrepnet,
    to_lfa_angles,
)
from lfa.face.types import Detection, HeadPose


class SixDRepNetPose:
    name = "sixdrepnet"
    missing_reason = "the face box is too small to crop"

    def __init__(self, model_path: Path, *, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.net = load_sixdrepnet(model_path).to(self.device)

    @torch.inference_mode()
    def estimate(self, image: np.ndarray, detection: Detection) -> HeadPose | None:
        h, w = image.shape[:2]
        x0, y0, x1, y1 = (int(round(v)) for v in expand_face_box(*detection.box, w, h))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        rotation = self.net(preprocess_sixdrepnet(image[y0:y1, x0:x1]).to(self.device))
        pitch, yaw, roll = (float(np.asarray(v).reshape(-1)[0]) for v in euler_from_rotation(rotation.cpu()))
        return HeadPose(*to_lfa_angles(pitch, yaw, roll), source="sixdrepnet")


def check_model(path: Path) -> None:
    load_sixdrepnet(path)
