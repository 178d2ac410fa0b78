"""The pose-aware identity score and its impostor model: mechanics on synthetic embeddings, the shipped
default, and calibration from a tiny user folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lfa.errors import ConfigError
from lfa.face.identity.impostors import (
    FARS,
    N_BUCKETS,
    UNKNOWN,
    default_impostor_model,
    fit_impostor_model,
    impostor_model_for,
    load_impostor_model,
    yaw_bucket,
)
from lfa.face.identity.score import (
    CROSS_BUCKET,
    NO_FACE,
    POSE_MATCHED,
    UNPOSED,
    FaceSet,
    IdentityScorer,
)

DIM = 32


def people(n_people: int, n_faces: int, seed: int = 0, spread: float = 0.6) -> dict[str, FaceSet]:
    """Synthetic identities: a random centre each, faces scattered around it, yaws uniform over ±90."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n_people):
        centre = rng.normal(size=DIM)
        out[f"p{i}"] = FaceSet(centre + spread * rng.normal(size=(n_faces, DIM)), rng.uniform(-90, 90, n_faces),
                               backend="dlib_resnet")
    return out


@pytest.fixture(scope="module")
def model():
    return fit_impostor_model(people(8, 120), backend="dlib", min_pairs=30)


def test_yaw_buckets_are_signed_and_nan_is_unknown():
    b = yaw_bucket(np.array([-95.0, -89.0, -1.0, 0.0, 14.9, 15.0, 89.0, 120.0, np.nan]))
    assert b[0] == b[1] == 0 and b[-2] == b[-3] == N_BUCKETS - 1
    assert b[2] != b[3] and b[3] == b[4] and b[5] == b[4] + 1
    assert b[-1] == UNKNOWN


def test_z_is_the_impostor_z_of_the_bucket_pair(model):
    scorer = IdentityScorer(model)
    sets = people(2, 1, seed=7)
    a = FaceSet(sets["p0"].embeddings, [50.0])
    b = FaceSet(sets["p1"].embeddings, [-20.0])
    s = scorer.compare(a, b)
    found = model.lookup(int(yaw_bucket(50.0)[0]), int(yaw_bucket(-20.0)[0]))
    cos = float(a.embeddings[0] @ b.embeddings[0])
    assert s.kind == CROSS_BUCKET and s.n_pairs == 1
    assert s.cosine == pytest.approx(cos, abs=1e-5)
    assert s.z == pytest.approx((cos - found.stats.mean) / found.stats.std, abs=1e-5)
    assert s.n_impostor_pairs == found.stats.n_pairs and s.impostor_source == found.source == "exact"


def test_pose_matched_pairs_are_used_when_they_exist(model):
    scorer = IdentityScorer(model)
    p = people(1, 6, seed=3)["p0"]
    ref = FaceSet(p.embeddings[:3], [0.0, 40.0, 70.0])
    query = FaceSet(p.embeddings[3:4], [60.0])
    s = scorer.compare(query, ref)
    assert s.kind == POSE_MATCHED and s.n_pairs == 1  # only the 70° face is within 15°
    assert s.cosine == pytest.approx(float(query.embeddings[0] @ ref.embeddings[2]), abs=1e-5)
    # opposite side of the face is not a match: -60 vs +60
    s2 = scorer.compare(FaceSet(p.embeddings[3:4], [-60.0]), ref)
    assert s2.kind == CROSS_BUCKET and s2.n_pairs == 3
    # no pose anywhere: every pair, against pooled impostors
    s3 = scorer.compare(FaceSet(p.embeddings[3:4], [np.nan]), ref)
    assert s3.kind == UNPOSED and s3.n_pairs == 3 and s3.impostor_source == "pooled"
    assert s3.n_impostor_pairs == model.n_pairs


def test_far_decision_holds_on_held_out_impostors(model):
    """The threshold is the impostors' (1 - FAR) quantile: new impostors are accepted at about FAR,
    genuine pose-matched faces of a tight identity mostly accepted."""
    scorer = IdentityScorer(model, far=0.05)
    fresh = people(6, 120, seed=11)
    accepted = []
    names = list(fresh)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            accepted.append(scorer.score_frames(fresh[a], fresh[b].select(slice(0, 1))).accept)
    rate = float(np.concatenate(accepted).mean())
    assert rate < 0.05 * 2.5
    same = people(1, 100, seed=5, spread=0.2)["p0"]
    genuine = scorer.score_frames(same.select(slice(0, 50)), same.select(slice(50, 100)))
    assert genuine.accept.mean() > 0.9
    with pytest.raises(ConfigError):
        IdentityScorer(model, far=0.02)


