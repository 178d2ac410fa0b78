"""Curation never loses a run and never accepts a broken file as whole (issue 12): every input appears once,
inputs that change mid-run, truncated files, tracking at low sampling rates, pose coverage, logs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from lfa.curate.config import ConstraintConfig, CurateConfig
from lfa.curate.records import Clip, SampledFace, SampledFrame
from lfa.curate.run import curate
from lfa.curate.stages.constraints import check_constraints
from lfa.curate.stages.tracking import link_tracks
from lfa.errors import ConfigError
from lfa.media import read_frames
from lfa.synth import ClipSpec, SecondFace, build_corpus


def rows(run: Path, name: str) -> list[dict]:
    return pq.read_table(run / f"{name}.parquet").to_pylist()


def every_input_once(run: Path) -> dict[str, str]:
    """Input name -> the one table it appears in (asserting it appears in exactly one)."""
    seen: dict[str, set[str]] = {}
    for name, col in (("manifest", "source"), ("rejected", "source"), ("failures", "input")):
        for row in rows(run, name):
            seen.setdefault(Path(row[col]).name, set()).add(name)
    assert all(len(v) == 1 for v in seen.values()), seen
    return {k: next(iter(v)) for k, v in seen.items()}


def test_missing_paths_dangling_links_and_changed_files_do_not_stop_the_run(corpus, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("static_face", "frontal_drift"):
        (inbox / f"{name}.mp4").write_bytes((corpus / f"{name}.mp4").read_bytes())
    (inbox / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    changed = []

    def touch_after_its_result(summary: dict) -> None:  # the file changes after its result was saved
        path = Path(summary["source"])
        if path.name == "static_face.mp4":
            path.write_bytes(path.read_bytes() + b"\0")
        else:
            path.unlink()
        changed.append(path.name)

    summary = curate([inbox, tmp_path / "missing.mp4"], tmp_path / "run", workers=1, report=False,
                     on_input=touch_after_its_result)
    assert sorted(changed) == ["frontal_drift.mp4", "static_face.mp4"]
    assert summary.inputs == 4
    where = every_input_once(tmp_path / "run")
    assert where == {"static_face.mp4": "rejected", "frontal_drift.mp4": "rejected", "gone.mp4": "failures",
                     "missing.mp4": "failures"}
    errors = {Path(f["input"]).name: f["error"] for f in rows(tmp_path / "run", "failures")}
    assert "dangling link" in errors["gone.mp4"] and "not found" in errors["missing.mp4"]
    warned = {Path(w["source"]).name for w in rows(tmp_path / "run", "warnings") if w["stage"] == "input"}
    assert warned == {"static_face.mp4", "frontal_drift.mp4"}
    # the changed file is redone on the next run; the deleted one is no longer an input of the folder
    again: list[dict] = []
    curate([inbox, tmp_path / "missing.mp4"], tmp_path / "run", workers=1, report=False, on_input=again.append)
    assert [Path(s["source"]).name for s in again] == ["static_face.mp4"]
    assert "frontal_drift.mp4" not in every_input_once(tmp_path / "run")


@pytest.mark.parametrize("workers", [0, -3])
def test_workers_must_be_positive(corpus, tmp_path, workers):
    with pytest.raises(ConfigError, match="--workers"):
        curate([corpus / "static_face.mp4"], tmp_path / "run", workers=workers)
    proc = subprocess.run([sys.executable, "-m", "lfa", "curate", str(corpus / "static_face.mp4"), "--out",
                           str(tmp_path / "run"), "--workers", str(workers)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "workers" in proc.stderr and not (tmp_path / "run").exists()


def _faststart_truncated(src: Path, dst: Path, keep: float) -> None:
    """Re-mux ``src`` with the index at the front (faststart), then cut the file at ``keep`` of its size:
    the header still announces the full duration, frames stop part-way."""
    full = dst.parent.parent / "full.mp4"
    with av.open(str(src)) as inp, av.open(str(full), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    data = full.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])


def test_a_truncated_file_gives_clips_from_what_decoded_and_a_warning(corpus, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _faststart_truncated(corpus / "scene_cut.mp4", inbox / "cut_short.mp4", 0.6)
    decoded = read_frames(inbox / "cut_short.mp4")
    end = decoded[-1].t
    assert 2.5 < end < 5.0  # the header says 6 s
    said: list[str] = []
    curate([inbox], tmp_path / "run", workers=1, on_status=said.append)
    assert said[0].startswith("loading models") and said[-2:] == ["merging results", "writing report.html"]
    assert "cut_short.mp4: 1 of 6 s" in said  # progress inside a video
    page = (tmp_path / "run" / "report.html").read_text()
    assert "Warnings" in page and "stopped at" in page
    clips = rows(tmp_path / "run", "manifest") + rows(tmp_path / "run", "rejected")
    assert clips and max(c["end"] for c in clips) <= end + 0.1
    warning = [w for w in rows(tmp_path / "run", "warnings") if w["stage"] == "decode"]
    assert len(warning) == 1 and "stopped at" in warning[0]["message"]


def _face(x: float, size: float = 100.0, yaw: float = 0.0) -> SampledFace:
    box = np.array([x, 100.0, x + size, 100.0 + size])
    return SampledFace(box, np.zeros((5, 2)), 0.9, yaw, 0.0, 0.0, 100.0, size * size / 512 ** 2)


def test_tracks_survive_low_sampling_rates():
    # one face moving 1.2 box widths between samples (no overlap at all) and a small one standing still
    frames = [SampledFrame(i, float(i), [_face(50 + 120 * i % 300 if i < 3 else 290.0), _face(400, 40)])
              for i in range(5)]
    clip = Clip("v", "c", 0.0, 5.0, frames)
    link_tracks(clip, CurateConfig().tracking.link_max_cost)
    assert [f.faces[0].track for f in frames] == [0] * 5
    assert [f.faces[1].track for f in frames] == [1] * 5
    # a face far away and of another size opens a new track
    frames.append(SampledFrame(5, 5.0, [_face(10, 30)]))
    link_tracks(clip, CurateConfig().tracking.link_max_cost)
    assert frames[-1].faces[0].track == 2


def test_small_assignments_equal_scipys():
    """Frames with up to six faces and tracks are assigned without scipy's optimiser: the same pairs."""
    from scipy.optimize import linear_sum_assignment

    from lfa.curate.stages.tracking import _assignment

    rng = np.random.default_rng(0)
    for n, m in [(1, 1), (1, 4), (4, 1), (2, 3), (3, 2), (5, 5), (6, 4), (4, 6), (6, 6), (7, 3)]:
        for _ in range(20):
            cost = rng.exponential(size=(n, m))
            ours, theirs = _assignment(cost), linear_sum_assignment(cost)
            assert np.array_equal(ours[0], theirs[0]) and np.array_equal(ours[1], theirs[1]), (n, m)


