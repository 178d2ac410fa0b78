import math

import cv2
import numpy as np
import pytest

from lfa.face.align import ARCFACE_112, DLIB_150, align_face, similarity_transform
from lfa.face.angles import angles_from_rotation, rotation_from_angles, yaw_bucket
from lfa.face.embedding import cosine_similarity, l2_normalize


@pytest.mark.parametrize("yaw,pitch,roll", [(0, 0, 0), (30, -10, 5), (-70, 35, -25), (10, 40, 30)])
def test_angles_round_trip(yaw, pitch, roll):
    rot = rotation_from_angles(yaw, pitch, roll)
    assert np.allclose(rot.T @ rot, np.eye(3), atol=1e-9)
    assert np.allclose(angles_from_rotation(rot), (yaw, pitch, roll), atol=1e-6)


def test_angle_convention_directions():
    # camera frame: x right, y up, z toward the viewer; the face looks along R[:, 2]
    forward = rotation_from_angles(30, 0, 0)[:, 2]
    assert forward[0] > 0.4  # yaw > 0: nose toward the image's right (subject's own left)
    assert rotation_from_angles(0, 20, 0)[:, 2][1] > 0.3  # pitch > 0: looking up
    up = rotation_from_angles(0, 0, 20)[:, 1]
    assert up[0] < -0.3  # roll > 0: the head's up axis leans to the image's left (counter-clockwise)


def test_mirror_flips_yaw_and_roll():
    flip = np.diag([-1.0, 1.0, 1.0])  # mirror the image: x -> -x
    rot = rotation_from_angles(25, 10, 15)
    mirrored = flip @ rot @ flip
    yaw, pitch, roll = angles_from_rotation(mirrored)
    assert (yaw, pitch, roll) == pytest.approx((-25, 10, -15), abs=1e-6)


def test_yaw_bucket_names():
    assert yaw_bucket(-7) == "0-15"
    assert yaw_bucket(44.9) == "30-45"
    assert yaw_bucket(90) == "75-90"


def test_similarity_transform_recovers_a_known_transform():
    theta, scale, shift = math.radians(17), 1.7, np.array([12.0, -5.0])
    rot = scale * np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    src = ARCFACE_112.points
    dst = src @ rot.T + shift
    m = similarity_transform(src, dst)
    assert np.allclose(m[:, :2], rot, atol=1e-9) and np.allclose(m[:, 2], shift, atol=1e-9)


def test_similarity_transform_recovers_a_3d_rotation_not_its_mirror():
    # 3-D landmarks (a head turned 60 degrees and tilted), the form bench/mouth_reading.py aligns faces with
    from scipy.spatial.transform import Rotation

    src = np.random.default_rng(3).normal(size=(18, 3))
    rot = Rotation.from_euler("yxz", [60, -15, 8], degrees=True).as_matrix()
    dst = 0.6 * src @ rot.T + np.array([3.0, -1.0, 2.0])
    m = similarity_transform(src, dst)
    assert m.shape == (3, 4) and np.allclose(m[:, :3], 0.6 * rot, atol=1e-9)
    assert np.allclose(src @ m[:, :3].T + m[:, 3], dst, atol=1e-9)
    mirrored = similarity_transform(src * [-1, 1, 1], dst)  # no proper rotation fits a mirror image: det stays +
    assert np.linalg.det(mirrored[:, :3]) > 0


@pytest.mark.parametrize("template", [ARCFACE_112, DLIB_150])
def test_align_face_puts_landmarks_on_the_template(template):
    image = np.zeros((400, 400, 3), np.uint8)
    m = np.array([[1.9, -0.4, 80.0], [0.4, 1.9, 60.0]])  # some similarity placing the face in the image
    pts = template.points @ m[:, :2].T + m[:, 2]
    for x, y in pts:
        cv2.circle(image, (int(round(x)), int(round(y))), 3, (255, 255, 255), -1)
    crop = align_face(image, pts, template)
    assert crop.shape == (template.size, template.size, 3)
    for x, y in template.points:
        assert crop[int(round(y)), int(round(x))].max() > 128  # the dot landed on its template spot


def test_embedding_normalisation():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    n = l2_normalize(x)
    assert np.allclose(n[0], [0.6, 0.8]) and np.all(np.isfinite(n))
    assert cosine_similarity(np.array([[1.0, 0.0]]), np.array([[0.0, 2.0], [3.0, 0.0]])).tolist() == [[0.0, 1.0]]
