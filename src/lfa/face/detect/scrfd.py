"""InsightFace SCRFD detector (ONNX, user-supplied): anchor-free distances on strides 8/16/32."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lfa.errors import ModelLoadError
from lfa.face.onnx_session import open_session
from lfa.face.types import Detection

STRIDES = (8, 16, 32)
ANCHORS_PER_CELL = 2


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    order = np.argsort(-scores)
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i = int(order[0])
        keep.append(i)
        xx0 = np.maximum(boxes[i, 0], boxes[order[1:], 0])
        yy0 = np.maximum(boxes[i, 1], boxes[order[1:], 1])
        xx1 = np.minimum(boxes[i, 2], boxes[order[1:], 2])
        yy1 = np.minimum(boxes[i, 3], boxes[order[1:], 3])
        inter = np.clip(xx1 - xx0, 0, None) * np.clip(yy1 - yy0, 0, None)
        iou = inter / (areas[i] + areas[order[1:]] - inter + 1e-9)
        order = order[1:][iou <= iou_threshold]
    return keep


class SCRFDDetector:
    name = "scrfd"

    def __init__(self, model_path: Path, *, score_threshold: float = 0.5, nms_threshold: float = 0.4,
                 input_size: int = 640) -> None:
        self.session = open_session(model_path, "SCRFD detector")
        outputs = self.session.get_outputs()
        if len(outputs) != 9:
            raise ModelLoadError(
                f"{model_path} has {len(outputs)} outputs; an SCRFD model with keypoints has 9",
                "use an SCRFD '_kps' model such as det_10g.onnx (buffalo_l) or scrfd_10g_bnkps.onnx",
            )
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        fixed = inp.shape[2:4]
        self.input_size = (fixed[1], fixed[0]) if all(isinstance(v, int) for v in fixed) else (input_size, input_size)
        self.output_names = [o.name for o in outputs]
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold

    def detect(self, image: np.ndarray) -> list[Detection]:
        in_w, in_h = self.input_size
        h, w = image.shape[:2]
        scale = min(in_w / w, in_h / h)
        nw, nh = int(w * scale), int(h * scale)
        canvas = np.zeros((in_h, in_w, 3), np.uint8)
        canvas[:nh, :nw] = cv2.resize(image, (nw, nh))
        blob = ((canvas.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None]  # RGB, NCHW
        outs = [o.reshape(-1, o.shape[-1]) for o in self.session.run(self.output_names, {self.input_name: blob})]
        boxes, scores, kps = [], [], []
        for i, stride in enumerate(STRIDES):
            gh, gw = in_h // stride, in_w // stride
            centers = np.stack(np.mgrid[:gh, :gw][::-1], axis=-1).reshape(-1, 2).astype(np.float32) * stride
            centers = np.repeat(centers, ANCHORS_PER_CELL, axis=0)
            score = outs[i][:, 0]
            hit = score >= self.score_threshold
            dist = outs[i + 3][hit] * stride
            c = centers[hit]
            boxes.append(np.concatenate([c - dist[:, :2], c + dist[:, 2:]], axis=1))
            kps.append((c[:, None, :] + (outs[i + 6][hit] * stride).reshape(-1, 5, 2)))
            scores.append(score[hit])
        all_boxes = np.concatenate(boxes) / scale
        all_scores = np.concatenate(scores)
        all_kps = np.concatenate(kps) / scale
        keep = nms(all_boxes, all_scores, self.nms_threshold)
        return [Detection(all_boxes[k].astype(np.float32), float(all_scores[k]), all_kps[k].astype(np.float32))
                for k in keep]


def check_model(path: Path) -> None:
    SCRFDDetector(path).detect(np.zeros((64, 64, 3), np.uint8))
