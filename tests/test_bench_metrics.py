"""The benchmark's metric arithmetic on hand-made numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg

from lfa.bench import metrics as M

nan = math.nan


def test_yaw_buckets_are_half_open_and_the_last_takes_the_rest():
    yaw = np.array([0, 14.99, 15, -30, 44.9, -45, 60, 89, 95, nan])
    assert M.bucket_of(yaw, M.YAW_EDGES).tolist() == [0, 0, 1, 2, 2, 3, 4, 4, 4, -1]
    assert M.bucket_labels(M.YAW_EDGES) == ["0_15", "15_30", "30_45", "45_60", "60_90"]
    assert M.bucket_labels(M.PITCH_EDGES) == ["0_10", "10_20", "20_30", "30_90"]


def test_bucket_means_count_faces_without_pose_apart_and_skip_frames_without_face():
    sims = np.array([0.9, 0.8, nan, 0.5, 0.4, 0.7])
    yaw = np.array([5, 10, nan, 50, nan, -70])
    stats = M.bucket_means(sims, yaw, M.YAW_EDGES)
    assert stats["0_15"] == M.BucketStat(pytest.approx(0.85), 2)
    assert stats["45_60"].count == 1 and stats["60_90"].mean == pytest.approx(0.7)
    assert stats["15_30"].count == 0 and math.isnan(stats["15_30"].mean)
    assert stats[M.NO_POSE] == M.BucketStat(pytest.approx(0.4), 1)
    assert M.worst_bucket(stats) == ("45_60", pytest.approx(0.5))
    assert M.worst_bucket(stats, min_count=2) == ("0_15", pytest.approx(0.85))
    label, value = M.worst_bucket(stats, min_count=3)
    assert label is None and math.isnan(value)


def test_facesim_and_detection_rate_count_frames_without_a_face():
    sims = np.array([0.8, nan, 0.6, nan])
    assert M.facesim(sims) == pytest.approx(0.7)
    assert M.facesim_strict(sims) == pytest.approx(0.35)
    assert M.detection_rate(~np.isnan(sims)) == 0.5
    assert math.isnan(M.facesim(np.array([nan, nan]))) and M.facesim_strict(np.array([nan])) == 0.0
    assert math.isnan(M.detection_rate(np.zeros(0, bool)))


def test_pose_distance_is_the_angle_between_facing_directions():
    d = M.pose_distance(np.array([30, 0, -50, nan]), np.array([0, 20, 0, 0]), [(0.0, 0.0)])
    assert d[:3] == pytest.approx([30, 20, 50], abs=1e-6) and math.isnan(d[3])
    # the nearest of several reference views
    assert M.pose_distance(np.array([40.0]), np.array([0.0]), [(0, 0), (45, 0)])[0] == pytest.approx(5, abs=1e-6)
    # yaw and pitch combine on the sphere, not as a sum
    both = M.pose_distance(np.array([30.0]), np.array([30.0]), [(0, 0)])[0]
    assert 30 < both < 60


def test_identity_spread():
    e = np.tile(np.array([[1.0, 0.0, 0.0]]), (5, 1))
    assert M.identity_spread(e) == pytest.approx((0.0, 1.0), abs=1e-6)
    rng = np.random.default_rng(0)
    noisy = e + rng.normal(0, 0.3, e.shape)
    spread, self_sim = M.identity_spread(noisy)
    assert spread > 0.01 and self_sim < 1
    assert all(math.isnan(v) for v in M.identity_spread(e[:1]))


def test_frechet_distance_matches_the_fid_formula():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 6))
    b = rng.normal(size=(150, 6)) @ rng.normal(size=(6, 6)) * 0.5 + 1.0
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * scipy.linalg.sqrtm(ca @ cb).real))
    assert M.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert M.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert M.frechet_distance(a, a + 2.0) == pytest.approx(6 * 4.0, rel=1e-6)
    assert math.isnan(M.frechet_distance(a[:1], b))
