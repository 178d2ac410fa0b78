"""dlib's face-recognition ResNet without dlib: its ``.dat`` file read in numpy and the same network
written as an ONNX graph, so ONNX Runtime runs it (dlib's prebuilt wheels have no BLAS: ~100 ms a face
on one core). No torch: curation's workers import this module.

The file is dlib's own serialization (``dlib/serialize.h``, ``dlib/dnn/{core,layers,input,loss}.h``):
the loss layer, then each wrapper's version from the outermost layer in, the input layer, then each
layer's details from the innermost layer out. Integers are variable-length (a control byte: length in
the low 4 bits, 0x80 for negative; then little-endian bytes), floats are an integer mantissa and
exponent, strings a length and bytes, bools the characters '0'/'1', tensors a header and raw
little-endian float32. The network is ``anet_type`` of dlib's ``tools/python/src/face_recognition.cpp``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lfa.errors import ModelLoadError

if TYPE_CHECKING:
    import onnx
    import onnxruntime

CHIP_SIZE = 150
ONNX_GRAPH = "g1"  # bumped when the exported graph changes
_FLOAT_SPECIAL = {32000: np.inf, 32001: -np.inf, 32002: np.nan}


class DlibFormatError(ValueError):
    """The bytes are not the expected dlib serialization (truncated, corrupt, or another network)."""


class _Reader:
    """dlib's deserialize() for the few types the network uses, over bytes in memory."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DlibFormatError(f"file ends at byte {len(self.data)}, {n} more bytes expected at {self.pos}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        control = self.take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise DlibFormatError(f"bad integer control byte {control:#04x} at byte {self.pos - 1}")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def float(self) -> float:
        if self.data[self.pos:self.pos + 1] and self.data[self.pos] & 0x70:
            raise DlibFormatError(f"old text float format at byte {self.pos}, not supported")
        mantissa, exponent = self.int(), self.int()
        if exponent in _FLOAT_SPECIAL:
            return float(_FLOAT_SPECIAL[exponent])
        return float(np.ldexp(float(mantissa), exponent))

    def string(self) -> str:
        size = self.int()
        if size < 0 or size > 1 << 16:
            raise DlibFormatError(f"implausible string length {size} at byte {self.pos}")
        return self.take(size).decode("latin-1")

    def bool(self) -> bool:
        ch = self.take(1)
        if ch not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool {ch!r} at byte {self.pos - 1}")
        return ch == b"1"

    def version(self, allowed: tuple[int, ...], what: str) -> int:
        v = self.int()
        if v not in allowed:
            raise DlibFormatError(f"{what} version {v} at byte {self.pos}, expected one of {allowed}")
        return v

    def tensor(self) -> np.ndarray:
        """A resizable_tensor: version 2, (num_samples, k, nr, nc), then little-endian float32."""
        self.version((2,), "tensor")
        shape = tuple(self.int() for _ in range(4))
        if min(shape) < 0:
            raise DlibFormatError(f"negative tensor shape {shape} at byte {self.pos}")
        count = int(np.prod(shape))
        return np.frombuffer(self.take(4 * count), "<f4").astype(np.float32).reshape(shape)

    def alias(self) -> tuple[int, ...]:
        """An alias_tensor: only a shape (a view into the layer's params)."""
        self.version((1,), "alias_tensor")
        return tuple(self.int() for _ in range(4))


@dataclass
class Layer:
    """One layer of the network with what inference needs; ``tag`` is the tag id of tag/skip/add_prev."""

    kind: str
    tag: int = 0
    weight: np.ndarray | None = None  # con: (out, in, kh, kw); fc: (in, out); affine: gamma (k,)
    bias: np.ndarray | None = None  # con: (out,) or None; affine: beta (k,)
    kernel: tuple[int, int] = (0, 0)  # pools: (0, 0) = the whole input
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    relu: bool = False  # con_6 may carry a fused relu
    disabled: bool = False


