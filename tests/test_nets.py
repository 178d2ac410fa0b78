"""Network definitions and loaders, on random weights the tests build (no downloads)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from lfa.errors import ModelLoadError
from lfa.face.nets.irse import IRBackbone, infer_ir_config, load_ir_backbone, preprocess_ir
from lfa.face.nets.sixdrepnet import (
    SixDRepNet,
    euler_from_rotation,
    expand_face_box,
    load_sixdrepnet,
    preprocess_sixdrepnet,
    to_lfa_angles,
)
from lfa.face.nets.weights import load_state_dict_file



@pytest.fixture(autouse=True, scope="module")
def _no_grad():
    """Inference only in this module, without switching autograd off for the rest of the session."""
    with torch.no_grad():
        yield


class NotATensor:
    """Pickled into a checkpoint to check that weights_only loading refuses it."""

    def __init__(self) -> None:
        self.payload = "x"


def _randomize_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics so that the branches and fusion are really exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            if m.affine:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def _save_both(model: torch.nn.Module, base: Path) -> tuple[Path, Path]:
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    pth, st = base.with_suffix(".pth"), base.with_suffix(".safetensors")
    torch.save(state, pth)
    save_file(state, str(st))
    return pth, st


def _rot(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """R = Rz(roll) Ry(yaw) Rx(pitch), radians: the 300W-LP / official ``get_R`` convention."""
    cx, sx, cy, sy, cz, sz = (f(a) for a in (pitch, yaw, roll) for f in (math.cos, math.sin))
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


@pytest.fixture(scope="module")
def face_batch() -> torch.Tensor:
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def train_net() -> SixDRepNet:
    torch.manual_seed(0)
    net = SixDRepNet(deploy=False)
    _randomize_bn(net)
    return net.eval()


@pytest.fixture(scope="module")
def deploy_net(train_net: SixDRepNet) -> SixDRepNet:
    return train_net.to_deploy()


# ---------------------------------------------------------------- 6DRepNet


def test_sixdrepnet_deploy_roundtrip(deploy_net: SixDRepNet, face_batch: torch.Tensor, tmp_path: Path) -> None:
    ref = deploy_net(face_batch)
    keys = deploy_net.state_dict().keys()
    assert "layer0.rbr_reparam.weight" in keys and "layer4.0.rbr_reparam.bias" in keys
    assert deploy_net.layer2[1].rbr_reparam.groups == 2  # layer index 6: a g2 layer
    assert deploy_net.linear_reg.in_features == 2048
    for path in _save_both(deploy_net, tmp_path / "sixd_deploy"):
        loaded = load_sixdrepnet(path)
        assert loaded.deploy and not loaded.training
        torch.testing.assert_close(loaded(face_batch), ref, rtol=0, atol=0)


def test_sixdrepnet_training_layout_roundtrip_and_fusion(
    train_net: SixDRepNet, deploy_net: SixDRepNet, face_batch: torch.Tensor, tmp_path: Path
) -> None:
    keys = train_net.state_dict().keys()
    assert {"layer1.1.rbr_identity.running_var", "layer1.0.rbr_dense.conv.weight",
            "layer1.0.rbr_1x1.bn.weight"} <= keys
    assert "layer1.0.rbr_identity.weight" not in keys  # stride 2: no identity branch
    ref = train_net(face_batch)
    pth, _ = _save_both(train_net, tmp_path / "sixd_train")
    loaded = load_sixdrepnet(pth)
    assert not loaded.deploy
    torch.testing.assert_close(loaded(face_batch), ref, rtol=0, atol=0)
    # Re-parameterisation computes the same function.
    torch.testing.assert_close(deploy_net(face_batch), ref, rtol=1e-4, atol=1e-4)


def test_sixdrepnet_output_is_rotation(deploy_net: SixDRepNet, face_batch: torch.Tensor) -> None:
    r = deploy_net(face_batch).double()
    assert r.shape == (2, 3, 3)
    eye = torch.eye(3, dtype=torch.float64).expand(2, 3, 3)
    torch.testing.assert_close(r.transpose(1, 2) @ r, eye, rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-5)


def test_euler_from_rotation_recovers_angles() -> None:
    angles = [(10.0, -35.0, 5.0), (-20.0, 60.0, -15.0), (0.0, 0.0, 0.0), (30.0, 80.0, 25.0)]
    mats = np.stack([_rot(*(math.radians(a) for a in t)) for t in angles])
    pitch, yaw, roll = euler_from_rotation(mats)
    np.testing.assert_allclose(np.stack([pitch, yaw, roll], 1), np.array(angles), atol=1e-6)
    p1, y1, r1 = euler_from_rotation(torch.from_numpy(mats[1]).float())
    assert abs(float(y1) - 60.0) < 1e-3 and abs(float(p1) + 20.0) < 1e-3 and abs(float(r1) + 15.0) < 1e-3


def test_to_lfa_angles_flips_yaw_and_roll() -> None:
    assert to_lfa_angles(10.0, 20.0, 30.0) == (-20.0, 10.0, -30.0)
    yaw, pitch, roll = to_lfa_angles(np.array([1.0]), np.array([2.0]), np.array([3.0]))
    assert (yaw, pitch, roll) == (-2.0, 1.0, -3.0)


def test_preprocess_sixdrepnet() -> None:
    crop = np.full((150, 100, 3), (124, 116, 104), dtype=np.uint8)  # ~ImageNet mean
    x = preprocess_sixdrepnet(crop)
    assert x.shape == (1, 3, 224, 224) and x.dtype == torch.float32
    assert x.abs().max() < 0.02
    assert preprocess_sixdrepnet(np.zeros((40, 300, 3), np.uint8)).shape == (1, 3, 224, 224)
    with pytest.raises(ValueError):
        preprocess_sixdrepnet(np.zeros((10, 10), np.uint8))


def test_expand_face_box_is_clipped() -> None:
    assert expand_face_box(100, 100, 200, 150, 640, 480) == (90, 80, 210, 170)
    assert expand_face_box(0, 0, 50, 50, 55, 55) == (0, 0, 55, 55)


# ---------------------------------------------------------------- loader errors


def test_missing_key_is_named(deploy_net: SixDRepNet, tmp_path: Path) -> None:
    state = {k: v.contiguous() for k, v in deploy_net.state_dict().items() if k != "linear_reg.bias"}
    path = tmp_path / "broken.safetensors"
    save_file(state, str(path))
    with pytest.raises(ModelLoadError, match=r"missing keys: linear_reg\.bias") as info:
        load_sixdrepnet(path)
    assert "broken.safetensors" in info.value.message


def test_pickled_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(2), "obj": NotATensor()}, path)
    with pytest.raises(ModelLoadError, match=r"NotATensor.*weights_only") as info:
        load_state_dict_file(path)
    assert "evil.pth" in info.value.message and info.value.fix


def test_loader_unwraps_containers_and_module_prefix(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "model_state_dict": {"module.a.weight": torch.ones(2)}}, path)
    assert list(load_state_dict_file(path)) == ["a.weight"]


def test_loader_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        load_state_dict_file(tmp_path / "absent.pth")
    bad = tmp_path / "w.onnx"
    bad.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="unsupported"):
        load_state_dict_file(bad)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="junk.safetensors"):
        load_state_dict_file(junk)


# ---------------------------------------------------------------- IR backbones


def test_ir101_roundtrip_and_shape(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = IRBackbone(101, "ir").eval()
    _randomize_bn(net)
    keys = net.state_dict().keys()
    assert {"input_layer.0.weight", "body.0.res_layer.2.weight",
            "body.3.shortcut_layer.0.weight", "output_layer.3.weight", "output_layer.4.running_var"} <= keys
    assert "output_layer.4.weight" not in keys  # CurricularFace/TFace: non-affine BatchNorm1d
    x = preprocess_ir(np.random.default_rng(0).integers(0, 256, (1, 112, 112, 3), dtype=np.uint8))
    ref = net(x)
    assert ref.shape == (1, 512)
    for path in _save_both(net, tmp_path / "ir101"):
        loaded = load_ir_backbone(path)
        assert (loaded.num_layers, loaded.mode, loaded.training) == (100, "ir", False)
        torch.testing.assert_close(loaded(x), ref, rtol=0, atol=0)


def test_ir_depth_mode_and_affine_inferred(tmp_path: Path) -> None:
    net = IRBackbone(50, "ir_se", affine_output_bn=True)
    _, st = _save_both(net, tmp_path / "irse50")
    loaded = load_ir_backbone(st)
    assert (loaded.num_layers, loaded.mode) == (50, "ir_se")
    assert "output_layer.4.weight" in loaded.state_dict()
    assert "body.0.res_layer.5.fc1.weight" in loaded.state_dict()
    assert infer_ir_config(IRBackbone(152).state_dict())[:2] == (152, "ir")
    assert infer_ir_config(IRBackbone(100, layout="tface").state_dict()) == (100, "ir", False, "tface")
    with pytest.raises(ModelLoadError, match="missing keys"):
        load_ir_backbone(st, num_layers=100)


def test_preprocess_ir() -> None:
    img = np.zeros((2, 112, 112, 3), np.uint8)
    img[1] = 255
    x = preprocess_ir(img)
    assert x.shape == (2, 3, 112, 112)
    assert x[0].eq(-1).all() and x[1].eq(1).all()
    assert preprocess_ir(img[0]).shape == (1, 3, 112, 112)
    with pytest.raises(ValueError):
        preprocess_ir(np.zeros((1, 100, 100, 3), np.uint8))
