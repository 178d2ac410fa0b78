"""`lfa bench` on synthetic "generated" videos: the acceptance cases, the output files, the CLI."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lfa.bench import BenchConfig, run_bench
from lfa.bench.synthetic import write_test_set
from lfa.synth import HeadLibrary


@pytest.fixture(scope="module")
def test_set(tmp_path_factory, analyzer) -> Path:
    return write_test_set(tmp_path_factory.mktemp("bench_set"), HeadLibrary(analyzer))


@pytest.fixture(scope="module")
def result(test_set, tmp_path_factory, torch_one_thread):
    """One run, every frame of every video (30 frames each), two "models": the full set and a
    folder that lacks most videos and holds one that is not a video."""
    partial = tmp_path_factory.mktemp("partial")
    shutil.copy(test_set.parent / "gen" / "frozen.mp4", partial / "frozen.mp4")
    (partial / "same.mp4").write_bytes(b"not a video at all")
    out = tmp_path_factory.mktemp("bench_out")
    config = BenchConfig(frames=None, fps=None)  # every frame: enough frames per |yaw| bucket
    res = run_bench(test_set, {"full": test_set.parent / "gen", "partial": partial}, out, config)
    return res, out


def rows_of(res, model: str = "full") -> dict[str, dict]:
    return {r["id"]: r for r in res.rows if r["model"] == model}


def test_same_identity_scores_high_and_another_identity_low(result):
    rows = rows_of(result[0])
    same, other = rows["same"]["facesim_dlib"], rows["other"]["facesim_dlib"]
    # dlib's own decision rule (Euclidean 0.6 on its ~1.4-norm descriptors) puts "same person" above
    # cos ~0.91: the same identity clears it. On the issue-16 renders (a generic skull, hair and light
    # around each face) the other identity comes close too (0.915 vs 0.927): raw cosine barely separates
    # them, which is why decisions use the calibrated score (lfa.face.identity.score).
    assert same > 0.91, same
    assert same - other > 0.01, (same, other)
    assert rows["frozen"]["facesim_dlib"] > 0.97
    for case in ("same", "other", "frozen", "drift"):
        assert rows[case]["detection_rate"] == 1.0 and rows[case]["n_frames"] == 30


def test_identity_that_drifts_at_large_yaw_agrees_in_the_frontal_buckets(result):
    rows = rows_of(result[0])
    same, drift = rows["same"], rows["drift"]
    for bucket in ("0_15", "15_30", "30_45"):
        assert same[f"n_yaw_{bucket}"] >= 2 and drift[f"n_yaw_{bucket}"] >= 2
        assert abs(drift[f"facesim_yaw_{bucket}"] - same[f"facesim_yaw_{bucket}"]) < 0.03, bucket
    # Beyond 45° neither raw dlib cosine nor its calibrated decision tells these two renders apart: with the
    # fused pose (which poses the profiles MediaPipe lost) the same person scores 0.918 / 0.887 at 45–60 /
    # 60–90°, the other person 0.912 / 0.895, and at a 1% false-accept rate 20% / 0% vs 0% / 8% of the frames
    # are verified. That is dlib's limit at profile (docs/BENCH.md, failure modes): both videos lose the
    # large buckets of the headline, and the frontal ones agree.
    for bucket in ("45_60", "60_90"):
        assert drift[f"n_yaw_{bucket}"] >= 1
    for bucket in ("0_15", "15_30"):
        assert drift[f"verified_yaw_{bucket}"] == same[f"verified_yaw_{bucket}"] == 1.0
    for row in (same, drift):
        assert row["verified_yaw_45_60"] + row["verified_yaw_60_90"] <= 0.5
    assert drift["worst_bucket"] in ("yaw_45_60", "yaw_60_90")
    # the yaw the sweep produced is seen, up to the pose estimator's reach
    assert drift["yaw_range"] > 90 and same["abs_yaw_max"] > 55


def test_head_frozen_at_the_reference_pose_is_flagged_and_cannot_win(result):
    res, _ = result
    rows = rows_of(res)
    assert rows["frozen"]["yaw_range"] < 5
    assert "no_motion" in rows["frozen"]["flags"] and "angle_not_reached" in rows["frozen"]["flags"]
    assert rows["same"]["flags"] == ""
    # no target in this spec: the standard five |yaw| buckets; the frozen head reaches one of them
    assert rows["frozen"]["score"] <= 0.2 + 1e-9 < rows["same"]["score"]
    assert rows["frozen"]["facesim_dlib"] > rows["same"]["facesim_dlib"]  # what raw FaceSim would reward
    assert rows["frozen"]["id_spread"] < rows["drift"]["id_spread"]


def test_video_without_a_face_has_detection_rate_zero(result):
    res, _ = result
    row = rows_of(res)["noface"]
    assert row["status"] == "ok" and row["n_frames"] == 30
    assert row["detection_rate"] == 0.0 and row["n_detected"] == 0
    assert math.isnan(row["facesim_dlib"]) and row["facesim_dlib_strict"] == 0.0
    assert row["score"] == 0.0 and row["copy_paste"] == 0.0
    agg = res.aggregates["full"]
    assert agg["n_no_face"] == 1 and agg["n_frames"] == 150 and agg["n_detected"] == 120
    assert agg["detection_rate"] == pytest.approx(0.8)


def test_missing_and_unreadable_videos_are_reported_not_fatal(result):
    res, _ = result
    rows = rows_of(res, "partial")
    assert rows["frozen"]["status"] == "ok" and rows["frozen"]["facesim_dlib"] > 0.97
    assert rows["same"]["status"] == "error" and rows["same"]["error"]
    assert rows["drift"]["status"] == "missing"
    agg = res.aggregates["partial"]
    assert (agg["n_ok"], agg["n_missing"], agg["n_error"]) == (1, 3, 1)


def test_output_files(result, test_set):
    res, out = result
    with open(out / "scores.csv") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 10
    for col in ("model", "id", "score", "flags", "facesim_dlib", "detection_rate", "copy_paste", "facesim_yaw_45_60",
                "facesim_pitch_0_10", "id_spread", "yaw_range", "facesim_worst_bucket"):
        assert col in table[0], col
    tab = pq.read_table(out / "frames.parquet")
    for col in ("model", "id", "mode", "frame", "t", "detected", "yaw", "pitch", "roll", "pose_dist", "sim_dlib",
                "emb_dlib", "id_z", "verified"):
        assert col in tab.column_names, col
    data = tab.to_pylist()
    same = [r for r in data if r["model"] == "full" and r["id"] == "same" and r["mode"] == "lfa"]
    assert [r["frame"] for r in same] == list(range(30))
    refs = [r for r in data if r["mode"] == "reference"]
    assert len(refs) == 5 and all(r["detected"] for r in refs)
    # the per-frame similarities in the file are the ones the video's FaceSim averages
    sims = [r["sim_dlib"] for r in same]
    assert np.mean(sims) == pytest.approx(rows_of(res)["same"]["facesim_dlib"], abs=1e-6)
    emb = np.array(same[0]["emb_dlib"])
    assert emb.shape == (128,) and np.linalg.norm(emb) == pytest.approx(1.0, abs=1e-4)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["models"]["full"]["videos"]["same"] == _sha256(test_set.parent / "gen" / "same.mp4")
    assert summary["models"]["partial"]["videos"]["drift"] is None
    assert summary["identity_models"]["dlib"]["sha256"]
    assert summary["frame_sampling"]["lfa"]["rule"] == "every frame"
    assert summary["seed"] == 0 and summary["versions"]["numpy"]
    assert summary["models"]["full"]["aggregate"]["facesim_dlib"] == pytest.approx(
        res.aggregates["full"]["facesim_dlib"])
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 4 and "data:image/jpeg;base64," in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "Leaderboard" in page and "Worst videos" in page


def test_pooled_identity_fd_is_gone_and_a_partial_model_is_flagged(result):
    res = result[0]
    agg = res.aggregates["full"]
    # FD on identity features pooled every video against every reference: a swapped model got the genuine
    # model's value, so it is not computed (docs/BENCH.md); Face FID needs --inception
    assert not any(k.startswith(("fd_", "face_fid", "fid")) for k in agg)
    partial = next(e for e in res.leaderboard if e["model"] == "partial")
    assert "incomplete" in partial["flags"] and partial["rank"] == 2
    # a missing or unreadable video scores 0 for its item
    assert res.aggregates["partial"]["score"] <= res.aggregates["full"]["score"]


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_runs_the_benchmark_and_make_spec_is_a_subcommand(test_set, tmp_path):
    out = tmp_path / "cli"
    proc = subprocess.run([sys.executable, "-m", "lfa", "bench", "--spec", str(test_set), "--videos",
                           f"mine={test_set.parent / 'gen'}", "--out", str(out), "--frames", "3", "--workers", "2",
                           "--no-report"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    assert "lenient" in proc.stdout and "strict" in proc.stdout and "95% CI" in proc.stdout
    assert (out / "leaderboard.json").is_file() and list((out / "cache").glob("*.npz"))
    with open(out / "scores.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == ["same", "other", "frozen", "drift", "noface"]
    assert all(r["n_frames"] == "3" for r in rows)
    assert not (out / "report.html").exists()
    proc = subprocess.run([sys.executable, "-m", "lfa", "bench", "make-spec", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "--manifest" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "lfa", "bench", "--spec", str(test_set), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")][0].count("fix:") == 1


def test_report_keeps_a_colour_per_model_spaces_bucket_labels_and_shows_the_reference(result, tmp_path):
    """Issue 22: a model's colour changed between charts (some charts drew models in ranking order, others
    in the order given), the pose-distance axis labels ran together ("15–3030–4545–60") and the worst
    videos came without the reference photo."""
    import dataclasses
    import re

    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex
    from matplotlib.lines import Line2D

    from lfa.bench import report

    res, _ = result
    order = ["partial", "full"]  # as given on the command line; "full" ranks first
    res = dataclasses.replace(res, models={m: res.models[m] for m in order}, curves={m: res.curves[m] for m in order})
    colours = report.model_colours(res.models)
    assert len(set(colours.values())) == 2
    for name, fig in report.charts(res).items():
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            legend = ax.get_legend()
            for handle, text in zip(legend.legend_handles, legend.get_texts()):
                colour = handle.get_color() if isinstance(handle, Line2D) else handle.get_facecolor()
                assert to_hex(colour) == colours[text.get_text()], (name, text.get_text())
            if name != "dimensions":  # bucket labels, horizontal: each ends before the next begins
                boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
                assert len(boxes) >= 4 and all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:])), name
        plt.close(fig)
    page = report.write_report(res, tmp_path / "report.html").read_text()
    swatches = re.findall(r"<span class=swatch style='background:(#[0-9a-f]{6})'[^>]*></span>(\w+)", page)
    assert {(c, m) for c, m in swatches} == {(colours[m], m) for m in order}  # leaderboard and headings agree
    refs = re.findall(r"<img src='data:image/jpeg;base64,[^']+' alt='reference photo of (\w+)'>", page)
    assert len(refs) >= 3 and len(refs) == page.count("alt='frames of ")  # beside every model's frames
