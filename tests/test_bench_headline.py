"""The headline cannot be won by not moving: four "models" built from the sample photos and renders
(genuine / paste / static / swapped), leaderboard.json, flags, intervals, the analysis cache; and the
arithmetic of the headline, copy-paste evidence and bootstrap on hand-made numbers."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lfa.bench import BenchConfig, run_bench
from lfa.bench.copypaste import copy_paste_evidence
from lfa.bench.headline import Target, bootstrap_ci, paired, target_of, video_headline
from lfa.bench.leaderboard import SCHEMA
from lfa.bench.runner import calibrate, score_video
from lfa.bench.synthetic import write_model_set
from lfa.errors import ConfigError
from lfa.face.identity.impostors import MIN_COHORT_FACES
from lfa.synth import HeadLibrary

FRAMES = 8


@pytest.fixture(scope="module")
def run(tmp_path_factory, analyzer, torch_one_thread):
    root = tmp_path_factory.mktemp("models")
    spec, folders = write_model_set(root, HeadLibrary(analyzer))
    out = root / "out"
    config = BenchConfig(frames=FRAMES, cache_dir=root / "cache")
    return run_bench(spec, folders, out, config), spec, folders, out


def entries(res) -> dict[str, dict]:
    return {e["model"]: e for e in res.leaderboard}


def test_genuine_turning_head_ranks_first_and_paste_and_static_are_flagged(run):
    res = run[0]
    board = entries(res)
    assert res.leaderboard[0]["model"] == "genuine" and board["genuine"]["flags"] == []
    assert "copy_paste" in board["paste"]["flags"] and "no_motion" in board["paste"]["flags"]
    assert {"no_motion", "angle_not_reached"} <= set(board["static"]["flags"])
    assert "copy_paste" not in board["genuine"]["flags"] and "copy_paste" not in board["swapped"]["flags"]
    # the raw similarity still favours the pasted photo: that is what the headline must not reward
    assert board["paste"]["metrics"]["facesim_dlib"] > board["genuine"]["metrics"]["facesim_dlib"]
    # a head that never leaves the frontal bucket scores at most 1 / (target buckets)
    assert board["paste"]["score"] <= 0.2 + 1e-9 and board["static"]["score"] <= 0.2 + 1e-9
    assert board["genuine"]["metrics"]["coverage"] > board["static"]["metrics"]["coverage"]
    # evidence of the paste: near-duplicate frames of the aligned reference crop
    rows = [r for r in res.rows if r["model"] == "paste"]
    assert all(json.loads(r["copy_paste_evidence"])["ncc_median"] > 0.95 for r in rows)
    assert all(r["copy_paste"] < 0.5 for r in res.rows if r["model"] == "genuine")


def test_swapped_identity_ranks_below_genuine_with_an_interval_that_excludes_it(run):
    res = run[0]
    board = entries(res)
    genuine, swapped = board["genuine"], board["swapped"]
    assert swapped["rank"] > genuine["rank"]
    assert swapped["ci95"][1] < genuine["score"]
    assert genuine["ci95"][0] <= genuine["score"] <= genuine["ci95"][1]
    pair = next(p for p in res.pairs if {p.a, p.b} == {"genuine", "swapped"})
    assert pair.a == "genuine" and pair.win_rate == 1.0 and pair.ci95[0] > 0 and pair.n_items == 4
    # both turn their heads the same way (the swapped videos are the other person's genuine ones)
    assert swapped["metrics"]["coverage"] == genuine["metrics"]["coverage"]


def test_leaderboard_json_schema_and_report(run):
    res, _, _, out = run
    data = json.loads((out / "leaderboard.json").read_text())
    assert list(data) == ["schema", "models", "views"] and data["schema"] == SCHEMA
    assert [m["rank"] for m in data["models"]] == [1, 2, 3, 4]
    for m in data["models"]:
        assert list(m) == ["model", "rank", "score", "ci95", "flags", "cross_pose", "metrics"]
        assert 0 <= m["score"] <= 1 and len(m["ci95"]) == 2 and isinstance(m["flags"], list)
        for key in ("coverage", "verified_yaw_60_90", "no_face_yaw_60_90", "facesim_dlib_strict", "facesim_dlib",
                    "identity_far", "identity_threshold_z", "identity_impostor_pairs", "share_copy_paste"):
            assert key in m["metrics"], key
    assert data["models"][0]["metrics"]["identity_impostor_pairs"] >= MIN_COHORT_FACES
    summary = json.loads((out / "summary.json").read_text())
    assert summary["headline"]["identity_model"] == "dlib" and summary["headline"]["far"] == 0.01
    assert len(summary["paired"]) == 6
    page = (out / "report.html").read_text()
    for section in ("Paired comparisons", "Where each model wins", "Angle coverage per |yaw| bucket",
                    "strict", "lenient", "[copy_paste]"):
        assert section in page, section


def test_videos_of_the_same_content_are_analysed_once_and_a_rerun_reads_the_cache(run):
    res, spec, folders, out = run
    assert res.summary["cache"]["videos_reused"] == 4  # swapped = another item's genuine video
    again = run_bench(spec, {"genuine": folders["genuine"]}, None, replace(res.config, primary=None,
                                                                              identities=None))
    assert all(a.cached for a in again.analyses)
    assert again.aggregates["genuine"]["score"] == pytest.approx(res.aggregates["genuine"]["score"])


def test_a_frame_without_a_face_lowers_the_score_of_a_real_video(run):
    res = run[0]
    cal = calibrate(res.config, res.references)
    analysis = next(a for a in res.analyses if a.model == "genuine" and a.id == "astronaut-0")
    ref = res.references[analysis.id]
    head, scores, _ = score_video(analysis, ref, cal, res.config)
    verified = [i for i, f in enumerate(analysis.modes["lfa"]) if scores.accept[i] and f.has_pose]
    assert verified
    for lose in ("face", "pose"):
        frames = [replace(f) for f in analysis.modes["lfa"]]
        i = verified[len(verified) // 2]
        frames[i] = replace(frames[i], yaw=math.nan) if lose == "pose" else replace(frames[i], detected=False)
        worse, _, _ = score_video(replace(analysis, modes={"lfa": frames}), ref, cal, res.config)
        assert worse.score < head.score, lose
        assert sum(worse.frames.values()) == sum(head.frames.values())  # counted, not dropped


# -- arithmetic on hand-made numbers ------------------------------------------------------------------------
def _sweep(n: int = 40):
    t = np.arange(n) / n
    yaw = 80 * np.sin(2 * np.pi * t)
    return t, yaw, np.zeros(n)


def test_headline_counts_frames_without_face_or_pose_as_failures():
    t, yaw, pitch = _sweep()
    ok = np.ones_like(t, bool)
    target = Target(-75, 75, "labels.target_yaw")
    full = video_headline(ok, ok, yaw, pitch, t, target)
    assert full.score == pytest.approx(1.0) and full.flags == [] and full.coverage == 1.0
    for k in (3, 7):
        no_face = ok.copy()
        no_face[k] = False
        no_pose = yaw.copy()
        no_pose[k] = np.nan
        for h in (video_headline(ok, no_face, yaw, pitch, t, target), video_headline(ok, ok, no_pose, pitch, t, target)):
            assert h.score < full.score
            assert sum(h.frames.values()) == len(t)
    nothing = video_headline(ok, ~ok, yaw, pitch, t, target)
    assert nothing.score == 0.0 and "angle_not_reached" in nothing.flags


def test_a_head_that_stays_frontal_cannot_score_above_one_bucket():
    t = np.linspace(0, 1, 20)
    still = np.full(20, 2.0)
    ok = np.ones(20, bool)
    h = video_headline(ok, ok, still, np.zeros(20), t, target_of({}))
    assert h.score == pytest.approx(1 / 5) and set(h.flags) == {"no_motion", "angle_not_reached"}
    small = target_of({"target_yaw": [0, 20]})
    assert small.buckets() == [0, 1]
    half = video_headline(ok, ok, np.linspace(0, 40, 20), np.zeros(20), t, small)
    assert half.score == 1.0 and half.flags == []
    one_side = video_headline(ok, ok, np.linspace(0, 80, 20), np.zeros(20), t, target_of({"target_yaw": [-75, 75]}))
    assert one_side.flags == ["angle_not_reached"]
    for bad in ([75], [80, 10], "wide"):
        with pytest.raises(ConfigError, match="target_yaw"):
            target_of({"target_yaw": bad})


def test_copy_paste_needs_pixels_and_pose_to_match():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 255, (48, 48), dtype=np.uint8)
    relit = np.clip(ref.astype(float) * 0.7 + 30, 0, 255).astype(np.uint8)
    other = rng.integers(0, 255, (48, 48), dtype=np.uint8)
    ev = copy_paste_evidence([relit] * 8 + [None] * 2, np.r_[np.zeros(8), np.nan, np.nan], list(range(10)), [ref])
    assert ev.flagged and ev.share == pytest.approx(0.8) and ev.frames == list(range(8)) and ev.ncc_median > 0.99
    turned = copy_paste_evidence([relit] * 10, np.full(10, 40.0), list(range(10)), [ref])
    assert not turned.flagged and turned.share == 0
    assert not copy_paste_evidence([other] * 10, np.zeros(10), list(range(10)), [ref]).flagged


def test_bootstrap_and_paired_comparison():
    lo, hi = bootstrap_ci(np.array([0.5, 0.6, 0.7, 0.4]), seed=1)
    assert 0.4 <= lo < 0.55 < hi <= 0.7
    assert bootstrap_ci(np.full(5, 0.3)) == pytest.approx((0.3, 0.3))
    p = paired("a", "b", np.array([0.5, 0.6, 0.7, 0.4]), np.array([0.1, 0.2, 0.7, 0.0]))
    assert p.win_rate == pytest.approx(3.5 / 4) and p.mean_diff == pytest.approx(0.3) and p.ci95[0] > 0
    assert math.isnan(paired("a", "b", np.zeros(0), np.zeros(0)).mean_diff)


def _graph_with_first_nodes(path, names):
    nodes = [helper.make_node("Sub", ["data", "m"], ["x0"], name=names[0]),
             helper.make_node("Mul", ["x0", "s"], ["x1"], name=names[1]),
             helper.make_node("Flatten", ["x1"], ["f"], axis=1),
             helper.make_node("MatMul", ["f", "w"], ["fc1"])]
    inits = [numpy_helper.from_array(np.zeros(1, np.float32), "m"), numpy_helper.from_array(np.ones(1, np.float32), "s"),
             numpy_helper.from_array(np.zeros((3 * 112 * 112, 8), np.float32), "w")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 112, 112])],
                              [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["N", 8])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path


def test_arcface_normalisation_is_decided_by_first_node_names_as_insightface_does(tmp_path):
    from lfa.face.identity.arcface_onnx import ArcFaceOnnxEncoder

    mxnet = ArcFaceOnnxEncoder(_graph_with_first_nodes(tmp_path / "a.onnx", ["_minus0", "_mul0"]))
    assert (mxnet.mean, mxnet.std) == (0.0, 1.0)
    # the same operators under other names (a PyTorch export): lfa normalises outside, like InsightFace
    torch_style = ArcFaceOnnxEncoder(_graph_with_first_nodes(tmp_path / "b.onnx", ["/Sub_norm", "/Mul_norm"]))
    assert (torch_style.mean, torch_style.std) == (127.5, 127.5)
    only_sub = ArcFaceOnnxEncoder(_graph_with_first_nodes(tmp_path / "c.onnx", ["Sub_1", "scale"]))
    assert (only_sub.mean, only_sub.std) == (127.5, 127.5)


def test_headline_impostors_from_a_file_or_the_specs_people(run, tmp_path):
    from lfa.face.identity.impostors import default_impostor_model

    res = run[0]
    path = default_impostor_model().save(tmp_path / "impostors.json")
    cal = calibrate(replace(res.config, impostors=path), res.references)
    assert cal.identity == "dlib" and cal.how == f"file {path}"
    # two people in the spec: too few to fit impostors on, so the shipped model, and the summary says so
    assert "shipped" in res.summary["headline"]["impostors"]
    with pytest.raises(ConfigError, match="false-accept rate"):
        BenchConfig(far=0.02)


def _view(heads, person: str, yaw: float, seed: int, size: int = 320) -> np.ndarray:
    """A still render of ``person`` at ``yaw`` on its own backdrop (another "session" than the videos')."""
    from lfa.synth.backgrounds import colour_field
    from lfa.synth.render import HeadPlacement, render

    head = heads.get(person)
    image, _ = render(colour_field(size, size, seed), [HeadPlacement(head, yaw, 0.0, 0.0, (size / 2, 0.55 * size),
                                                                     0.3 * size / head.face_width)])
    return image


def test_eval_references_are_scored_pose_matched_and_the_summary_says_what_they_cover(run, analyzer, tmp_path):
    """Issue 31: views of the person at 45° and 75° added as eval_references pose-match the far frames of
    the same videos (read from the analysis cache), which without them were scored cross-pose and marked;
    the copy-paste check and the pose distance still rest on the reference alone."""
    from lfa.media import write_image

    res, spec, folders, _ = run
    heads = HeadLibrary(analyzer)
    lines = [json.loads(line) for line in spec.read_text().splitlines()]
    for k, line in enumerate(lines):
        line["reference"] = str(spec.parent / line["reference"])
        line["eval_references"] = []
        for yaw in (45.0, 75.0):
            path = tmp_path / f"{line['id']}_{yaw:.0f}.png"
            write_image(path, _view(heads, line["labels"]["cluster_id"], yaw, seed=50 + k))
            line["eval_references"].append(str(path))
    spec2 = tmp_path / "spec.jsonl"
    spec2.write_text("".join(json.dumps(line) + "\n" for line in lines))
    res2 = run_bench(spec2, folders, tmp_path / "out", BenchConfig(frames=FRAMES, cache_dir=spec.parent / "cache"))
    assert all(a.cached for a in res2.analyses)  # the same videos, only the views differ

    before, after = entries(res)["genuine"], entries(res2)["genuine"]
    assert "60_90" in before["cross_pose"] and before["metrics"]["matched_yaw_60_90"] == 0
    assert "60_90" not in after["cross_pose"] and after["metrics"]["matched_yaw_60_90"] >= 0.5
    assert after["metrics"]["verified_yaw_60_90"] >= before["metrics"]["verified_yaw_60_90"]
    assert res2.leaderboard[0]["model"] == "genuine" and after["score"] > entries(res2)["swapped"]["score"]
    views = res2.summary["views"]
    assert views["items_with_eval_references"] == len(lines)
    assert views["buckets"]["60_90"]["left"] == len(lines) and res.summary["views"]["buckets"]["60_90"]["none"] == 4
    item = views["items"][lines[0]["id"]]
    assert item["eval_references"] == 2 and item["buckets"]["60_90"] == "left" and "…90" in item["covers"]
    board = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    assert board["views"]["items_with_eval_references"] == len(lines)
    ref = res2.references[lines[0]["id"]]
    assert len(ref.eval_records) == 2 and len(ref.thumbs) == 1 and len(ref.poses) == 1  # copy-paste: reference only
    assert sum(f["mode"] == "eval_reference" for f in res2.frames) == 2 * len(lines)
    far = [f for f in res2.frames if f["mode"] == "lfa" and f["model"] == "genuine" and abs(f["yaw"]) >= 60]
    assert far and all(f["pose_matched"] for f in far)