@dataclass
class DlibNet:
    """The network from input to output, and the input layer's per-channel means (0..255, RGB)."""

    layers: list[Layer]
    mean_rgb: tuple[float, float, float]
    extra: dict[str, float] = field(default_factory=dict)


def _anet_spec() -> list[tuple[str, int]]:
    """``anet_type`` (dlib's face_recognition.cpp), outermost layer first, as (kind, tag id)."""

    def block() -> list[tuple[str, int]]:  # BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,..>>>>>
        return [("affine", 0), ("con", 0), ("relu", 0), ("affine", 0), ("con", 0)]

    def ares() -> list[tuple[str, int]]:  # relu<add_prev1<block<tag1<..>>>>
        return [("relu", 0), ("add_prev", 1), *block(), ("tag", 1)]

    def ares_down() -> list[tuple[str, int]]:  # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<tag1<..>>>>>>>
        return [("relu", 0), ("add_prev", 2), ("avg_pool", 0), ("skip", 1), ("tag", 2), *block(), ("tag", 1)]

    levels = [[ares_down], [ares, ares, ares_down], [ares, ares, ares_down],
              [ares, ares, ares, ares_down], [ares, ares, ares]]
    spec = [("fc", 0), ("avg_pool", 0)]
    for level in levels:
        for unit in level:
            spec += unit()
    return spec + [("max_pool", 0), ("relu", 0), ("affine", 0), ("con", 0)]


def _read_con(r: _Reader, version: str) -> Layer:
    if version not in ("con_4", "con_5", "con_6"):
        raise DlibFormatError(f"unsupported con_ version {version!r}")
    params = r.tensor().ravel()
    num_filters, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
    filters, biases = r.alias(), r.alias()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.float()
    use_bias = r.bool() if version in ("con_5", "con_6") else True
    use_relu = r.bool() if version == "con_6" else False
    n_w = int(np.prod(filters))
    if filters[0] != num_filters or filters[2:] != (nr, nc) or params.size < n_w + (num_filters if use_bias else 0):
        raise DlibFormatError(f"con_ shapes do not agree: filters {filters}, {params.size} params")
    bias = params[n_w:n_w + int(np.prod(biases))].copy() if use_bias else None
    return Layer("con", weight=params[:n_w].reshape(filters).copy(), bias=bias, kernel=(nr, nc),
                 stride=(sy, sx), padding=(py, px), relu=use_relu)


def _read_affine(r: _Reader, version: str) -> Layer:
    """affine_ (the file's inference form of batch norm: gamma * x + beta per channel)."""
    if version not in ("affine_", "affine_2"):
        raise DlibFormatError(f"expected affine_, found {version!r}")
    params = r.tensor().ravel()
    gamma_shape, _beta_shape = r.alias(), r.alias()
    r.int()  # mode (conv or fc)
    disabled = r.bool() if version == "affine_2" else False
    n = int(np.prod(gamma_shape))
    if params.size < 2 * n:
        raise DlibFormatError(f"affine_ has {params.size} params for {n} channels")
    return Layer("affine", weight=params[:n].copy(), bias=params[n:2 * n].copy(), disabled=disabled)


def _read_pool(r: _Reader, version: str, kind: str) -> Layer:
    if version != f"{kind}_2":
        raise DlibFormatError(f"unsupported {kind}_ version {version!r}")
    nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
    return Layer(kind, kernel=(nr, nc), stride=(sy, sx), padding=(py, px))


def _read_fc(r: _Reader, version: str) -> Layer:
    if version not in ("fc_2", "fc_3"):
        raise DlibFormatError(f"unsupported fc_ version {version!r}")
    num_outputs, num_inputs = r.int(), r.int()
    params = r.tensor().ravel()
    weights, _biases = r.alias(), r.alias()
    bias_mode = r.int()
    for _ in range(4):
        r.float()
    if version == "fc_3":
        r.bool()  # use_bias
    n_w = int(np.prod(weights))
    if bias_mode != 1 or n_w != num_inputs * num_outputs or params.size < n_w:
        raise DlibFormatError(f"fc_ is not the expected fc_no_bias: bias mode {bias_mode}, weights {weights}")
    return Layer("fc", weight=params[:n_w].reshape(num_inputs, num_outputs).copy())


