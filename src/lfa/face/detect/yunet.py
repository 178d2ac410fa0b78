"""YuNet (OpenCV Zoo, 2023mar) on ONNX Runtime, with OpenCV's ``cv2.FaceDetectorYN`` decoding.

ONNX Runtime runs the network ~2x faster than OpenCV's DNN module on one core (bench/yunet_runtime.py),
so curation's detector runs there; ``runtime="opencv"`` keeps ``cv2.FaceDetectorYN``, the reference the
port is tested against (same faces, boxes to ~1e-3 px). What this module reproduces of OpenCV's
``FaceDetectorYN`` (modules/objdetect/src/face_detect.cpp): the BGR frame padded with zeros at the
right and bottom to a multiple of 32, fed as float pixels; per stride (8, 16, 32) and grid cell, score =
sqrt(clip(cls) * clip(obj)); box centre ``(cell + d) * stride``, size ``exp(d) * stride``; landmarks
``(cell + d) * stride``; NMS on the boxes truncated to integers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from lfa.face.detect import DETECT_MAX_SIDE
from lfa.face.types import Detection

STRIDES = (8, 16, 32)
PAD_MULTIPLE = 32
TOP_K = 5000
ONNX_GRAPH = "dyn1"  # the shipped graph with its 640x640 input made dynamic


class YuNetDetector:
    name = "yunet"

    def __init__(self, model_path: Path, *, score_threshold: float = 0.6, nms_threshold: float = 0.3,
                 max_side: int = DETECT_MAX_SIDE, runtime: Literal["onnx", "opencv"] = "onnx",
                 threads: int | None = None) -> None:
        self.max_side = max_side
        self.score_threshold, self.nms_threshold = score_threshold, nms_threshold
        self.runtime = runtime
        if runtime == "onnx":
            from lfa.face.onnx_session import open_session

            self._session = open_session(prepare_graph(model_path), "YuNet", threads=threads)
            self._outputs = [o.name for o in self._session.get_outputs()]
        elif runtime == "opencv":
            self._net = cv2.FaceDetectorYN.create(str(model_path), "", (320, 320), score_threshold, nms_threshold,
                                                  TOP_K)
        else:
            raise ValueError(f"runtime must be 'onnx' or 'opencv', not {runtime!r}")

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else image
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        rows = self._rows_onnx(bgr) if self.runtime == "onnx" else self._rows_opencv(bgr)
        out = []
        for row in rows:
            x, y, bw, bh = row[:4] / scale
            out.append(Detection(np.array([x, y, x + bw, y + bh], np.float32), float(row[14]),
                                 (row[4:14].reshape(5, 2) / scale).astype(np.float32)))
        return sorted(out, key=lambda d: -d.score)

    def _rows_opencv(self, bgr: np.ndarray) -> np.ndarray:
        self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = self._net.detect(bgr)
        return np.zeros((0, 15), np.float32) if rows is None else rows

    def _rows_onnx(self, bgr: np.ndarray) -> np.ndarray:
        """(N, 15) rows as ``cv2.FaceDetectorYN.detect`` gives them: x, y, w, h, 5 landmarks, score."""
        h, w = bgr.shape[:2]
        pad_h, pad_w = -(-h // PAD_MULTIPLE) * PAD_MULTIPLE, -(-w // PAD_MULTIPLE) * PAD_MULTIPLE
        blob = np.zeros((1, 3, pad_h, pad_w), np.float32)
        blob[0, :, :h, :w] = bgr.transpose(2, 0, 1)
        outputs = dict(zip(self._outputs, self._session.run(None, {"input": blob})))
        faces = [_decode(outputs, stride, pad_h // stride, pad_w // stride, self.score_threshold) for stride in STRIDES]
        rows = np.concatenate(faces) if faces else np.zeros((0, 15), np.float32)
        if len(rows) > 1:
            boxes = [[int(v) for v in r[:4]] for r in rows]  # OpenCV's Rect2i: truncated toward zero
            keep = cv2.dnn.NMSBoxes(boxes, rows[:, 14].tolist(), self.score_threshold, self.nms_threshold,
                                    eta=1.0, top_k=TOP_K)
            rows = rows[np.asarray(keep, int).reshape(-1)]
        return rows


def _decode(outputs: dict[str, np.ndarray], stride: int, rows: int, cols: int, threshold: float) -> np.ndarray:
    cls = np.clip(outputs[f"cls_{stride}"].reshape(-1), 0.0, 1.0)
    obj = np.clip(outputs[f"obj_{stride}"].reshape(-1), 0.0, 1.0)
    score = np.sqrt(cls * obj)
    idx = np.flatnonzero(score >= threshold)
    if len(idx) == 0:
        return np.zeros((0, 15), np.float32)
    r, c = (idx // cols).astype(np.float32), (idx % cols).astype(np.float32)
    bbox = outputs[f"bbox_{stride}"].reshape(-1, 4)[idx]
    kps = outputs[f"kps_{stride}"].reshape(-1, 10)[idx]
    out = np.empty((len(idx), 15), np.float32)
    cx, cy = (c + bbox[:, 0]) * stride, (r + bbox[:, 1]) * stride
    bw, bh = np.exp(bbox[:, 2]) * stride, np.exp(bbox[:, 3]) * stride
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = cx - bw / 2, cy - bh / 2, bw, bh
    out[:, 4:14:2] = (kps[:, 0::2] + c[:, None]) * stride
    out[:, 5:14:2] = (kps[:, 1::2] + r[:, None]) * stride
    out[:, 14] = score[idx]
    return out


def export_dynamic(weights: Path, path: Path) -> None:
    """The shipped graph with its fixed 640x640 input (and the outputs' cell counts) made dynamic, so that
    ONNX Runtime runs it at each frame's size as OpenCV does; written atomically."""
    import onnx

    model = onnx.load(str(weights))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in model.graph.output:
        output.type.tensor_type.shape.dim[1].dim_param = f"cells_{output.name.split('_')[-1]}"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(model.SerializeToString())
    os.replace(tmp, path)


def prepare_graph(weights: str | os.PathLike[str]) -> Path:
    """The dynamic-size graph of ``weights``, cached next to them (``lfa models fetch`` makes it)."""
    from lfa.face.onnx_session import cached_graph

    return cached_graph(weights, ONNX_GRAPH, export_dynamic)


def check_model(path: Path) -> None:
    YuNetDetector(path).detect(np.zeros((64, 64, 3), np.uint8))
