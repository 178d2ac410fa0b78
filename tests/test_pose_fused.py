"""The fused default pose: fusion rules, the track guard, and truths that do not come from the renderer
(a mirrored image flips yaw and roll; an in-plane rotation moves roll), on photos and large-angle renders."""

import math

import cv2
import numpy as np
import pytest

from lfa.face import AnalyzerConfig, FaceAnalyzer
from lfa.face.pose.fused import FusionConfig, blend_weight, fuse
from lfa.face.pose.track import guard_track
from lfa.face.types import Face, HeadPose

CFG = FusionConfig()


def lm(yaw, pitch=0.0, roll=0.0):
    return HeadPose(yaw, pitch, roll, source="landmarks")


def wh(yaw, pitch=0.0, roll=0.0, confidence=0.8):
    return HeadPose(yaw, pitch, roll, source="whenet", confidence=confidence)


def test_fusion_rules():
    assert blend_weight(0, CFG) == 0 and blend_weight(90, CFG) == 1
    assert 0 < blend_weight((CFG.landmark_max_yaw + CFG.whenet_min_yaw) / 2, CFG) < 1
    pose, _ = fuse(lm(10), wh(16), CFG)  # moderate: the landmark fit
    assert pose.source == "landmarks" and pose.yaw == 10
    pose, _ = fuse(lm(40), wh(75), CFG)  # the landmarks saturate, WHENet reads the large angle
    assert pose.source == "whenet" and pose.yaw == 75
    pose, _ = fuse(lm(-45), wh(-50), CFG)
    assert pose.source == "fused" and -50 < pose.yaw < -45
    pose, _ = fuse(lm(-30), wh(60), CFG)  # a WHENet flip against the landmarks: keep the landmarks
    assert pose.source == "landmarks" and pose.yaw == -30 and pose.confidence < 1
    pose, _ = fuse(None, wh(70), CFG)  # the landmarker missed: WHENet
    assert pose.source == "whenet" and pose.yaw == 70
    pose, reason = fuse(None, wh(-143), CFG)  # flipped toward the back of the head
    assert pose is None and reason.startswith("no landmarks and WHENet read |yaw| 143")
    pose, reason = fuse(None, wh(70, confidence=0.01), FusionConfig(min_whenet_confidence=0.1))
    assert pose is None and "unsure" in reason
    pose, reason = fuse(None, None, CFG)
    assert pose is None and reason


class _Backend:
    def __init__(self, answer):
        self.answer, self.calls = answer, 0

    def estimate(self, image, detection):
        self.calls += 1
        return self.answer


def test_whenet_is_skipped_only_where_the_landmarks_say_near_frontal():
    from lfa.face.pose.fused import FusedPose

    for lm_yaw, whenet_runs in ((CFG.whenet_skip_yaw - 1, False), (-CFG.whenet_skip_yaw + 1, False),
                                (CFG.whenet_skip_yaw + 5, True), (None, True)):
        landmarks, whenet = _Backend(lm(lm_yaw) if lm_yaw is not None else None), _Backend(wh(80))
        pose = FusedPose(landmarks, whenet, CFG).estimate(np.zeros((8, 8, 3), np.uint8), None)
        assert whenet.calls == int(whenet_runs)
        if not whenet_runs:  # the answer fuse() gives with WHENet below the blend range
            expected, _ = fuse(lm(lm_yaw), wh(lm_yaw), CFG)
            assert (pose.yaw, pose.source, pose.confidence) == (expected.yaw, expected.source, expected.confidence)
            assert pose.readings == {"landmarks": (lm_yaw, 0.0, 0.0)}


def track_face(yaw_lm, yaw_wh):
    face = Face(np.zeros(4), 1.0, np.zeros((5, 2)), 0.1, 100.0)
    readings = {}
    if yaw_lm is not None:
        readings["landmarks"] = (yaw_lm, 0.0, 0.0)
    if yaw_wh is not None:
        readings["whenet"] = (yaw_wh, 0.0, 0.0)
    pose, reason = fuse(lm(yaw_lm) if yaw_lm is not None else None, wh(yaw_wh) if yaw_wh is not None else None, CFG)
    if pose is not None:
        face.yaw, face.pitch, face.roll, face.pose_source = pose.yaw, pose.pitch, pose.roll, pose.source
        face.pose_confidence = pose.confidence
    else:
        face.pose_missing_reason = reason
    face.pose_readings = readings
    return face