def _read_details(r: _Reader, expected: str, tag: int) -> Layer:
    version = r.string()
    if expected == "con":
        return _read_con(r, version)
    if expected == "affine":
        return _read_affine(r, version)
    if expected in ("max_pool", "avg_pool"):
        return _read_pool(r, version, expected)
    if expected == "fc":
        return _read_fc(r, version)
    if expected == "relu":
        if version not in ("relu_", "relu_2"):
            raise DlibFormatError(f"expected relu_, found {version!r}")
        return Layer("relu", disabled=r.bool() if version == "relu_2" else False)
    if expected == "add_prev":
        if version != "add_prev_":
            raise DlibFormatError(f"expected add_prev_, found {version!r}")
        return Layer("add_prev", tag=tag)
    raise AssertionError(expected)


def _read_layer_tail(r: _Reader, version: int, bottom: bool) -> None:
    """add_layer's state after the details: flags and (empty) training tensors."""
    for _ in range(3):
        r.bool()
    r.tensor(), r.tensor()  # x_grad, cached_output
    if bottom:
        r.tensor()  # grad_final
        if version >= 3:
            r.int()  # sample expansion factor
    elif version == 2:
        r.tensor()  # params_grad


def read_dlib_net(data: bytes) -> DlibNet:
    """Parses the bytes of ``dlib_face_recognition_resnet_model_v1.dat``; DlibFormatError if they are not it."""
    r = _Reader(data)
    r.version((1,), "add_loss_layer")
    loss = r.string()
    if loss not in ("loss_metric_", "loss_metric_2"):
        raise DlibFormatError(f"loss layer {loss!r}, not dlib's metric-learning face network")
    extra = {"margin": r.float(), "distance_threshold": r.float()} if loss == "loss_metric_2" else {}
    spec = _anet_spec()
    versions = []
    for i, (kind, _tag) in enumerate(spec):  # the wrappers' versions, outermost first
        bottom = i == len(spec) - 1
        if kind in ("tag", "skip"):
            versions.append(r.version((1,), kind))
        else:
            versions.append(r.version((2, 3) if bottom else (1, 2), f"add_layer ({kind})"))
    input_version = r.string()
    if input_version not in ("input_rgb_image", "input_rgb_image_sized"):
        raise DlibFormatError(f"input layer {input_version!r}, expected input_rgb_image_sized")
    mean_rgb = (r.float(), r.float(), r.float())
    if input_version == "input_rgb_image_sized":
        size = (r.int(), r.int())
        if size != (CHIP_SIZE, CHIP_SIZE):
            raise DlibFormatError(f"input size {size}, expected {CHIP_SIZE}x{CHIP_SIZE}")
    layers: list[Layer] = []
    for i in range(len(spec) - 1, -1, -1):  # details, innermost first
        kind, tag = spec[i]
        if kind in ("tag", "skip"):
            layers.append(Layer(kind, tag=tag))
            continue
        layers.append(_read_details(r, kind, tag))
        _read_layer_tail(r, versions[i], bottom=i == len(spec) - 1)
    if r.pos != len(data):
        raise DlibFormatError(f"{len(data) - r.pos} bytes left after the network")
    return DlibNet(layers, mean_rgb, extra)


def load_dlib_net(path: str | os.PathLike[str]) -> DlibNet:
    """:func:`read_dlib_net` of a file, with an lfa error that says what to do when it is not readable."""
    path = Path(path)
    try:
        return read_dlib_net(path.read_bytes())
    except ValueError as exc:  # DlibFormatError, and numpy's for shapes that do not fit
        raise ModelLoadError(f"{path} is not a readable dlib face-recognition ResNet: {exc}",
                             "re-fetch it with `lfa models fetch dlib_resnet` (a damaged file fails its hash "
                             "and is replaced)") from exc


