"""IR / IR-SE face-recognition backbones (CurricularFace IR-101, Huang et al. 2020).

Key layout of face.evoLVe ``backbone/model_irse.py`` as copied by the official
HuangYG123/CurricularFace repository (whose released IR-101 backbone this loads):
``input_layer`` (0 conv, 1 BN, 2 PReLU), ``body.<i>`` units with ``shortcut_layer``
(``MaxPool2d(1, stride)`` when channels match, else ``0`` conv1x1 + ``1`` BN) and ``res_layer``
(0 BN, 1 conv3x3, 2 PReLU, 3 conv3x3/stride, 4 BN[, 5 SE with ``fc1``/``fc2``]), and
``output_layer`` (0 BN2d, 1 Dropout, 2 Flatten, 3 Linear(512*7*7, 512), 4 BatchNorm1d(512)).
CurricularFace and TFace use a non-affine final BatchNorm1d, face.evoLVe an affine one.

Tencent/TFace's ``BasicBlockIR`` adds a BN after the first conv (res_layer: 0 BN, 1 conv,
2 BN, 3 PReLU, 4 conv, 5 BN[, ``se_block``]); ``layout="tface"`` builds that variant (depth
50/100 only; TFace's IR-152 uses bottleneck units, not supported here).

Both train on RGB 112x112 aligned crops normalised with mean = std = 0.5.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Literal

import numpy as np
import torch
from torch import nn

from lfa.errors import ModelLoadError
from lfa.face.nets.weights import load_state_dict_file, load_strict

Mode = Literal["ir", "ir_se"]
Layout = Literal["evolve", "tface"]

# Units per stage (stage widths 64, 128, 256, 512; first unit of each stage has stride 2).
UNITS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
    152: (3, 8, 36, 3),
}
DEPTH_BY_UNIT_COUNT = {sum(v): k for k, v in UNITS.items()}
EMBEDDING_SIZE = 512


class Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)


class SEModule(nn.Module):
    """Squeeze-and-excitation with 1x1 convs ``fc1``/``fc2`` (no bias), reduction 16."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))
        return x * w


class BottleneckIR(nn.Module):
    """Improved-residual unit (``bottleneck_IR``/``bottleneck_IR_SE`` upstream)."""

    def __init__(self, cin: int, depth: int, stride: int, se: bool, layout: Layout) -> None:
        super().__init__()
        if cin == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(cin, depth, 1, stride, bias=False), nn.BatchNorm2d(depth)
            )
        layers: list[nn.Module] = [nn.BatchNorm2d(cin), nn.Conv2d(cin, depth, 3, 1, 1, bias=False)]
        if layout == "tface":
            layers.append(nn.BatchNorm2d(depth))
        layers += [nn.PReLU(depth), nn.Conv2d(depth, depth, 3, stride, 1, bias=False), nn.BatchNorm2d(depth)]
        self.res_layer = nn.Sequential(*layers)
        if se:
            # evoLVe appends SE positionally (index 5); TFace adds it as "se_block".
            self.res_layer.add_module("se_block" if layout == "tface" else str(len(layers)), SEModule(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRBackbone(nn.Module):
    """IR-50/100(=101)/152 for 112x112 input; ``forward`` returns the raw (N, 512) embedding."""

    def __init__(self, num_layers: int = 100, mode: Mode = "ir", affine_output_bn: bool = False,
                 layout: Layout = "evolve") -> None:
        super().__init__()
        num_layers = 100 if num_layers == 101 else num_layers
        if num_layers not in UNITS:
            raise ValueError(f"num_layers must be 50, 100, 101 or 152, got {num_layers}")
        if mode not in ("ir", "ir_se"):
            raise ValueError(f"mode must be 'ir' or 'ir_se', got {mode!r}")
        if layout not in ("evolve", "tface") or (layout == "tface" and num_layers == 152):
            raise ValueError(f"unsupported layout {layout!r} for depth {num_layers}")
        self.num_layers, self.mode, self.layout = num_layers, mode, layout
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        # Registered before body, as upstream, so state-dict order matches.
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.Dropout(0.4),
            Flatten(),
            nn.Linear(512 * 7 * 7, EMBEDDING_SIZE),
            nn.BatchNorm1d(EMBEDDING_SIZE, affine=affine_output_bn),
        )
        units: list[nn.Module] = []
        cin = 64
        for n, depth in zip(UNITS[num_layers], (64, 128, 256, 512)):
            for i in range(n):
                units.append(BottleneckIR(cin, depth, 2 if i == 0 else 1, mode == "ir_se", layout))
                cin = depth
        self.body = nn.Sequential(*units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_layer(self.body(self.input_layer(x)))


def infer_ir_config(state: Mapping[str, torch.Tensor],
                    path: str | os.PathLike[str] = "<state dict>") -> tuple[int, Mode, bool, Layout]:
    """(num_layers, mode, affine_output_bn, layout) from the key names of an IR state dict."""
    unit_ids = {int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.", k))}
    count = max(unit_ids) + 1 if unit_ids else 0
    if count not in DEPTH_BY_UNIT_COUNT:
        raise ModelLoadError(
            f"{path}: has {count} body units; not an IR-50/100/152 state dict",
            "use the official CurricularFace IR-101 backbone weights",
        )
    mode: Mode = "ir_se" if any(".fc1.weight" in k for k in state) else "ir"
    layout: Layout = "tface" if "body.0.res_layer.2.running_mean" in state else "evolve"
    affine = "output_layer.4.weight" in state
    return DEPTH_BY_UNIT_COUNT[count], mode, affine, layout


def load_ir_backbone(path: str | os.PathLike[str], num_layers: int | None = None,
                     mode: Mode | None = None) -> IRBackbone:
    """Load IR/IR-SE weights strictly; depth and mode are inferred from the keys when not given."""
    state = load_state_dict_file(path)
    depth, inferred_mode, affine, layout = infer_ir_config(state, path)
    depth = depth if num_layers is None else num_layers
    try:
        model = IRBackbone(depth, mode or inferred_mode, affine, layout)
    except ValueError as exc:
        raise ModelLoadError(f"{path}: {exc}", "pass a supported num_layers/mode") from exc
    load_strict(model, state, path, f"IR{'-SE' if model.mode == 'ir_se' else ''}-{model.num_layers}")
    return model.eval()


def preprocess_ir(aligned_rgb_112: np.ndarray) -> torch.Tensor:
    """(N, 112, 112, 3) (or one (112, 112, 3)) RGB uint8 aligned crops -> (N, 3, 112, 112) in [-1, 1]."""
    img = np.asarray(aligned_rgb_112)
    if img.ndim == 3:
        img = img[None]
    if img.ndim != 4 or img.shape[1:] != (112, 112, 3) or img.dtype != np.uint8:
        raise ValueError(f"expected (N, 112, 112, 3) uint8 RGB, got {img.shape} {img.dtype}")
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(0, 3, 1, 2).float()
    return (x / 255.0 - 0.5) / 0.5