def test_corpus_tracks_and_decisions_hold_at_one_and_a_half_frames_per_second(corpus, tmp_path):
    names = ["large_angle_astronaut", "large_angle_grace", "background_face", "two_faces"]
    cfg = CurateConfig.load(None, ["tracking.sample_fps=1.5"])
    curate([corpus / f"{n}.mp4" for n in names], tmp_path / "run", cfg, workers=2, report=False)
    tracks: dict[str, set[int]] = {}
    for row in rows(tmp_path / "run", "frames"):
        tracks.setdefault(Path(row["source"]).stem, set()).add(row["track"])
    # one track per face: the turning head is never split into several (the IoU tracker's failure)
    assert tracks == {"large_angle_astronaut": {0}, "large_angle_grace": {0}, "background_face": {0, 1},
                      "two_faces": {0, 1}}
    got = {Path(r["source"]).stem: r["reason"] for r in rows(tmp_path / "run", "rejected")}
    accepted = {Path(r["source"]).stem for r in rows(tmp_path / "run", "manifest")}
    assert {"large_angle_astronaut", "large_angle_grace"} <= accepted
    assert got["two_faces"] == "multiple_faces"


def test_an_angle_decision_needs_pose_on_most_frames():
    yaws = [np.nan] * 12 + [-40.0, 0.0, 30.0, 40.0]  # a 80° range, measured on 4 of 16 frames
    frames = [SampledFrame(i, i / 4, [_face(100, 120, y)]) for i, y in enumerate(yaws)]
    clip = Clip("v", "c", 0.0, 4.0, frames)
    for fr in frames:
        fr.faces[0].track = 0
    decision = check_constraints(clip, 0, ConstraintConfig())
    assert (decision.reason, decision.value) == ("pose_unmeasured", 0.25)
    for fr, y in zip(frames, np.linspace(-40, 40, 16)):
        fr.faces[0].yaw = float(y)
    assert check_constraints(clip, 0, ConstraintConfig()).accepted


