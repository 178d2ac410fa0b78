"""Tiny ONNX models with the input/output layout of InsightFace's SCRFD and ArcFace, built by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SCRFD_BOX_CELL = (8, 4)  # (col, row) of the stride-32 cell that "fires" on a white square


def _conv(name: str, inp: str, weight: np.ndarray, bias: np.ndarray, stride: int, inits: list) -> helper.NodeProto:
    inits += [numpy_helper.from_array(weight.astype(np.float32), f"{name}_w"),
              numpy_helper.from_array(bias.astype(np.float32), f"{name}_b")]
    return helper.make_node("Conv", [inp, f"{name}_w", f"{name}_b"], [f"{name}_conv"],
                            kernel_shape=[stride, stride], strides=[stride, stride])


def _to_rows(name: str, src: str, width: int, nodes: list, inits: list) -> str:
    inits.append(numpy_helper.from_array(np.array([-1, width], np.int64), f"{name}_shape"))
    nodes.append(helper.make_node("Transpose", [src], [f"{name}_t"], perm=[0, 2, 3, 1]))
    nodes.append(helper.make_node("Reshape", [f"{name}_t", f"{name}_shape"], [name]))
    return name


def make_scrfd_onnx(path: Path) -> Path:
    """SCRFD layout (9 outputs: scores, boxes, keypoints for strides 8/16/32; 2 anchors per cell).

    Only stride 32 fires: its score is sigmoid(10 * mean brightness of the cell - 5) on the
    (x - 127.5) / 128 input, so a white 32x32 cell scores ~0.99 and black ones ~0. Boxes extend one
    stride on each side of the anchor; keypoints sit at fixed offsets.
    """
    nodes, inits, outputs = [], [], {"score": [], "bbox": [], "kps": []}
    for s in (8, 16, 32):
        fires = s == 32
        w = np.full((2, 3, s, s), 10.0 / (3 * s * s) if fires else 0.0)
        nodes.append(_conv(f"score{s}", "input.1", w, np.full(2, -5.0 if fires else -20.0), s, inits))
        nodes.append(helper.make_node("Sigmoid", [f"score{s}_conv"], [f"score{s}_sig"]))
        outputs["score"].append(_to_rows(f"score_{s}", f"score{s}_sig", 1, nodes, inits))
        nodes.append(_conv(f"bbox{s}", "input.1", np.zeros((8, 3, s, s)), np.ones(8), s, inits))
        outputs["bbox"].append(_to_rows(f"bbox_{s}", f"bbox{s}_conv", 4, nodes, inits))
        kps_bias = np.tile(np.array([-0.5, -0.3, 0.5, -0.3, 0.0, 0.1, -0.4, 0.5, 0.4, 0.5]), 2)
        nodes.append(_conv(f"kps{s}", "input.1", np.zeros((20, 3, s, s)), kps_bias, s, inits))
        outputs["kps"].append(_to_rows(f"kps_{s}", f"kps{s}_conv", 10, nodes, inits))
    names = outputs["score"] + outputs["bbox"] + outputs["kps"]
    graph = helper.make_graph(
        nodes, "scrfd_test",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path


def make_arcface_onnx(path: Path, seed: int = 0) -> Path:
    """ArcFace layout: (N, 3, 112, 112) -> (N, 512), random weights, normalisation outside the graph."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.normal(size=(8, 3, 8, 8)).astype(np.float32), "c_w"),
             numpy_helper.from_array(np.zeros(8, np.float32), "c_b"),
             numpy_helper.from_array(rng.normal(size=(8 * 14 * 14, 512)).astype(np.float32) * 0.02, "fc_w")]
    nodes = [helper.make_node("Conv", ["data", "c_w", "c_b"], ["c"], kernel_shape=[8, 8], strides=[8, 8]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"], axis=1),
             helper.make_node("MatMul", ["f", "fc_w"], ["fc1"])]
    graph = helper.make_graph(
        nodes, "arcface_test", [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["N", 512])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path