def preprocess(chips: np.ndarray, mean_rgb: tuple[float, float, float]) -> np.ndarray:
    """(N, 150, 150, 3) uint8 RGB -> (N, 3, 150, 150) float32 as input_rgb_image::to_tensor makes it:
    (pixel - channel mean) / 256, the subtraction in float32 like dlib's."""
    chips = np.asarray(chips)
    if chips.dtype != np.uint8 or chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
        raise ValueError(f"expected (N, {CHIP_SIZE}, {CHIP_SIZE}, 3) uint8 RGB chips, "
                         f"got {chips.shape} {chips.dtype}")
    x = (chips.astype(np.float32) - np.asarray(mean_rgb, np.float32)) / np.float32(256.0)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    return 1 + (size + 2 * pad - kernel) // stride  # dlib's (and ONNX's) floor rule


class _GraphBuilder:
    """Appends ONNX nodes and initializers, tracking each tensor's static (C, H, W)."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, array: np.ndarray, prefix: str) -> str:
        from onnx import numpy_helper

        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: object) -> str:
        from onnx import helper

        out = self.name(op.lower() + "_")
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def pad_to(self, x: str, shape: tuple[int, int, int], target: tuple[int, int, int]) -> str:
        """Zero-pads (C, H, W) at the ends up to ``target``, as dlib's tt::add treats missing values."""
        if shape == target:
            return x
        pads = np.array([0, 0, 0, 0, 0, *(t - s for s, t in zip(shape, target))], np.int64)
        return self.node("Pad", [x, self.const(pads, "pads")], mode="constant")


def build_onnx(net: DlibNet) -> onnx.ModelProto:
    """The network as an ONNX graph: ``image`` (N, 3, 150, 150) float32 (see :func:`preprocess`) ->
    ``embedding`` (N, 128), dlib's descriptor before normalisation. Each affine right after a conv is
    folded into the conv's weights and bias. Residual sums whose operands differ in shape (dlib's
    strided blocks: 3x3 vs 4x4 and 1x1 vs 2x2) zero-pad the smaller one at the ends, like dlib's
    ``tt::add``."""
    from onnx import TensorProto, helper

    g = _GraphBuilder()
    x, shape = "image", (3, CHIP_SIZE, CHIP_SIZE)
    tags: dict[int, tuple[str, tuple[int, int, int]]] = {}
    layers = [layer for layer in net.layers if not layer.disabled]
    i = 0
    while i < len(layers):
        layer = layers[i]
        if layer.kind == "con":
            assert layer.weight is not None
            w = layer.weight.astype(np.float64)
            b = np.zeros(w.shape[0]) if layer.bias is None else layer.bias.astype(np.float64)
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if not layer.relu and nxt is not None and nxt.kind == "affine":
                assert nxt.weight is not None and nxt.bias is not None
                w = w * nxt.weight[:, None, None, None]
                b = b * nxt.weight + nxt.bias
                i += 1
            (kh, kw), (sy, sx), (py, px) = layer.kernel, layer.stride, layer.padding
            x = g.node("Conv", [x, g.const(w.astype(np.float32), "w"), g.const(b.astype(np.float32), "b")],
                       kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px, py, px])
            shape = (w.shape[0], _out_size(shape[1], kh, sy, py), _out_size(shape[2], kw, sx, px))
            if layer.relu:
                x = g.node("Relu", [x])
        elif layer.kind == "affine":
            assert layer.weight is not None and layer.bias is not None
            x = g.node("Mul", [x, g.const(layer.weight.reshape(-1, 1, 1), "gamma")])
            x = g.node("Add", [x, g.const(layer.bias.reshape(-1, 1, 1), "beta")])
        elif layer.kind == "relu":
            x = g.node("Relu", [x])
        elif layer.kind in ("max_pool", "avg_pool"):
            (kh, kw), (sy, sx), (py, px) = layer.kernel, layer.stride, layer.padding
            if (kh, kw) == (0, 0):
                x = g.node("GlobalMaxPool" if layer.kind == "max_pool" else "GlobalAveragePool", [x])
                shape = (shape[0], 1, 1)
            else:
                op = "MaxPool" if layer.kind == "max_pool" else "AveragePool"
                extra = {} if op == "MaxPool" else {"count_include_pad": 0}  # dlib averages clipped windows
                x = g.node(op, [x], kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px, py, px], **extra)
                shape = (shape[0], _out_size(shape[1], kh, sy, py), _out_size(shape[2], kw, sx, px))
        elif layer.kind == "tag":
            tags[layer.tag] = (x, shape)
        elif layer.kind == "skip":
            x, shape = tags[layer.tag]
        elif layer.kind == "add_prev":
            other, other_shape = tags[layer.tag]
            target = (max(shape[0], other_shape[0]), max(shape[1], other_shape[1]), max(shape[2], other_shape[2]))
            x = g.node("Add", [g.pad_to(x, shape, target), g.pad_to(other, other_shape, target)])
            shape = target
        elif layer.kind == "fc":
            assert layer.weight is not None
            if layer.weight.shape[0] != int(np.prod(shape)):
                raise DlibFormatError(f"fc_ takes {layer.weight.shape[0]} inputs, the network gives {shape}")
            x = g.node("Flatten", [x], axis=1)
            x = g.node("MatMul", [x, g.const(layer.weight, "fc")])
            shape = (layer.weight.shape[1], 1, 1)
        i += 1
    g.nodes.append(helper.make_node("Identity", [x], ["embedding"], name="embedding"))
    graph = helper.make_graph(
        g.nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, CHIP_SIZE, CHIP_SIZE])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", shape[0]])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="lfa")
    model.ir_version = 8
    helper.set_model_props(model, {"mean_rgb": ",".join(repr(float(v)) for v in net.mean_rgb)})
    return model


