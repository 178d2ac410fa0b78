"""Pose measured later from a face patch equals the pose measured on the frame."""

import math

import numpy as np
import pytest

from lfa.curate.records import SampledFace
from lfa.curate.stages.pose import measure_track_pose
from lfa.face.patch import PATCH_MAX_SIDE, cut_patch


@pytest.mark.parametrize("where", ["centre", "edge"])
def test_patch_pose_equals_frame_pose(analyzer, astronaut, where):
    image = astronaut if where == "centre" else np.ascontiguousarray(astronaut[:, 150:])  # face near the edge
    [face] = analyzer.find(image)
    analyzer.measure_pose(image, face)
    assert not math.isnan(face.yaw)
    patch = cut_patch(image, face.box)
    assert patch.scale == 1.0 and max(patch.image.shape[:2]) <= 2 * max(face.box[2:] - face.box[:2]) + 2
    sampled = SampledFace(face.box, face.landmarks5, face.score, math.nan, math.nan, math.nan, face.sharpness,
                          face.area_ratio, patch=patch)
    measure_track_pose([(0.0, sampled)], analyzer, guard=False)
    assert sampled.patch is None  # freed once measured
    assert (sampled.yaw, sampled.pitch, sampled.roll) == pytest.approx((face.yaw, face.pitch, face.roll), abs=1e-3)
    assert np.allclose(sampled.landmarks, face.landmarks, atol=1e-2)  # back in frame pixels


def test_big_faces_are_kept_small(analyzer, astronaut):
    big = np.ascontiguousarray(np.repeat(np.repeat(astronaut, 3, axis=0), 3, axis=1))  # 1536 px
    [face] = analyzer.find(big)
    patch = cut_patch(big, face.box)
    assert max(patch.image.shape[:2]) <= PATCH_MAX_SIDE and patch.scale < 1
    back = patch.to_frame(patch.to_patch(face.landmarks5))
    assert np.allclose(back, face.landmarks5, atol=1e-3)
    sampled = SampledFace(face.box, face.landmarks5, face.score, math.nan, math.nan, math.nan, 0.0, 0.0, patch=patch)
    measure_track_pose([(0.0, sampled)], analyzer, guard=False)
    analyzer.measure_pose(big, face)
    assert abs(sampled.yaw - face.yaw) < 2 and abs(sampled.roll - face.roll) < 2