def test_score_frames_keeps_frames_without_face_and_reports_counts(model):
    scorer = IdentityScorer(model)
    p = people(1, 5, seed=2)["p0"]
    emb = np.vstack([p.embeddings[:2], np.full((1, DIM), np.nan)])
    frames = FaceSet(emb, [10.0, np.nan, 10.0])
    ref = p.select(slice(2, 5))
    ref = FaceSet(ref.embeddings, [0.0, 5.0, 80.0])
    r = scorer.score_frames(frames, ref)
    assert len(r) == 3
    assert list(r.kind) == [POSE_MATCHED, UNPOSED, NO_FACE]
    assert list(r.n_pairs) == [2, 3, 0]
    assert np.isnan(r.z[2]) and not r.accept[2]
    assert r.row(0).kind == POSE_MATCHED


def test_matrix_and_split_for_clustering_and_switches(model):
    scorer = IdentityScorer(model)
    sets = people(3, 20, seed=9, spread=0.3)
    m = scorer.matrix(list(sets.values()))
    assert m.z.shape == (3, 3) and np.allclose(m.z, m.z.T, equal_nan=True) and np.isnan(np.diag(m.z)).all()
    a, b = sets["p0"], sets["p1"]
    track = FaceSet(np.vstack([a.embeddings, b.embeddings]), np.concatenate([a.yaw, b.yaw]))
    times = np.arange(40) / 10.0
    switch = scorer.compare_split(track, times, 2.0)
    same = scorer.compare_split(track.select(slice(0, 20)), times[:20], 1.0)
    assert same.z > switch.z and same.accept and not switch.accept


def test_backend_mismatch_is_an_error(model):
    with pytest.raises(ConfigError, match="impostors"):
        IdentityScorer(model).compare(FaceSet(np.ones(DIM), [0.0], backend="arcface"), people(1, 2)["p0"])


def test_save_load_round_trip_and_bad_files(model, tmp_path: Path):
    path = model.save(tmp_path / "m.json")
    back = load_impostor_model(path, with_default=False)
    k = (int(yaw_bucket(30.0)[0]), int(yaw_bucket(-70.0)[0]))
    assert back.lookup(*k).stats.mean == pytest.approx(model.lookup(*k).stats.mean, abs=1e-5)
    assert back.n_pairs == model.n_pairs and back.backend == "dlib_resnet"
    (tmp_path / "bad.json").write_text(json.dumps({"schema": "x"}))
    with pytest.raises(ConfigError, match="calibrate"):
        load_impostor_model(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="not found"):
        load_impostor_model(tmp_path / "missing.json")


def test_small_samples_fall_back_explicitly():
    small = fit_impostor_model(people(2, 4), backend="dlib")  # 16 pairs of one identity pair: too few
    assert small.lookup(3, 8).source == "pooled"
    shipped = default_impostor_model()
    with_default = small.with_fallback(shipped)
    assert with_default.lookup(3, 8).source == "fallback"
    assert with_default.lookup(UNKNOWN, 3).stats.n_pairs == shipped.n_pairs
    # run-time model: the data at hand when it has enough identities, the shipped default otherwise
    assert impostor_model_for(people(2, 10), backend="dlib") is shipped
    at_hand = impostor_model_for(people(4, 30), backend="dlib")
    assert at_hand.n_identities == 4 and at_hand.fallback is shipped
    with pytest.raises(ConfigError, match="calibrate"):
        impostor_model_for(people(2, 10), backend="arcface")


def test_shipped_default_reads_its_cohort_only_where_scoring_needs_it():
    """Curation's workers use the bucket-pair statistics only: building their scorer reads no cohort."""
    from lfa.curate.config import CurateConfig
    from lfa.curate.pipeline import build_scorer
    from lfa.face.identity.impostors import _shipped

    _shipped.cache_clear()
    try:
        scorer = build_scorer(CurateConfig())
        assert scorer.model.cohort is None and scorer.model.cohort_reader is not None
        (cohort, identity), = scorer.model.cohorts()
        assert scorer.model.cohort is cohort and len(cohort) == len(identity) > 100
        assert len(set(identity.tolist())) >= 10
    finally:
        _shipped.cache_clear()


