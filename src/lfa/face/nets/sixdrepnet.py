"""6DRepNet head-pose network (Hempel, Abdelrahman, Al-Hamadi 2022; github.com/thohemp/6DRepNet).

Layout checked against the official ``sixdrepnet/model.py`` and ``sixdrepnet/backbone/repvgg.py``:
a RepVGG-B1g2 backbone whose ``stage0..stage4`` are attached as ``layer0..layer4``, global
average pooling, ``linear_reg = Linear(2048, 6)`` and the 6D -> rotation-matrix mapping of
``utils.compute_rotation_matrix_from_ortho6d``. The released ``6DRepNet_300W_LP_AFLW2000.pth``
is the re-parameterised (deploy) layout: one ``rbr_reparam`` 3x3 conv with bias per block.
Training checkpoints use ``rbr_dense`` (3x3 conv+BN), ``rbr_1x1`` (1x1 conv+BN) and
``rbr_identity`` (BN, only where in == out channels and stride 1).

Angle convention. ``euler_from_rotation`` returns the official (pitch, yaw, roll), i.e. the
300W-LP labels with R = Rz(roll) @ Ry(yaw) @ Rx(pitch) (``utils.get_R``). The official
``utils.draw_axis`` draws the face's forward axis at x = sin(-yaw), y = -cos(yaw) sin(pitch)
(image y points down) and, at yaw = pitch = 0, the face's x axis at (cos roll, sin roll). So in
300W-LP positive yaw points the face to the image's left, positive pitch is up, and positive
roll turns the head clockwise as the viewer sees it. lfa uses yaw > 0 = nose towards the
image's right edge, pitch > 0 = up, roll > 0 = counter-clockwise, hence
``yaw_lfa = -yaw``, ``pitch_lfa = pitch``, ``roll_lfa = -roll`` (:func:`to_lfa_angles`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypeVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lfa.errors import ModelLoadError
from lfa.face.nets.weights import load_state_dict_file, load_strict

INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# RepVGG-B1g2: blocks per stage, width multipliers, and the layer indices (stage0 = 0,
# counted through all blocks) that use groups=2 (``optional_groupwise_layers`` upstream).
NUM_BLOCKS = (4, 6, 16, 1)
WIDTH_MULTIPLIERS = (2.0, 2.0, 2.0, 4.0)
GROUPWISE_LAYERS = frozenset(range(2, 27, 2))


def _conv_bn(cin: int, cout: int, kernel: int, stride: int, padding: int, groups: int) -> nn.Sequential:
    seq = nn.Sequential()
    seq.add_module("conv", nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False))
    seq.add_module("bn", nn.BatchNorm2d(cout))
    return seq


def _fuse(kernel: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    assert bn.running_var is not None and bn.running_mean is not None
    std = (bn.running_var + bn.eps).sqrt()
    t = bn.weight / std
    return kernel * t.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * t


class RepVGGBlock(nn.Module):
    """3x3 RepVGG block with ReLU; ``deploy`` picks the single-conv or the three-branch form."""

    def __init__(self, cin: int, cout: int, stride: int, groups: int, deploy: bool) -> None:
        super().__init__()
        self.in_channels, self.out_channels = cin, cout
        self.stride, self.groups, self.deploy = stride, groups, deploy
        self.nonlinearity = nn.ReLU()
        if deploy:
            self.rbr_reparam = nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=True)
        else:
            self.rbr_identity = nn.BatchNorm2d(cin) if cin == cout and stride == 1 else None
            self.rbr_dense = _conv_bn(cin, cout, 3, stride, 1, groups)
            self.rbr_1x1 = _conv_bn(cin, cout, 1, stride, 0, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deploy:
            return self.nonlinearity(self.rbr_reparam(x))
        out = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            out = out + self.rbr_identity(x)
        return self.nonlinearity(out)

    @torch.no_grad()
    def fused_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The equivalent deploy-form 3x3 kernel and bias (uses BN running statistics)."""
        if self.deploy:
            return self.rbr_reparam.weight.clone(), self.rbr_reparam.bias.clone()
        k3, b3 = _fuse(self.rbr_dense.conv.weight, self.rbr_dense.bn)
        k1, b1 = _fuse(self.rbr_1x1.conv.weight, self.rbr_1x1.bn)
        kernel, bias = k3 + F.pad(k1, [1, 1, 1, 1]), b3 + b1
        if self.rbr_identity is not None:
            per_group = self.in_channels // self.groups
            eye = torch.zeros_like(k3)
            idx = torch.arange(self.in_channels)
            eye[idx, idx % per_group, 1, 1] = 1.0
            ki, bi = _fuse(eye, self.rbr_identity)
            kernel, bias = kernel + ki, bias + bi
        return kernel, bias


