"""WHENet's input and output without PyTorch: the crop, the preprocessing, bins to angles, and the
network on ONNX Runtime. Curation's workers run WHENet through this module only, so they never import
torch (~2 s of each worker's start-up); the PyTorch model and its export live in
:mod:`lfa.face.nets.whenet`.

Input (the upstream video demo, ``process_detection``): the face box grown by a tenth of its height
at the top and at the bottom and by a fifth of its width left and right, each edge clipped to the
image before the next is computed, edges truncated to int, resized to 224x224 with bilinear
interpolation, RGB / 255, ImageNet mean/std. Output: yaw over 120 bins of 3° covering ±180°, pitch and
roll over 66 bins of 3° covering ±99°; angles are the softmax expectation over the bins.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
YAW_BINS, PR_BINS, BIN_DEG = 120, 66, 3.0
YAW_OFFSET, PR_OFFSET = 180.0, 99.0
ONNX_GRAPH = "g3"  # bumped when the exported graph changes (g2: constant paddings; g3: paddings in the convs)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def expected_angle(logits: np.ndarray, offset: float) -> np.ndarray:
    """Softmax expectation over the bins, in degrees (WHENet's convention)."""
    prob = _softmax(logits)
    return (prob * np.arange(prob.shape[-1])).sum(-1) * BIN_DEG - offset


def yaw_confidence(logits: np.ndarray, yaw_deg: np.ndarray, window_deg: float = 20.0) -> np.ndarray:
    """Softmax mass of the yaw bins within ``window_deg`` of the expectation: low when the
    distribution is split (a front/back ambiguity), near 1 when it is one peak."""
    prob = _softmax(logits)
    centres = np.arange(prob.shape[-1]) * BIN_DEG - YAW_OFFSET
    near = np.abs(centres[None, :] - np.reshape(yaw_deg, (-1, 1))) <= window_deg
    return (prob.reshape(near.shape) * near).sum(-1)


def to_lfa_angles(yaw: float, pitch: float, roll: float) -> tuple[float, float, float]:
    """WHENet (300W-LP) angles -> lfa (yaw, pitch, roll): yaw and roll change sign."""
    return -yaw, pitch, -roll


def crop_box(box: np.ndarray | tuple[float, ...], width: int, height: int) -> tuple[int, int, int, int]:
    """The upstream demo's enlarged crop (x0, y0, x1, y1) of a face box, clipped to the image."""
    x0, y0, x1, y1 = (float(v) for v in box)
    y0 = max(0.0, y0 - abs(y0 - y1) / 10)
    y1 = min(float(height), y1 + abs(y0 - y1) / 10)
    x0 = max(0.0, x0 - abs(x0 - x1) / 5)
    x1 = min(float(width), x1 + abs(x0 - x1) / 5)
    return int(x0), int(y0), int(x1), int(y1)


def preprocess(crops_rgb_uint8: list[np.ndarray]) -> np.ndarray:
    """RGB uint8 crops of any size -> (N, 3, 224, 224) float32, normalised."""
    batch = np.stack([cv2.resize(c, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR) for c in crops_rgb_uint8])
    x = batch.astype(np.float32) / np.float32(255.0)
    x = (x - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def onnx_path_for(weights: str | os.PathLike[str]) -> Path:
    """Where the ONNX graph exported from ``weights`` is cached (:func:`lfa.face.onnx_session.graph_path`)."""
    from lfa.face.onnx_session import graph_path

    return graph_path(weights, ONNX_GRAPH)


class WHENetOnnx:
    """WHENet on ONNX Runtime: (N, 3, 224, 224) float32 -> yaw, pitch, roll logits as numpy arrays, the
    same as :class:`lfa.face.nets.whenet.WHENet` gives (to ~1e-5) and ~2x faster on CPU
    (bench/whenet_runtime.py). ``graph``: an export of the verified safetensors
    (:func:`lfa.face.pose.whenet.prepare_graph` makes it, the only step that needs PyTorch; ``lfa models
    fetch`` runs it). ``threads``: see :func:`lfa.face.onnx_session.open_session`."""

    def __init__(self, graph: str | os.PathLike[str], threads: int | None = None) -> None:
        from lfa.face.onnx_session import open_session

        self.session = open_session(Path(graph), "WHENet", threads=threads)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        yaw, pitch, roll = self.session.run(None, {"image": np.ascontiguousarray(x, np.float32)})
        return yaw, pitch, roll
