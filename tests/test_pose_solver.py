"""The canonical-face pose solver used with MediaPipe landmarks."""

import numpy as np
import pytest

from lfa.errors import ModelLoadError
from lfa.face.angles import angles_from_rotation, rotation_from_angles
from lfa.face.pose.canonical import canonical_face, fit_rotation


def test_canonical_face_is_read_from_the_task_bundle(store):
    face = canonical_face(store.path("face_landmarker"))
    assert face.shape == (468, 3)
    # a face: nose tip (1) in front of the face oval, forehead (10) above chin (152), symmetric in x
    assert face[1, 2] > face[[234, 454], 2].max()
    assert face[10, 1] > face[152, 1]
    assert abs(face[234, 0] + face[454, 0]) < 0.05 * np.ptp(face[:, 0])


@pytest.mark.parametrize("angles", [(0, 0, 0), (35, 0, 0), (-50, 10, 5), (10, -30, -20), (60, 20, 15)])
def test_fit_rotation_recovers_a_weak_perspective_projection(store, angles):
    face = canonical_face(store.path("face_landmarker"))
    rotated = face @ rotation_from_angles(*angles).T
    points = 7.5 * rotated[:, :2] + np.array([300.0, -200.0])  # y-up image points
    assert angles_from_rotation(fit_rotation(face, points)) == pytest.approx(angles, abs=0.5)


def test_a_bundle_without_geometry_is_a_clear_error(tmp_path):
    import zipfile

    bad = tmp_path / "face_landmarker.task"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("face_detector.tflite", b"x")
    with pytest.raises(ModelLoadError, match="canonical face"):
        canonical_face(bad)
