"""YuNet (OpenCV Zoo) through ``cv2.FaceDetectorYN``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lfa.face.types import Detection


class YuNetDetector:
    name = "yunet"

    def __init__(self, model_path: Path, *, score_threshold: float = 0.6, nms_threshold: float = 0.3,
                 max_side: int = 640) -> None:
        self.max_side = max_side
        self._net = cv2.FaceDetectorYN.create(str(model_path), "", (320, 320), score_threshold, nms_threshold, 5000)

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else image
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = self._net.detect(bgr)
        out = []
        for row in rows if rows is not None else []:
            x, y, bw, bh = row[:4] / scale
            out.append(Detection(np.array([x, y, x + bw, y + bh], np.float32), float(row[14]),
                                 (row[4:14].reshape(5, 2) / scale).astype(np.float32)))
        return sorted(out, key=lambda d: -d.score)


def check_model(path: Path) -> None:
    YuNetDetector(path).detect(np.zeros((64, 64, 3), np.uint8))