def onnx_path_for(weights: str | os.PathLike[str]) -> Path:
    """Where the ONNX graph read from ``weights`` is cached (:func:`lfa.face.onnx_session.graph_path`)."""
    from lfa.face.onnx_session import graph_path

    return graph_path(weights, ONNX_GRAPH)


def prepare_graph(weights: str | os.PathLike[str]) -> Path:
    """The cached ONNX graph of ``weights``, built now when missing (``lfa models fetch`` runs it)."""
    from lfa.face.onnx_session import cached_graph

    return cached_graph(weights, ONNX_GRAPH, export_onnx)


def export_onnx(weights: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Reads the .dat and writes its ONNX graph to ``path`` (atomically: a worker may read it meanwhile)."""
    import onnx

    path = Path(path)
    model = build_onnx(load_dlib_net(weights))
    onnx.checker.check_model(model)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(model.SerializeToString())
    os.replace(tmp, path)
    return path


def graph_mean_rgb(session: onnxruntime.InferenceSession) -> tuple[float, float, float]:
    """The input layer's channel means that :func:`build_onnx` stored in the graph's metadata."""
    r, g, b = (float(v) for v in session.get_modelmeta().custom_metadata_map["mean_rgb"].split(","))
    return r, g, b


class DlibResNetOnnx:
    """dlib's face-recognition ResNet on ONNX Runtime: (N, 150, 150, 3) uint8 RGB chips -> (N, 128)
    float32 descriptors as dlib computes them (unnormalised). The graph is exported from the .dat on
    first use (or by ``lfa models verify``, which runs the model's check); ``threads``: see
    :func:`lfa.face.onnx_session.open_session`."""

    def __init__(self, weights: str | os.PathLike[str], threads: int | None = None) -> None:
        from lfa.face.onnx_session import open_session

        path = prepare_graph(weights)
        self.session = open_session(path, "dlib ResNet", threads=threads)
        self.mean_rgb = graph_mean_rgb(self.session)

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        (out,) = self.session.run(None, {"image": preprocess(chips, self.mean_rgb)})
        return out
