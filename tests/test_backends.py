"""The user-supplied backends (SCRFD, ArcFace ONNX, 6DRepNet, CurricularFace) on small generated model files."""

import numpy as np
import pytest

from lfa.errors import ConfigError, ModelMissingError
from lfa.face import AnalyzerConfig, FaceAnalyzer
from lfa.face.detect.scrfd import SCRFDDetector
from tests.onnx_models import make_arcface_onnx, make_scrfd_onnx


@pytest.mark.parametrize("scale", [1.0, 2.0, 0.75])
def test_scrfd_decodes_boxes_and_keypoints(tmp_path, scale):
    detector = SCRFDDetector(make_scrfd_onnx(tmp_path / "scrfd.onnx"))
    size = int(640 * scale)
    image = np.zeros((size, size, 3), np.uint8)
    x0, y0 = 8 * 32 * scale, 4 * 32 * scale  # the white square covers stride-32 cell (8, 4) after resizing
    image[int(y0) : int(y0 + 32 * scale), int(x0) : int(x0 + 32 * scale)] = 255
    [det] = detector.detect(image)  # two anchors on the cell, merged by NMS
    assert det.score > 0.95
    # anchor at the cell's corner (256, 128) in network pixels, box one stride each side
    assert det.box == pytest.approx(np.array([224, 96, 288, 160]) * scale, abs=1.0)
    assert det.landmarks5[0] == pytest.approx(np.array([256 - 16, 128 - 9.6]) * scale, abs=1.0)


def test_analyzer_with_scrfd_and_arcface(tmp_path, user_store, astronaut):
    with pytest.raises(ModelMissingError, match="lfa models add arcface"):
        FaceAnalyzer(AnalyzerConfig(identity="arcface"), store=user_store)
    user_store.add("arcface", make_arcface_onnx(tmp_path / "w600k_r50.onnx"))
    analyzer = FaceAnalyzer(AnalyzerConfig(identity="arcface"), store=user_store)
    [face] = analyzer.analyze(astronaut)
    assert face.embedding_model == "arcface" and face.embedding.shape == (512,)
    assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-5)
    [again] = analyzer.analyze(astronaut)
    assert np.allclose(face.embedding, again.embedding)

    user_store.add("scrfd", make_scrfd_onnx(tmp_path / "det_10g.onnx"))
    scrfd = FaceAnalyzer(AnalyzerConfig(detector="scrfd", pose="none", identity="none"), store=user_store)
    image = np.zeros((640, 640, 3), np.uint8)
    image[128:160, 256:288] = 255
    [face] = scrfd.analyze(image)
    assert face.box == pytest.approx([224, 96, 288, 160], abs=1.0)


def test_unknown_backend_is_a_config_error():
    with pytest.raises(ConfigError, match="mediapipe"):
        AnalyzerConfig(pose="hopenet")


def test_analyzer_with_sixdrepnet_and_curricularface(tmp_path, user_store, astronaut):
    import torch

    from lfa.face.nets.irse import IRBackbone
    from lfa.face.nets.sixdrepnet import SixDRepNet

    torch.manual_seed(0)
    torch.save(SixDRepNet(deploy=True).state_dict(), tmp_path / "6DRepNet_300W_LP_AFLW2000.pth")
    torch.save(IRBackbone(num_layers=50).state_dict(), tmp_path / "CurricularFace_Backbone.pth")
    for name in ("sixdrepnet", "curricularface"):
        with pytest.raises(ModelMissingError, match=f"lfa models add {name}"):
            user_store.path(name)
    user_store.add("sixdrepnet", tmp_path / "6DRepNet_300W_LP_AFLW2000.pth")
    user_store.add("curricularface", tmp_path / "CurricularFace_Backbone.pth")
    analyzer = FaceAnalyzer(AnalyzerConfig(pose="sixdrepnet", identity="curricularface"), store=user_store)
    [face] = analyzer.analyze(astronaut)
    assert all(np.isfinite([face.yaw, face.pitch, face.roll])) and face.landmarks is None
    assert -180 <= face.yaw <= 180
    assert face.embedding_model == "curricularface" and face.embedding.shape == (512,)
    assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-5)