def rotation_from_6d(poses: torch.Tensor) -> torch.Tensor:
    """(B, 6) -> (B, 3, 3) by Gram-Schmidt; columns x, y, z as the official implementation."""
    x = F.normalize(poses[:, 0:3], dim=1, eps=1e-8)
    z = F.normalize(torch.linalg.cross(x, poses[:, 3:6], dim=1), dim=1, eps=1e-8)
    y = torch.linalg.cross(z, x, dim=1)
    return torch.stack((x, y, z), dim=2)


class SixDRepNet(nn.Module):
    """RepVGG-B1g2 + 6D regression head; ``forward`` maps (B, 3, 224, 224) to (B, 3, 3) rotations."""

    def __init__(self, deploy: bool = True) -> None:
        super().__init__()
        self.deploy = deploy
        cin = min(64, int(64 * WIDTH_MULTIPLIERS[0]))
        self.layer0 = RepVGGBlock(3, cin, 2, 1, deploy)
        layer_idx = 1
        stages: list[nn.Sequential] = []
        for n_blocks, base, mult in zip(NUM_BLOCKS, (64, 128, 256, 512), WIDTH_MULTIPLIERS):
            cout = int(base * mult)
            blocks = []
            for i in range(n_blocks):
                groups = 2 if layer_idx in GROUPWISE_LAYERS else 1
                blocks.append(RepVGGBlock(cin, cout, 2 if i == 0 else 1, groups, deploy))
                cin = cout
                layer_idx += 1
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.linear_reg = nn.Linear(cin, 6)

    def forward_6d(self, x: torch.Tensor) -> torch.Tensor:
        for layer in (self.layer0, self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
        return self.linear_reg(torch.flatten(self.gap(x), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rotation_from_6d(self.forward_6d(x))

    @torch.no_grad()
    def to_deploy(self) -> SixDRepNet:
        """A new deploy-layout model computing the same function (in eval mode)."""
        out = SixDRepNet(deploy=True)
        fused = {f"linear_reg.{k}": v.clone() for k, v in self.linear_reg.state_dict().items()}
        for name, module in self.named_modules():
            if isinstance(module, RepVGGBlock):
                kernel, bias = module.fused_kernel_bias()
                fused[f"{name}.rbr_reparam.weight"] = kernel
                fused[f"{name}.rbr_reparam.bias"] = bias
        out.load_state_dict(fused, strict=True)
        return out.eval()


def detect_deploy(state: Mapping[str, torch.Tensor], path: str | os.PathLike[str] = "<state dict>") -> bool:
    """True for the re-parameterised layout, False for the training layout."""
    deploy = any(".rbr_reparam." in k for k in state)
    train = any(".rbr_dense." in k for k in state)
    if deploy == train:
        what = "both" if deploy else "neither"
        raise ModelLoadError(
            f"{path}: has {what} rbr_reparam and rbr_dense keys; not a 6DRepNet RepVGG state dict",
            "use the official 6DRepNet_300W_LP_AFLW2000.pth",
        )
    return deploy


def load_sixdrepnet(path: str | os.PathLike[str]) -> SixDRepNet:
    """Load deploy- or training-layout 6DRepNet weights strictly; returns the model in eval mode."""
    state = load_state_dict_file(path)
    model = SixDRepNet(deploy=detect_deploy(state, path))
    load_strict(model, state, path, "6DRepNet (RepVGG-B1g2)")
    return model.eval()


def expand_face_box(x0: float, y0: float, x1: float, y1: float, image_w: int, image_h: int,
                    margin: float = 0.2) -> tuple[int, int, int, int]:
    """Enlarge a detector box as the official demo does before cropping.

    The demo widens x by ``margin * box height`` and y by ``margin * box width`` on each side
    (sic, upstream crosses them). The result is clipped to the image.
    """
    w, h = abs(x1 - x0), abs(y1 - y0)
    nx0 = max(0, int(x0) - int(margin * h))
    ny0 = max(0, int(y0) - int(margin * w))
    nx1 = min(image_w, int(x1) + int(margin * h))
    ny1 = min(image_h, int(y1) + int(margin * w))
    return nx0, ny0, nx1, ny1


def preprocess_sixdrepnet(face_crop_rgb_uint8: np.ndarray) -> torch.Tensor:
    """(H, W, 3) RGB uint8 face crop -> (1, 3, 224, 224) float tensor.

    Mirrors torchvision ``Resize(224)`` (shorter side to 224), ``CenterCrop(224)``,
    ``ToTensor`` and ImageNet ``Normalize`` from the official demo/regressor. OpenCV's area
    (downscale) or bilinear (upscale) interpolation stands in for PIL's antialiased bilinear.
    """
    img = np.asarray(face_crop_rgb_uint8)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or min(img.shape[:2]) < 1:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB crop, got {img.shape} {img.dtype}")
    h, w = img.shape[:2]
    if h <= w:
        nh, nw = INPUT_SIZE, int(INPUT_SIZE * w / h)
    else:
        nh, nw = int(INPUT_SIZE * h / w), INPUT_SIZE
    interp = cv2.INTER_AREA if nh < h else cv2.INTER_LINEAR
    img = cv2.resize(img, (nw, nh), interpolation=interp)
    top = int(round((nh - INPUT_SIZE) / 2.0))
    left = int(round((nw - INPUT_SIZE) / 2.0))
    img = img[top : top + INPUT_SIZE, left : left + INPUT_SIZE]
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((x - mean) / std).unsqueeze(0)


def euler_from_rotation(R: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(..., 3, 3) rotations -> (pitch, yaw, roll) in degrees, each of shape (...).

    Same formula as the official ``compute_euler_angles_from_rotation_matrices``: the inverse
    of R = Rz(roll) @ Ry(yaw) @ Rx(pitch), with the upstream gimbal-lock fallback.
    """
    r = torch.as_tensor(R, dtype=torch.float64)
    sy = torch.sqrt(r[..., 0, 0] ** 2 + r[..., 1, 0] ** 2)
    singular = sy < 1e-6
    pitch = torch.where(singular, torch.atan2(-r[..., 1, 2], r[..., 1, 1]),
                        torch.atan2(r[..., 2, 1], r[..., 2, 2]))
    yaw = torch.atan2(-r[..., 2, 0], sy)
    roll = torch.where(singular, torch.zeros_like(sy), torch.atan2(r[..., 1, 0], r[..., 0, 0]))
    return tuple(np.degrees(a.numpy()) for a in (pitch, yaw, roll))  # type: ignore[return-value]


T = TypeVar("T", float, np.ndarray, torch.Tensor)


def to_lfa_angles(pitch: T, yaw: T, roll: T) -> tuple[T, T, T]:
    """300W-LP (pitch, yaw, roll) -> lfa (yaw, pitch, roll): yaw and roll change sign."""
    return -yaw, pitch, -roll
