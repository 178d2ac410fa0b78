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


def test_mirror_permutation_is_an_involution(store):
    from lfa.face.pose.canonical import mirror_permutation

    face = canonical_face(store.path("face_landmarker"))
    perm = mirror_permutation(face)
    assert sorted(perm.tolist()) == list(range(478)) and (perm[perm] == np.arange(478)).all()
    assert perm[1] == 1 and perm[234] == 454 and perm[33] == 263  # nose tip stays; cheeks and eye corners swap


def test_mirrored_retry_gives_the_same_pose_and_landmarks(store, astronaut, monkeypatch):
    from lfa.face.detect.yunet import YuNetDetector
    from lfa.face.pose.mediapipe import MediaPipePose

    [det] = YuNetDetector(store.path("yunet")).detect(astronaut)
    pose = MediaPipePose(store.path("face_landmarker"))
    direct = pose.estimate(astronaut, det)
    real = pose._landmarks
    calls = []

    def first_call_fails(crop):
        calls.append(crop)
        return None if len(calls) == 1 else real(crop)

    monkeypatch.setattr(pose, "_landmarks", first_call_fails)
    retried = pose.estimate(astronaut, det)
    assert len(calls) == 2 and np.array_equal(calls[1], calls[0][:, ::-1])
    assert (retried.yaw, retried.pitch, retried.roll) == pytest.approx((direct.yaw, direct.pitch, direct.roll), abs=3)
    error = np.linalg.norm(retried.landmarks[:468, :2] - direct.landmarks[:468, :2], axis=1)
    assert np.median(error) < 0.03 * (det.box[2] - det.box[0])


def test_mediapipe_without_pyplot_reads_the_same_pose_and_leaves_matplotlib_importable(store):
    """Curation's worker processes import MediaPipe with placeholders for matplotlib (its package imports
    pyplot for a plotting helper: most of its import time); the landmarker reads the same pose, and the
    placeholders are gone afterwards, so a real ``import matplotlib.pyplot`` still works."""
    import json
    import subprocess
    import sys

    code = """
import json, sys
from lfa.face.detect.yunet import YuNetDetector
from lfa.face.pose.mediapipe import MediaPipePose, skip_pyplot_import
from lfa.samples import sample_photo
if sys.argv[1] == "skip":
    skip_pyplot_import()
image = sample_photo("astronaut")
[det] = YuNetDetector(sys.argv[2]).detect(image)
pose = MediaPipePose(sys.argv[3]).estimate(image, det)
loaded = "matplotlib" in sys.modules
import matplotlib.pyplot as plt
print(json.dumps([pose.yaw, pose.pitch, pose.roll, loaded, callable(plt.figure)]))
"""
    runs = {}
    for mode in ("skip", "plain"):
        out = subprocess.run([sys.executable, "-c", code, mode, str(store.path("yunet")),
                              str(store.path("face_landmarker"))], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        runs[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    assert runs["skip"][:3] == runs["plain"][:3]
    assert runs["skip"][3:] == [False, True]  # no placeholder left behind; the real pyplot imports
    assert runs["plain"][3:] == [True, True]