def test_track_guard_drops_whenet_flips():
    true = [0, 5, 10, 20, 40, 60, 70, 80, 85, 80, 70, 60, 50, 40]
    faces = [track_face(t if abs(t) < 50 else None, t) for t in true]
    faces[8] = track_face(None, -85)  # a flip in the middle of a profile run, no landmarks
    faces[12] = track_face(48, -80)  # a flip where the landmarks answer: fuse keeps the landmarks already
    faces[5] = track_face(None, 60)
    guard_track(faces, [i / 4 for i in range(len(faces))])
    for i, (face, t) in enumerate(zip(faces, true)):
        if i == 8:
            assert math.isnan(face.yaw) and "continuity" in face.pose_missing_reason
        else:
            assert face.yaw == pytest.approx(t, abs=2.5), (i, face.yaw)
    # a slow, real turn is not an outlier: 10 frames per second, 8° per frame
    turn = [track_face(None, 8.0 * i) for i in range(12)]
    guard_track(turn, [i / 10 for i in range(12)])
    assert all(not math.isnan(f.yaw) and "+track" not in f.pose_source for f in turn)
    with pytest.raises(ValueError):
        guard_track(faces, [0.0])


@pytest.fixture(scope="module")
def fused(store):
    return FaceAnalyzer(AnalyzerConfig(pose="fused", identity="none"), store=store)


def rotate(image, degrees):
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)  # positive = counter-clockwise
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def one_face(analyzer, image):
    faces = analyzer.analyze(np.ascontiguousarray(image))
    assert faces, "no face"
    face = max(faces, key=lambda f: f.area_ratio)
    assert face.pose_source and not math.isnan(face.yaw), face.pose_missing_reason
    return face


def check_mirror_and_rotation(analyzer, image, rotation=15.0, roll_tol=3.0):
    face = one_face(analyzer, image)
    mirror = one_face(analyzer, image[:, ::-1])
    assert mirror.yaw == pytest.approx(-face.yaw, abs=3.0)
    assert mirror.roll == pytest.approx(-face.roll, abs=roll_tol)
    if rotation:
        turned = one_face(analyzer, rotate(image, rotation))
        assert turned.roll - face.roll == pytest.approx(rotation, abs=3.0)
    return face


@pytest.mark.parametrize("photo", ["astronaut", "grace_hopper"])
def test_fused_pose_on_real_photos(fused, photo, astronaut, grace):
    face = check_mirror_and_rotation(fused, astronaut if photo == "astronaut" else grace, 20.0)
    assert abs(face.yaw) < 10 and 0 < face.pose_confidence <= 1 and face.pose_missing_reason is None


@pytest.mark.parametrize(("photo", "yaw", "rotation"), [("astronaut", 75.0, 15.0), ("astronaut", -80.0, -12.0),
                                                     ("grace_hopper", -65.0, 15.0), ("grace_hopper", 88.0, -8.0)])
def test_fused_pose_on_large_angle_renders(fused, heads, photo, yaw, rotation):
    """Where WHENet answers (|yaw| > 45) the mirror and the in-plane rotation truths hold: the rotation
    thanks to WHENet's de-rotation (plain, it reads a 15° turn of a profile as ~30° of roll)."""
    from lfa.synth.eval_pose import render_sweep
    from lfa.synth.trajectory import keyframes

    fixed = keyframes([{"t": 0, "yaw": yaw}, {"t": 1, "yaw": yaw}])
    [(image, _)] = render_sweep(heads, photo, "fixed", frames=1, trajectory=fixed)
    # the roll of a profile: WHENet's two readings of a render and its mirror (with the detector's own,
    # not mirror-exact, boxes) differ by up to ~3.5° on the issue-16 renders; yaw holds to 3°
    face = check_mirror_and_rotation(fused, image, rotation=rotation, roll_tol=5.0)
    assert "whenet" in face.pose_source or face.pose_source == "fused"
    assert np.sign(face.yaw) == np.sign(yaw) and abs(face.yaw) > 45
