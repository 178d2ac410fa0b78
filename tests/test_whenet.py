"""WHENet port: equal to the original Keras graph (reference logits in tests/data), conversion, convention."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lfa.face.nets.efficientnet import SameConv2d
from lfa.face.nets.whenet import (
    PR_OFFSET,
    YAW_OFFSET,
    WHENet,
    convert_h5,
    crop_box,
    expected_angle,
    WHENetOnnx,
    load_whenet,
    onnx_path_for,
    preprocess,
)
from lfa.face.pose.whenet import prepare_graph
from lfa.samples import sample_photo

REFERENCE = json.loads((Path(__file__).parent / "data" / "whenet_reference.json").read_text())


def reference_input(name: str) -> np.ndarray:
    """The crop the reference was computed on, rebuilt from the package photos (or the seeded noise)."""
    if name == "noise_seed0":
        return np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    photo = sample_photo(name.removesuffix("_mirror"))
    if name.endswith("_mirror"):
        photo = np.ascontiguousarray(photo[:, ::-1])
    x0, y0, x1, y1 = crop_box(REFERENCE["inputs"][name]["box"], photo.shape[1], photo.shape[0])
    return photo[y0:y1, x0:x1]


@pytest.fixture(scope="module")
def whenet(store, torch_one_thread):
    return load_whenet(store.path("whenet"))


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_port_matches_the_keras_logits(whenet, store, runtime):
    names = list(REFERENCE["outputs"])
    if runtime == "onnx":  # the CPU default, exported from the same weights (`lfa models fetch` exports it)
        whenet = WHENetOnnx(prepare_graph(store.path("whenet")), threads=1)
        graph = onnx_path_for(store.path("whenet"))
        import onnx

        assert {n.op_type for n in onnx.load(str(graph)).graph.node}.isdisjoint({"Pad", "Shape", "ConstantOfShape"})
    x = preprocess([reference_input(n) for n in names])
    with torch.inference_mode():
        yaw, pitch, roll = (np.asarray(t) for t in (whenet(x) if runtime == "onnx" else whenet(torch.from_numpy(x))))
    for i, name in enumerate(names):
        ref = REFERENCE["outputs"][name]
        for got, key in ((yaw, "logits_yaw"), (pitch, "logits_pitch"), (roll, "logits_roll")):
            assert np.abs(got[i] - np.array(ref[key])).max() < 1e-4, (name, key)
        angles = [expected_angle(yaw[i], YAW_OFFSET), expected_angle(pitch[i], PR_OFFSET),
                  expected_angle(roll[i], PR_OFFSET)]
        assert np.allclose([float(a) for a in angles], ref["angles_yaw_pitch_roll"], atol=1e-3), name


def test_tf_same_padding_puts_the_extra_pixel_bottom_right():
    conv = SameConv2d(1, 1, 3, 2, padding=0, bias=False)
    torch.nn.init.zeros_(conv.weight)
    conv.weight.data[0, 0, 0, 0] = 1.0  # picks the top-left tap: output (i, j) reads input (2i-pad, 2j-pad)
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    # 4 px, k3, s2: total pad 1 -> 0 before, 1 after, so the top-left tap reads x[0, 0], x[0, 2], ...
    assert conv(x)[0, 0].tolist() == [[0.0, 2.0], [8.0, 10.0]]


def write_keras_like_h5(model: WHENet, path: Path) -> None:
    """A Keras-2 style weights file (layer_names, weight_names, Keras layouts) of a PyTorch WHENet."""
    import h5py

    layers = []
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            layers.append({"gamma": m.weight, "beta": m.bias, "moving_mean": m.running_mean,
                           "moving_variance": m.running_var})
        elif isinstance(m, torch.nn.Linear):
            layers.append({"kernel": m.weight.T, "bias": m.bias})
        elif isinstance(m, torch.nn.Conv2d):
            kind = "depthwise_kernel" if m.groups > 1 else "kernel"
            layer = {kind: m.weight.permute(2, 3, 0, 1) if m.groups > 1 else m.weight.permute(2, 3, 1, 0)}
            if m.bias is not None:
                layer["bias"] = m.bias
            layers.append(layer)
    with h5py.File(path, "w") as f:
        names = ["input_1"] + [f"layer_{i}" for i in range(len(layers))]
        f.attrs["layer_names"] = [n.encode() for n in names]
        f.create_group("input_1").attrs["weight_names"] = []
        for lname, layer in zip(names[1:], layers):
            group = f.create_group(lname)
            group.attrs["weight_names"] = [f"{lname}/{k}:0".encode() for k in layer]
            for k, v in layer.items():
                group.create_dataset(f"{lname}/{k}:0", data=v.detach().numpy())


def test_conversion_maps_every_keras_layer(tmp_path, torch_one_thread):
    torch.manual_seed(0)
    model = WHENet().eval()
    for m in model.modules():  # non-trivial BN statistics, so a swapped tensor shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    write_keras_like_h5(model, tmp_path / "w.h5")
    convert_h5(tmp_path / "w.h5", tmp_path / "a.safetensors")
    convert_h5(tmp_path / "w.h5", tmp_path / "b.safetensors")
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    loaded = load_whenet(tmp_path / "a.safetensors")
    x = torch.randn(1, 3, 96, 96)
    with torch.inference_mode():
        for got, want in zip(loaded(x), model(x)):
            assert torch.allclose(got, want, atol=1e-5)


def test_conversion_refuses_another_network(tmp_path):
    import h5py

    from lfa.errors import ModelLoadError

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["layer_names"] = [b"dense_1"]
        g = f.create_group("dense_1")
        g.attrs["weight_names"] = [b"dense_1/kernel:0"]
        g.create_dataset("dense_1/kernel:0", data=np.zeros((4, 2), np.float32))
    with pytest.raises(ModelLoadError, match="Keras layers"):
        convert_h5(tmp_path / "other.h5", tmp_path / "x.safetensors")
