"""The perception stack on real photos that packages ship (astronaut, grace_hopper)."""

import cv2
import numpy as np
import pytest

from lfa.face import FaceAnalyzer


def one_face(analyzer: FaceAnalyzer, image: np.ndarray):
    faces = analyzer.analyze(image)
    assert len(faces) == 1, f"expected one face, found {len(faces)}"
    return faces[0]


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """Counter-clockwise in-plane rotation on a canvas large enough to keep every pixel."""
    h, w = image.shape[:2]
    pad = int(0.3 * max(h, w))
    big = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(127, 127, 127))
    m = cv2.getRotationMatrix2D((big.shape[1] / 2, big.shape[0] / 2), degrees, 1.0)
    return cv2.warpAffine(big, m, (big.shape[1], big.shape[0]), borderMode=cv2.BORDER_CONSTANT, borderValue=(127, 127, 127))


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("photo", ["astronaut", "grace"])
def test_one_frontal_face_with_every_field(analyzer, photo, request):
    image = request.getfixturevalue(photo)
    face = one_face(analyzer, image)
    assert abs(face.yaw) < 15
    assert face.score > 0.6
    x0, y0, x1, y1 = face.box
    assert 0 <= x0 < x1 <= image.shape[1] and 0 <= y0 < y1 <= image.shape[0]
    inside = (face.landmarks5[:, 0] > x0) & (face.landmarks5[:, 0] < x1)
    assert inside.all()
    assert face.landmarks is not None and face.landmarks.shape == (478, 3)
    assert 0.005 < face.area_ratio < 0.5
    assert face.sharpness > 0
    assert face.embedding_model == "dlib_resnet"
    assert face.embedding.shape == (128,) and np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-5)
    # landmark order: image-left eye first, nose between the eyes, mouth below the nose
    le, re, nose, ml, mr = face.landmarks5
    assert le[0] < nose[0] < re[0] and ml[0] < mr[0] and nose[1] < (ml[1] + mr[1]) / 2


@pytest.mark.parametrize("photo", ["astronaut", "grace"])
def test_mirror_flips_yaw_and_roll(analyzer, photo, request):
    image = request.getfixturevalue(photo)
    face = one_face(analyzer, image)
    mirrored = one_face(analyzer, np.ascontiguousarray(image[:, ::-1]))
    assert abs(face.yaw + mirrored.yaw) <= 4
    assert abs(face.roll + mirrored.roll) <= 4
    assert abs(face.pitch - mirrored.pitch) <= 4


@pytest.mark.parametrize("photo", ["astronaut", "grace"])
@pytest.mark.parametrize("degrees", [20, -20])
def test_in_plane_rotation_changes_roll(analyzer, photo, degrees, request):
    image = request.getfixturevalue(photo)
    base = one_face(analyzer, rotate(image, 0))
    turned = one_face(analyzer, rotate(image, degrees))
    assert turned.roll - base.roll == pytest.approx(degrees, abs=4)


def test_identity_survives_flip_scale_jpeg_and_separates_people(analyzer, astronaut, grace):
    def emb(image):
        return one_face(analyzer, image).embedding

    a = emb(astronaut)
    variants = [astronaut[:, ::-1], cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA), jpeg(astronaut, 25)]
    same = [float(a @ emb(np.ascontiguousarray(v))) for v in variants]
    g = emb(grace)
    g_variants = [grace[:, ::-1], jpeg(grace, 25)]
    same += [float(g @ emb(np.ascontiguousarray(v))) for v in g_variants]
    different = [float(a @ g)] + [float(emb(np.ascontiguousarray(v)) @ g) for v in variants]
    assert min(same) > max(different) + 0.05, (same, different)


def test_sharpness_drops_with_blur(analyzer, astronaut):
    sharp = one_face(analyzer, astronaut).sharpness
    blurred = one_face(analyzer, cv2.GaussianBlur(astronaut, (0, 0), 3)).sharpness
    assert blurred < 0.5 * sharp


def test_no_face_in_a_blank_image(analyzer):
    assert analyzer.analyze(np.full((240, 320, 3), 127, np.uint8)) == []


def test_batch_matches_single(analyzer, astronaut, grace):
    batch = analyzer.analyze_batch([astronaut, grace])
    assert [len(f) for f in batch] == [1, 1]
    assert np.allclose(batch[1][0].embedding, one_face(analyzer, grace).embedding)
