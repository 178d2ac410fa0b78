"""YuNet on ONNX Runtime gives OpenCV's ``cv2.FaceDetectorYN`` answers: same faces, same boxes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lfa.face.detect.yunet import YuNetDetector, prepare_graph


@pytest.fixture(scope="module")
def detectors(store):
    path = store.path("yunet")
    return YuNetDetector(path, runtime="onnx", threads=1), YuNetDetector(path, runtime="opencv")


def _images(astronaut, grace):
    yield np.zeros((64, 64, 3), np.uint8)  # no face
    for photo in (astronaut, grace):
        yield photo
        yield np.ascontiguousarray(photo[::-1, ::-1])  # upside down: lower scores
        yield cv2.resize(photo, (333, 517))  # sizes that are not multiples of 32: the padding
        yield cv2.resize(photo, (96, 80))  # a small face near the score threshold
    yield np.concatenate([cv2.resize(astronaut, (300, 300)), cv2.resize(grace, (300, 300))], axis=1)  # two faces
    h, w = astronaut.shape[:2]  # a dense frame of small faces: NMS among many overlapping candidates
    tiles = cv2.resize(astronaut, (w // 3, h // 3))
    yield np.tile(tiles, (2, 3, 1))


def test_onnx_runtime_matches_opencv(detectors, astronaut, grace):
    onnx, opencv = detectors
    found = 0
    for image in _images(astronaut, grace):
        a, b = onnx.detect(image), opencv.detect(image)
        assert len(a) == len(b), image.shape
        for x, y in zip(a, b):
            assert np.abs(x.box - y.box).max() < 1e-2
            assert np.abs(x.landmarks5 - y.landmarks5).max() < 1e-2
            assert abs(x.score - y.score) < 1e-4
        found += len(a)
    assert found >= 10  # the images hold faces, and both runtimes find them


def test_the_dynamic_graph_is_cached_next_to_the_model(store):
    path = prepare_graph(store.path("yunet"))
    assert path.parent == store.path("yunet").parent and path.suffix == ".onnx"
    with pytest.raises(ValueError, match="runtime"):
        YuNetDetector(store.path("yunet"), runtime="tensorrt")