def test_shipped_default_states_provenance_and_covers_every_bucket_pair():
    m = default_impostor_model("dlib")
    assert m.backend == "dlib_resnet" and m.n_identities >= 5 and m.n_pairs > 10_000
    assert {"data", "identities", "faces", "command", "yaw"} <= set(m.provenance)
    t = m.tables(0.01)
    assert (t.std > 0).all() and np.isfinite(t.mean).all()
    covered = t.source[:N_BUCKETS, :N_BUCKETS]
    assert (covered <= 1).mean() > 0.8  # exact or mirrored for most bucket pairs
    assert set(FARS) == set(m.pooled.z_at_far)


def test_calibrate_a_tiny_user_folder(tmp_path: Path, astronaut, grace):
    from lfa.cli import app
    from lfa.media import write_image

    for name, image in (("eileen", astronaut), ("grace", grace)):
        (tmp_path / "people" / name).mkdir(parents=True)
        write_image(tmp_path / "people" / name / "a.png", image)
        write_image(tmp_path / "people" / name / "b.png", np.ascontiguousarray(image[:, ::-1]))
    out = tmp_path / "imp.json"
    result = CliRunner().invoke(app, ["identity", "calibrate", str(tmp_path / "people"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["n_identities"] == 2 and data["pooled"]["n_pairs"] == 4
    assert data["provenance"]["faces"] == 4
    model = load_impostor_model(out)
    assert model.lookup(6, 6).source == "fallback"  # 4 pairs of one identity pair: the shipped default answers
    one = tmp_path / "one"
    (one / "solo").mkdir(parents=True)
    result = CliRunner().invoke(app, ["identity", "calibrate", str(one), "--out", str(out)])
    assert result.exit_code != 0 and "subfolder" in str(result.exception)


def test_frames_are_calibrated_against_the_references_own_cohort(model):
    """Per-frame scores use the cohort faces of the frame's yaw bucket scored against this reference
    (the reference's own identity left out), where there are enough of them."""
    scorer = IdentityScorer(model)
    ref = model.cohort.select(model.cohort_identity == "p0")
    frame = FaceSet(people(1, 1, seed=21)["p0"].embeddings, [37.0])
    r = scorer.score_frames(frame, ref, reference_identity="p0")
    assert r.impostor_source[0] == "cohort"
    others = model.cohort_identity != "p0"
    bucket = yaw_bucket(model.cohort.yaw) == yaw_bucket(37.0)[0]
    cohort = model.cohort.select(others & bucket)
    c = scorer.score_frames(cohort, ref).cosine  # the same pair rule, raw
    assert r.n_impostor_pairs[0] == len(cohort) >= 20
    assert r.z[0] == pytest.approx((r.cosine[0] - c.mean()) / c.std(ddof=1), abs=1e-4)
    # without its own identity left out, the cohort holds the reference's genuine faces: a different answer
    assert scorer.score_frames(frame, ref).n_impostor_pairs[0] > r.n_impostor_pairs[0]


def test_cohort_survives_save_and_load(model, tmp_path: Path):
    path = model.save(tmp_path / "m.json")
    assert (tmp_path / "m.cohort.parquet").is_file()
    back = load_impostor_model(path, with_default=False)
    assert back.cohort is None and back.cohort_reader is not None  # read where first needed
    assert back.cohorts()[0][0] is back.cohort
    assert len(back.cohort) == len(model.cohort) and list(back.cohort_identity) == list(model.cohort_identity)
    assert np.abs(back.cohort.embeddings - model.cohort.embeddings).max() < 2e-3  # stored as float16
    (tmp_path / "m.cohort.parquet").unlink()
    with pytest.raises(ConfigError, match="cohort"):
        load_impostor_model(path)


def test_an_empty_side_scores_nothing_but_keeps_the_frames(model):
    scorer = IdentityScorer(model)
    frames = people(1, 3)["p0"]
    empty = FaceSet(np.full((2, 4), np.nan), [np.nan, np.nan])  # two frames without a face
    r = scorer.score_frames(frames, empty)
    assert len(r) == 3 and list(r.kind) == [NO_FACE] * 3 and not r.accept.any()
    s = scorer.compare(empty, frames)
    assert s.kind == NO_FACE and s.n_pairs == 0 and np.isnan(s.z)
