"""EfficientNet-B0 (Tan & Le 2019) as the Keras ``efficientnet`` package (qubvel, 1.1.x) builds it.

Plain PyTorch, for weights converted from that Keras graph: swish activations, squeeze-excite
on ``0.25 x`` the block's *input* channels (with bias), BatchNorm epsilon 1e-3, and TensorFlow's
"same" padding. TF pads stride-2 convolutions asymmetrically (the extra pixel goes bottom/right);
symmetric padding shifts every feature map by half a pixel per stride-2 layer, which moved
WHENet's angles by up to 42°. Module order follows the Keras layer order (expand conv, BN,
depthwise conv, BN, SE reduce, SE expand, project conv, BN) so a converter can pair layers in order.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3
SE_RATIO = 0.25
# (kernel, repeats, in, out, expand ratio, stride) of the seven stages of B0.
B0_STAGES = (
    (3, 1, 32, 16, 1, 1),
    (3, 2, 16, 24, 6, 2),
    (5, 2, 24, 40, 6, 2),
    (3, 3, 40, 80, 6, 2),
    (5, 3, 80, 112, 6, 1),
    (5, 4, 112, 192, 6, 2),
    (3, 1, 192, 320, 6, 1),
)
STEM_CHANNELS = 32
TOP_CHANNELS = 1280


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "same" padding: total ``max((ceil(n/s)-1)*s + k - n, 0)``,
    ``total // 2`` before and the rest after (so the odd pixel goes bottom/right)."""

    def same_pads(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) for an input of ``height`` x ``width``."""
        pads: list[int] = []
        for size, k, s in zip((width, height), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return pads[0], pads[1], pads[2], pads[3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Python ints: an ONNX export records the paddings as constants, which ONNX Runtime folds into
        # the convolutions (computed from the shape at run time they cost WHENet 1.3x on one CPU thread)
        left, right, top, bottom = self.same_pads(int(x.shape[-2]), int(x.shape[-1]))
        if left == right and top == bottom:  # symmetric: the convolution pads by itself
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        return self._conv_forward(F.pad(x, [left, right, top, bottom]), self.weight, self.bias)


def _conv(cin: int, cout: int, kernel: int = 1, stride: int = 1, *, groups: int = 1, bias: bool = False) -> nn.Conv2d:
    if kernel == 1 and stride == 1:
        return nn.Conv2d(cin, cout, 1, bias=bias)
    return SameConv2d(cin, cout, kernel, stride, padding=0, groups=groups, bias=bias)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConv(nn.Module):
    """Mobile inverted bottleneck with squeeze-excite; identity skip when shape is kept."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self.expand_conv = _conv(cin, mid)
            self.expand_bn = _bn(mid)
        self.depthwise_conv = _conv(mid, mid, kernel, stride, groups=mid)
        self.depthwise_bn = _bn(mid)
        squeezed = max(1, int(cin * SE_RATIO))
        self.se_reduce = nn.Conv2d(mid, squeezed, 1, bias=True)
        self.se_expand = nn.Conv2d(squeezed, mid, 1, bias=True)
        self.project_conv = _conv(mid, cout)
        self.project_bn = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.silu(self.expand_bn(self.expand_conv(x))) if self.expand else x
        y = F.silu(self.depthwise_bn(self.depthwise_conv(y)))
        s = torch.sigmoid(self.se_expand(F.silu(self.se_reduce(y.mean((2, 3), keepdim=True)))))
        y = self.project_bn(self.project_conv(y * s))
        return y + x if self.skip else y


class EfficientNetB0(nn.Module):
    """Feature extractor: (N, 3, H, W) normalised RGB -> (N, 1280) globally averaged features."""

    def __init__(self) -> None:
        super().__init__()
        self.stem_conv = _conv(3, STEM_CHANNELS, 3, 2)
        self.stem_bn = _bn(STEM_CHANNELS)
        blocks: list[nn.Module] = []
        for kernel, repeats, cin, cout, expand, stride in B0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand))
        self.blocks = nn.Sequential(*blocks)
        self.top_conv = _conv(B0_STAGES[-1][3], TOP_CHANNELS)
        self.top_bn = _bn(TOP_CHANNELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.stem_bn(self.stem_conv(x)))
        x = F.silu(self.top_bn(self.top_conv(self.blocks(x))))
        return x.mean((2, 3))
