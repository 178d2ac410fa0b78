"""dlib's face-recognition ResNet on ONNX Runtime (read from the .dat without dlib) gives dlib's descriptors."""

import cv2
import numpy as np
import pytest

from lfa.errors import LfaError
from lfa.face import AnalyzerConfig, FaceAnalyzer
from lfa.face.align import DLIB_150, align_face
from lfa.face.identity.dlib_resnet import DlibResNetEncoder
from lfa.face.nets.dlib_resnet_onnx import load_dlib_net, onnx_path_for
from lfa.samples import sample_photo


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT)


@pytest.fixture(scope="module")
def chips(store) -> np.ndarray:
    """Aligned 150x150 chips of the package photos (as shot, mirrored, turned, darker) plus noise and flat images."""
    finder = FaceAnalyzer(AnalyzerConfig(pose="none", identity="none"), store=store)
    out = []
    for name in ("astronaut", "grace_hopper"):
        photo = sample_photo(name)
        for image in (photo, np.ascontiguousarray(photo[:, ::-1]), rotate(photo, 20),
                      (photo * 0.6).astype(np.uint8)):
            faces = finder.find(image)
            assert faces, name
            out.append(align_face(image, faces[0].landmarks5, DLIB_150))
    rng = np.random.default_rng(0)
    out += list(rng.integers(0, 256, (3, 150, 150, 3), dtype=np.uint8))
    out += [np.zeros((150, 150, 3), np.uint8), np.full((150, 150, 3), 255, np.uint8)]
    return np.stack(out)


def test_onnx_matches_dlib(store, chips):
    onnx_enc = DlibResNetEncoder(store.path("dlib_resnet"), threads=1)
    assert onnx_path_for(store.path("dlib_resnet")).exists()  # exported on first use, next to the .dat
    ref = DlibResNetEncoder(store.path("dlib_resnet"), runtime="dlib").embed_aligned(chips)
    got = onnx_enc.embed_aligned(chips)
    assert got.shape == (len(chips), 128) and got.dtype == np.float32
    diff = float(np.abs(got - ref).max())
    print(f"max |onnx - dlib| over {len(chips)} chips: {diff:.2e}")
    assert diff <= 1e-4
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # batches give the same answer as single chips
    assert np.abs(onnx_enc.embed_aligned(chips[:1]) - got[:1]).max() <= 1e-5
    assert onnx_enc.embed_aligned(chips[:0]).shape == (0, 128)


def test_the_photos_are_faces_of_two_people(store, chips):
    """A sanity check that the chips are aligned faces: same person close, different people far (dlib's 0.6)."""
    emb = DlibResNetEncoder(store.path("dlib_resnet"), threads=1).embed_aligned(chips[:8])
    net = load_dlib_net(store.path("dlib_resnet"))
    # unit-normalised descriptors: dlib's distance threshold applies to raw ones of norm ~0.4-0.5; compare ranks
    same = np.linalg.norm(emb[0] - emb[1:4], axis=1).max()
    other = np.linalg.norm(emb[0] - emb[4:8], axis=1).min()
    assert same < other
    assert net.extra["distance_threshold"] == pytest.approx(0.6)


@pytest.mark.parametrize("damage", ["truncated", "flipped", "empty"])
def test_a_damaged_file_is_a_clear_error(tmp_path, store, damage):
    data = store.path("dlib_resnet").read_bytes()
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "flipped":
        data = data[:200] + bytes([data[200] ^ 0x7F]) + data[201:]
    else:
        data = b""
    bad = tmp_path / "dlib_face_recognition_resnet_model_v1.dat"
    bad.write_bytes(data)
    with pytest.raises(LfaError) as info:
        DlibResNetEncoder(bad)
    assert "dlib" in info.value.message and info.value.fix
    assert not onnx_path_for(bad).exists()