def test_a_tiny_face_found_on_few_frames_is_too_small_not_absent():
    frames = [SampledFrame(i, i / 4, [_face(100, 20, 0.0)] if i % 3 == 0 else []) for i in range(12)]
    for fr in frames:
        for f in fr.faces:
            f.track = 0
    decision = check_constraints(Clip("v", "c", 0.0, 3.0, frames), 0, ConstraintConfig())
    assert decision.reason == "face_too_small" and decision.value == 20


def test_terminal_shows_lfa_output_only(corpus, tmp_path):
    cmd = [sys.executable, "-m", "lfa", "curate", str(corpus / "large_angle_astronaut.mp4"), "--out",
           str(tmp_path / "run"), "--workers", "1", "--no-report"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr
    log = (tmp_path / "run" / "logs" / "curate.log").read_text()
    assert "TensorFlow Lite" in log  # MediaPipe's native lines went to the log
    verbose = subprocess.run([sys.executable, "-m", "lfa", "-v", "curate", str(corpus / "large_angle_astronaut.mp4"),
                              "--out", str(tmp_path / "run2"), "--workers", "1", "--no-report"],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert verbose.returncode == 0 and "TensorFlow Lite" in verbose.stderr
    assert not (tmp_path / "run2" / "logs" / "curate.log").exists()


def test_curate_export_has_its_own_help():
    proc = subprocess.run([sys.executable, "-m", "lfa", "curate", "export", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "shard-size" in proc.stdout and "--retry-failed" not in proc.stdout


def test_average_linkage_does_not_chain_two_people():
    from lfa.curate.clustering import average_linkage

    # clips 0,1 are one person, 2,3 another; 1 and 2 look alike (a bridge that chains under single linkage)
    scores = {(0, 1): 5.0, (1, 2): 3.5, (2, 3): 5.0, (0, 2): 0.5, (0, 3): 0.0, (1, 3): 0.5}
    clusters = average_linkage(4, scores, min_z=3.0)
    assert clusters.ids.tolist() == [0, 0, 1, 1]
    assert clusters.tightness_z.tolist() == [5.0, 5.0]
    assert clusters.nearest_cluster.tolist() == [1, 0]
    assert clusters.nearest_z[0] == pytest.approx((3.5 + 0.5 + 0.0 + 0.5) / 4)
    assert average_linkage(4, scores, min_z=1.0).ids.tolist() == [0, 0, 0, 0]


class _ChipIdentity:
    """A stand-in identity model: the chip's first pixel says who it is; two people at cosine 0.75."""

    name = "dlib_resnet"
    template = None

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        base = rng.normal(size=128)
        self.people = [base + 0.8 * rng.normal(size=128) for _ in range(2)]

    def embed_aligned(self, chips: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(int(chips.sum()) % 1000)
        out = np.stack([self.people[int(c[0, 0, 0])] + 0.05 * rng.normal(size=128) for c in chips])
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_an_identity_switch_is_located_to_one_sampled_frame():
    from lfa.curate.config import IdentityConfig
    from lfa.curate.pipeline import build_scorer
    from lfa.curate.stages.identity import change_point, check_identity

    def track(switch_at: float | None) -> list:
        out = []
        for i in range(16):  # 4 s at 4 fps, frontal
            t = i / 4
            face = _face(100, 120, 0.0)
            face.chip = np.full((4, 4, 3), int(switch_at is not None and t >= switch_at), np.uint8)
            out.append((t, face))
        return out

    encoder, scorer = _ChipIdentity(), build_scorer(CurateConfig())
    decision, evidence = check_identity(track(2.25), encoder, IdentityConfig(), scorer)
    assert decision.reason == "identity_switch" and decision.value < decision.threshold
    assert 2.0 < decision.stats["switch_at"] < 2.25  # between the last face before and the first after
    assert len(evidence.times) > IdentityConfig().frames  # the frames around the switch were embedded
    decision, evidence = check_identity(track(None), encoder, IdentityConfig(), scorer)
    assert decision.accepted and len(evidence.times) == IdentityConfig().frames
    # between two sampled faces, the frames at the full rate: the second person from the first that leans to it
    assert change_point(np.array([-0.3, -0.2, 0.25, 0.3])) == 2
    assert change_point(np.array([-0.3, 0.05, -0.2, 0.3])) == 3  # one noisy frame does not move the cut
    assert change_point(np.array([-0.3, -0.2])) == 2 and change_point(np.array([0.2, 0.3])) == 0


def test_a_switch_clip_split_at_the_sampled_rate_keeps_no_frame_of_the_other_person(corpus, tmp_path):
    """4 sampled frames a second, 25 frames a second: the cut lies between two sampled frames, and must fall
    on the second person's first frame."""
    import json

    video = corpus / "identity_switch.mp4"
    config = CurateConfig.load(None, ["identity.on_switch=split", "speech.enabled=false"])
    curate([video], tmp_path / "run", config, workers=1, report=False)
    parts = sorted(rows(tmp_path / "run", "manifest") + rows(tmp_path / "run", "rejected"), key=lambda r: r["start"])
    truth = json.loads(video.with_suffix(".json").read_text())["frames"]
    people = [{f["identity"] for r in truth if part["start"] <= r["t"] < part["end"] for f in r["faces"]}
              for part in parts]
    assert [len(p) for p in people] == [1, 1] and people[0] != people[1], [(p["start"], p["end"]) for p in parts]
    assert parts[0]["end"] == parts[1]["start"] == 2.0


# Issue 25: a dead worker, inputs in no table, byte-identical copies, the switch frame, the report.
LITTLE = {  # short, small clips: an accepted one, and rejections for the angle and for another face
    "turning": ClipSpec("astronaut", "yaw-sweep", 2.4, fps=10, width=320, height=320, seed=1),
    "still": ClipSpec("astronaut", "static", 2.4, fps=10, width=320, height=320, seed=4),
    "pair": ClipSpec("astronaut", "yaw-sweep", 2.4, fps=10, width=320, height=320, face_size=0.24, seed=6,
                     second_face=SecondFace("grace_hopper", 1.0, "frontal")),
}
LITTLE_SETTINGS = ["tracking.sample_fps=2"]
TABLES = ("manifest", "frames", "rejected", "failures", "clusters")


@pytest.fixture(scope="module")
def inbox(tmp_path_factory, heads) -> Path:
    """The little clips with their sidecars (NAME.json) and a caption (turning.txt), a byte-identical copy
    of one of them and a FIFO named like a video."""
    folder = tmp_path_factory.mktemp("inbox")
    build_corpus(folder, specs=LITTLE, heads=heads)
    (folder / "turning.txt").write_text("A man turns his head.")
    shutil.copy(folder / "turning.mp4", folder / "turning again.mp4")
    os.mkfifo(folder / "y.mp4")
    return folder


@contextmanager
def fifo_watch(fifo: Path) -> Iterator[list[str]]:
    """Notes whether anything opens ``fifo`` for reading meanwhile (and lets such a reader go on)."""
    opened: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.005):
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # succeeds only while a reader has it open
                opened.append("opened")
            except OSError:
                pass

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield opened
    finally:
        stop.set()
        thread.join()


@pytest.fixture(scope="module")
def inbox_run(inbox, tmp_path_factory) -> tuple[Path, Any, list[str]]:
    """An uninterrupted run on the inbox, in this process: (run folder, summary, opens of the FIFO)."""
    run = tmp_path_factory.mktemp("inbox-run")
    with fifo_watch(inbox / "y.mp4") as opened:
        summary = curate([inbox], run, CurateConfig.load(None, LITTLE_SETTINGS), workers=1)
    return run, summary, opened


def test_every_file_is_an_input_or_a_caption_and_copies_are_flagged(inbox_run):
    run, summary, opened = inbox_run
    assert every_input_once(run) == {"turning.mp4": "manifest", "turning again.mp4": "manifest",
                                     "still.mp4": "rejected", "pair.mp4": "rejected", "y.mp4": "failures"}
    fifo = rows(run, "failures")[0]
    assert "FIFO" in fifo["error"] and "not opened" in fifo["error"] and not opened
    assert (summary.inputs, summary.caption_files, summary.duplicates) == (5, 4, 1)  # NAME.json x3, turning.txt
    captions = {Path(m["source"]).name: m["caption"] for m in rows(run, "manifest")}
    assert captions["turning.mp4"].startswith("A man turns his head.")
    copies = [w for w in rows(run, "warnings") if w["stage"] == "duplicate"]  # " " sorts before "."
    assert len(copies) == 1 and Path(copies[0]["source"]).name == "turning.mp4"
    assert "byte-identical to" in copies[0]["message"] and "turning again.mp4" in copies[0]["message"]
    assert len({m["cluster_id"] for m in rows(run, "manifest")}) == 1  # a split by cluster keeps them together
    assert [c["clips"] for c in rows(run, "clusters")] == [2]
    assert "byte-identical copies of another input" in (run / "report.html").read_text()


def test_dedup_keeps_the_first_copy_and_reuses_the_finished_work(inbox, inbox_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(inbox_run[0], run)
    seen: list[dict] = []
    config = CurateConfig.load(None, LITTLE_SETTINGS + ["dedup=true"])
    summary = curate([inbox], run, config, workers=1, report=False, on_input=seen.append)
    assert summary.processed == 0 and seen == []  # dedup is applied when the tables are merged
    assert [Path(m["source"]).name for m in rows(run, "manifest")] == ["turning again.mp4"]
    dropped = [r for r in rows(run, "rejected") if r["stage"] == "duplicates"]
    assert [(Path(r["source"]).name, r["reason"]) for r in dropped] == [("turning.mp4", "duplicate_input")]
    assert every_input_once(run)["turning.mp4"] == "rejected"
    curate([inbox], run, CurateConfig.load(None, LITTLE_SETTINGS), workers=1, report=False, on_input=seen.append)
    assert seen == [] and rows(run, "manifest") == rows(inbox_run[0], "manifest")  # and back
    with pytest.raises(ConfigError, match="dedup"):
        CurateConfig.load(None, ["dedup=yes"])


def test_a_worker_killed_mid_run_does_not_stop_the_run(inbox, inbox_run, tmp_path):
    """SIGKILL of a local worker process while it reads an input: the run ends with every table, equal to an
    uninterrupted run's; the input it was running is run again, its lost attempt listed in warnings."""
    from tests.processes import descendants, open_files

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "lfa", "curate", str(inbox), "--out", str(run), "--workers", "2", "--no-report",
           *[x for s in LITTLE_SETTINGS for x in ("--set", s)]]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed: list[Path] = []
    while proc.poll() is None and not killed:
        for pid in descendants(proc.pid)[1:]:
            busy = [f for f in open_files(pid) if f.parent == inbox and f.suffix == ".mp4"]
            if busy:
                os.kill(pid, signal.SIGKILL)
                killed.append(busy[0])
                break
        time.sleep(0.005)
    out, err = proc.communicate(timeout=300)
    assert killed, "no worker was caught reading an input"
    assert proc.returncode == 0 and err == "", err
    assert "5 inputs (4 processed now)" in " ".join(out.split())  # the FIFO is a failure row of the listing
    for name in TABLES:
        assert pq.read_table(run / f"{name}.parquet").equals(pq.read_table(inbox_run[0] / f"{name}.parquet")), name
    warnings = rows(run, "warnings")
    assert [w for w in warnings if w["stage"] != "executor"] == rows(inbox_run[0], "warnings")
    assert [(w["source"], w["message"]) for w in warnings if w["stage"] == "executor"] == [
        (str(killed[0]), "attempt 1 ended with its worker process dead (killed by SIGKILL)")]
    bar = [line for line in out.splitlines() if "accepted" in line and "failed" in line][-1]
    assert "failed 1" in bar  # the FIFO, as in the summary table (the bar used to count processed inputs only)


def test_an_input_that_kills_its_worker_every_time_becomes_a_failure_row(inbox, inbox_run, tmp_path, monkeypatch):
    from lfa.curate.executors import CRASH_INPUTS_ENV

    crash = tmp_path / "crash.mp4"
    shutil.copy(inbox / "pair.mp4", crash)
    monkeypatch.setenv(CRASH_INPUTS_ENV, "crash.mp4")  # test-only: its worker kills itself when handed it
    said: list[str] = []
    summary = curate([inbox / "still.mp4", crash], tmp_path / "run", CurateConfig.load(None, LITTLE_SETTINGS),
                     workers=2, attempts=2, report=False, on_status=said.append)
    run = tmp_path / "run"
    assert summary.inputs == 2 and [f["input"] for f in summary.failed] == [str(crash)]
    assert "gave up after 2 attempts" in summary.failed[0]["error"] and "re-encode" in summary.failed[0]["fix"]
    notes = [(w["stage"], w["message"]) for w in rows(run, "warnings") if w["source"] == str(crash)]
    assert notes == [("executor", f"attempt {k} ended with its worker process dead (killed by SIGKILL)")
                     for k in (1, 2)]
    assert any(s.startswith("retrying crash.mp4") for s in said)
    still = str(inbox / "still.mp4")
    for name in ("frames", "rejected"):  # the other input is untouched
        assert [r for r in rows(run, name) if r["source"] == still] == \
               [r for r in rows(inbox_run[0], name) if r["source"] == still], name


def _box_pixels(strip: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int((np.abs(strip.astype(int) - colour).max(axis=2) < 40).sum())


def test_the_report_says_what_each_value_measures_and_boxes_the_faces(inbox_run):
    import base64
    import html
    import re

    import cv2

    from lfa.curate.records import MEASURES
    from lfa.curate.report import MAIN_BOX, OFFENDING_BOX

    page = (inbox_run[0] / "report.html").read_text()
    row = {}
    for name in ("pair", "still"):
        match = re.search(rf"<tr><td>{name}-[^<]*</td>(.*?)</tr>", page)
        assert match, name
        row[name] = match.group(1)
    assert html.escape(MEASURES["single_face_fraction"][0]) in row["pair"] and "must be ≥ 0.8" in row["pair"]
    # the still head is rejected by the cascade's cheap yaw (issue 30): the row says so
    assert html.escape(MEASURES["yaw_range_cheap"][0]) in row["still"] and "must be ≥ 40" in row["still"]
    strips = {}
    for name, cells in row.items():
        data = re.search(r"src='data:image/jpeg;base64,([^']*)'", cells).group(1)
        strips[name] = cv2.cvtColor(cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), 1), cv2.COLOR_BGR2RGB)
    assert _box_pixels(strips["pair"], MAIN_BOX) > 200 and _box_pixels(strips["pair"], OFFENDING_BOX) > 200
    assert _box_pixels(strips["still"], MAIN_BOX) > 200 and _box_pixels(strips["still"], OFFENDING_BOX) == 0


def test_a_script_without_a_main_guard_curates_with_worker_processes(inbox, inbox_run, tmp_path):
    """Worker processes run lfa's code only. multiprocessing used to run the caller's script again in each
    of them: a script without ``if __name__ == "__main__":`` then called ``curate`` in every worker, which
    multiprocessing refuses, and the run stopped with "worker processes keep dying"."""
    import textwrap

    sources = [inbox / "still.mp4", inbox / "pair.mp4"]
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(f"""
        from pathlib import Path
        from lfa.curate.config import CurateConfig
        from lfa.curate.run import curate
        print("script body")
        summary = curate([Path(p) for p in {[str(s) for s in sources]!r}], Path({str(tmp_path / "run")!r}),
                         CurateConfig.load(None, {LITTLE_SETTINGS!r}), workers=2, report=False)
        print("processed", summary.processed)
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["script", "body", "processed", "2"]  # the body ran once, in the driver
    for name in ("frames", "rejected"):
        assert rows(tmp_path / "run", name) == [r for r in rows(inbox_run[0], name)
                                                if r["source"] in map(str, sources)], name


def test_worker_processes_take_the_largest_inputs_first(tmp_path):
    from lfa.curate.run import largest_first, list_inputs

    for name, size in (("a.mp4", 10), ("b.mp4", 300), ("c.mp4", 20)):
        (tmp_path / name).write_bytes(b"x" * size)
    listed = list_inputs([tmp_path / n for n in ("a.mp4", "b.mp4", "gone.mp4", "c.mp4")]).inputs
    assert [item.path.name for item in largest_first(listed)] == ["b.mp4", "c.mp4", "a.mp4", "gone.mp4"]
