"""Curation as a cascade (issue 30): the cheap checks take only the decisions they cannot get wrong."""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lfa.curate.config import CurateConfig
from lfa.curate.run import curate
from lfa.face.pose.cheap import cheap_yaw


def rows(run: Path, name: str) -> list[dict]:
    return pq.read_table(run / f"{name}.parquet").to_pylist()


def decisions(run: Path) -> dict[tuple, tuple]:
    """(clip id, start, end) -> ("accept",) or (stage, reason)."""
    out = {(r["clip_id"], r["start"], r["end"]): ("accept",) for r in rows(run, "manifest")}
    out.update({(r["clip_id"], r["start"], r["end"]): (r["stage"], r["reason"]) for r in rows(run, "rejected")})
    return out


@pytest.fixture(scope="module")
def without_cascade(corpus, tmp_path_factory):
    """The standard corpus with every model on every clip (speech off: it labels, it never rejects here)."""
    run = tmp_path_factory.mktemp("no-cascade")
    curate([corpus], run, CurateConfig.load(None, ["cascade.enabled=false", "speech.enabled=false"]), workers=2,
           report=False)
    return run


def test_cascade_takes_the_same_decisions_as_every_model_on_every_clip(curated_corpus, without_cascade):
    cascade, full = decisions(curated_corpus), decisions(without_cascade)
    assert cascade == full
    # and the cascade did decide some clips without a pose model: box-only rejects and cheap-yaw rejects
    rejected = rows(curated_corpus, "rejected")
    cheap = {Path(r["source"]).stem for r in rejected if r["measure"] == "yaw_range_cheap"}
    assert cheap == {"static_face", "frontal_drift"}
    unposed = {Path(r["source"]).stem for r in rows(curated_corpus, "frames")
               if r["track"] >= 0 and r["yaw"] is None and r["pose_source"] is None}
    assert {"two_faces", "small_face", "static_face", "frontal_drift"} <= unposed
    # the frontal rejects were read sparsely (cascade.frontal_sample_fps): fewer frames than the full reading
    def sampled(run: Path, stem: str) -> int:
        return len({r["t"] for r in rows(run, "frames") if Path(r["source"]).stem == stem})

    assert sampled(curated_corpus, "static_face") <= sampled(without_cascade, "static_face") / 2
    # accepted clips got the full reading (every sampled frame) and carry the same measurements either way
    same = ("yaw_range", "pitch_range", "euler_sum", "identity_min_similarity", "cluster_id", "main_track",
            "sampled_frames")
    full_rows = {r["clip_id"]: r for r in rows(without_cascade, "manifest")}
    for r in rows(curated_corpus, "manifest"):
        assert {k: r[k] for k in same} == {k: full_rows[r["clip_id"]][k] for k in same}, r["clip_id"]


def test_cheap_yaw_bound_holds_where_the_cascade_uses_it(without_cascade):
    """On every clip of the corpus the fused pose read (all models run): where the cheap yaw reads every
    main-track face within ``near_frontal_deg`` of frontal, each face is within ``yaw_error_deg`` of the
    fused yaw and the fused range within the widened cheap span; turning clips never read so."""
    config = CurateConfig().cascade
    clips: dict[str, list[tuple[float, float]]] = {}
    for r in rows(without_cascade, "frames"):
        if r["yaw"] is not None:
            clips.setdefault(r["clip_id"], []).append((cheap_yaw(np.array(r["landmarks5"]).reshape(5, 2)), r["yaw"]))
    near = []
    for clip_id, pairs in clips.items():
        cheap, fused = np.array(pairs).T
        if np.abs(cheap).max() <= config.near_frontal_deg:
            near.append(clip_id)
            assert np.abs(cheap - fused).max() <= config.yaw_error_deg, clip_id
            lo, hi = np.percentile(fused, (5, 95))
            assert hi - lo <= np.ptp(cheap) + 2 * config.yaw_error_deg, clip_id
        else:  # a clip that turns: some face reads well beyond the zone
            assert np.abs(cheap).max() > 2 * config.near_frontal_deg, clip_id
    assert sorted(Path(c).stem.rsplit("-", 2)[0] for c in near) == ["frontal_drift", "static_face"]


def test_a_frontal_stretch_is_read_sparsely_and_its_left_out_frames_are_the_full_scans(corpus, analyzer):
    """``cascade.frontal_sample_fps`` (default 1): a head that stays alone and near frontal is analysed at
    that rate in the scan; the frames left out, analysed later (a second decode of that stretch, for the
    clips the sparse reading cannot reject), are exactly those of the full-rate scan, with the same faces."""
    from lfa.curate.scan import fill_gaps, scan_video
    from lfa.face.align import ARCFACE_112

    assert CurateConfig().cascade.frontal_sample_fps == 1
    path = corpus / "static_face.mp4"
    dense = scan_video(path, CurateConfig.load(None, ["cascade.frontal_sample_fps=0"]), analyzer, ARCFACE_112)
    sparse = scan_video(path, CurateConfig(), analyzer, ARCFACE_112)
    assert len(dense.frames) == 12 and not dense.gaps
    assert 3 <= len(sparse.frames) < 8 and sparse.gaps  # the first frames at 4 fps: the upside-down vote
    assert sparse.upside_down_votes == dense.upside_down_votes and sparse.cuts == dense.cuts
    filled = fill_gaps(path, sparse, sparse.gaps, 0.0, sparse.duration_s, CurateConfig(), analyzer, ARCFACE_112)
    merged = sorted(sparse.frames + filled, key=lambda fr: fr.t)
    assert [fr.t for fr in merged] == [fr.t for fr in dense.frames]
    for a, b in zip(merged, dense.frames):
        assert len(a.faces) == len(b.faces) == 1
        np.testing.assert_array_equal(a.faces[0].box, b.faces[0].box)
        np.testing.assert_array_equal(a.faces[0].landmarks5, b.faces[0].landmarks5)
    # off without the cascade: every configuration the cascade does not run reads every sampled frame
    off = scan_video(path, CurateConfig.load(None, ["cascade.enabled=false"]), analyzer, ARCFACE_112)
    assert len(off.frames) == 12 and not off.gaps


def test_a_clip_the_cheap_checks_reject_loads_no_pose_or_identity_model(corpus):
    """The cascade builds the pose models and the identity encoder where a clip first needs them: a worker
    that sees only clips rejected by the cheap checks (most of a real source's) never loads them."""
    from lfa.curate.pipeline import build_models, process_input

    config = CurateConfig.load(None, ["speech.enabled=false"])
    models = build_models(config)
    result = process_input(corpus / "static_face.mp4", config, models)
    assert [r["measure"] for r in result.rejected] == ["yaw_range_cheap"]
    assert models.analyzer.pose._backend is None and models.encoder._encoder is None
