"""lfa curate on the labelled synthetic corpus: decisions, executors, resume after SIGKILL, bad input."""

import json
from fractions import Fraction
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from lfa.curate.clustering import cluster_identities
from lfa.curate.config import CurateConfig
from lfa.curate.run import curate, list_inputs
from lfa.curate.stages.shots import clip_windows
from lfa.errors import ConfigError
from lfa.media import read_frames, write_video
from lfa.synth import STANDARD_CORPUS
from tests.chat_server import FakeChatServer


def table(run: Path, name: str) -> list[dict]:
    return pq.read_table(run / f"{name}.parquet").to_pylist()


def decisions(run: Path) -> dict[str, dict]:
    """Per corpus clip: accepted clip count and the rejection reasons."""
    out = {name: {"accepted": 0, "reasons": []} for name in STANDARD_CORPUS}
    for row in table(run, "manifest"):
        out[Path(row["source"]).stem]["accepted"] += 1
    for row in table(run, "rejected"):
        out[Path(row["source"]).stem]["reasons"].append(row["reason"])
    return out


def assert_matches_labels(run: Path) -> None:
    for name, got in decisions(run).items():
        expected = STANDARD_CORPUS[name].expected
        if expected["decision"] == "accept":
            assert got == {"accepted": expected["shots"], "reasons": []}, name
        else:
            assert got == {"accepted": 0, "reasons": [expected["reason"]]}, name


@pytest.fixture(scope="module")
def local_run(curated_corpus):
    return curated_corpus


def test_local_executor_matches_every_label(local_run):
    assert_matches_labels(local_run)
    manifest = table(local_run, "manifest")
    by_source = {Path(m["source"]).stem: m for m in manifest}
    # the two identities form two clusters
    assert by_source["large_angle_astronaut"]["cluster_id"] == by_source["speaking_on_screen"]["cluster_id"]
    assert by_source["large_angle_astronaut"]["cluster_id"] != by_source["large_angle_grace"]["cluster_id"]
    for m in manifest:
        assert m["yaw_range"] >= 40 and len(m["identity_centroid"]) == 128 and sum(m["yaw_hist"]) > 0
        roles = [r["role"] for r in m["references"]]
        assert roles == ["frontal", "yaw_min", "yaw_max", "pitch_min", "pitch_max"]
        frontal, yaw_min, yaw_max = m["references"][:3]
        assert abs(frontal["yaw"]) < 10 and yaw_min["yaw"] == m["yaw_min"] and yaw_max["yaw"] == m["yaw_max"]
    frames = table(local_run, "frames")
    assert {f["clip_id"] for f in frames} >= {m["clip_id"] for m in manifest}
    rejected = table(local_run, "rejected")
    small = next(r for r in rejected if r["reason"] == "face_too_small")
    assert small["value"] < small["threshold"] and small["stage"] == "face_constraints"
    config = json.loads((local_run / "config.json").read_text())
    assert config["constraints"]["angle_criterion"] == "yaw_range"


def test_speech_status_matches_the_corpus_labels(local_run):
    status = {"on_screen": "speaking", "voice_over": "voiceover", "silent": "silent"}  # synth label -> status
    manifest = table(local_run, "manifest")
    for m in manifest:
        assert m["speech_status"] == status[STANDARD_CORPUS[Path(m["source"]).stem].expected["speech"]], m["clip_id"]
    assert {m["speech_status"] for m in manifest} == {"speaking", "voiceover", "silent"}


def test_ray_executor_gives_the_same_manifest(corpus, local_run, tmp_path):
    curate([corpus], tmp_path, executor="ray", workers=2, report=False)
    for name in ("manifest", "frames", "rejected", "failures"):
        assert pq.read_table(tmp_path / f"{name}.parquet").equals(pq.read_table(local_run / f"{name}.parquet")), name


def test_rerun_skips_finished_inputs(corpus, local_run):
    before = pq.read_table(local_run / "manifest.parquet")
    seen = []
    summary = curate([corpus], local_run, on_input=seen.append)
    assert summary.processed == 0 and seen == []
    assert pq.read_table(local_run / "manifest.parquet").equals(before)


def test_sigkill_then_rerun_gives_the_same_manifest(corpus, local_run, tmp_path):
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "lfa", "curate", str(corpus), "--out", str(run), "--workers", "1", "--no-report"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and len(list(run.glob("work/*/*.json"))) < 3:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(run.glob("work/*/*.json")))
    assert 3 <= done < len(STANDARD_CORPUS), "the run should have been killed part-way"
    assert not (run / "manifest.parquet").exists()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"({len(STANDARD_CORPUS) - done} processed now)" in proc.stdout.replace("\n", " ")
    for name in ("manifest", "frames", "rejected"):
        assert pq.read_table(run / f"{name}.parquet").equals(pq.read_table(local_run / f"{name}.parquet")), name
    ids = [m["clip_id"] for m in table(run, "manifest")]
    assert len(ids) == len(set(ids))


def _audio_only(path: Path) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        t = np.arange(16000 * 2) / 16000
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def _variable_frame_rate(path: Path, frames: list[np.ndarray]) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            t += 30 if i % 2 else 50  # alternating 30 ms and 50 ms
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def test_bad_and_odd_inputs_never_stop_the_run(corpus, tmp_path):
    good = corpus / "large_angle_astronaut.mp4"
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "empty.mp4").touch()
    (inbox / "notes.mp4").write_text("not a video\n")
    (inbox / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 5])
    shutil.copy(corpus / "static_face.mp4", inbox / "it's a clip — ünïcødé & spaces.mp4")
    _audio_only(inbox / "voice.m4a")
    frames = [f.image for f in read_frames(good)]
    write_video(inbox / "rotated.mp4", [np.ascontiguousarray(np.rot90(f, k=-1)) for f in frames], 25, rotation=90)
    _variable_frame_rate(inbox / "vfr.mp4", frames)
    huge = [np.full((2160, 3840, 3), 90, np.uint8)] * 12
    write_video(inbox / "huge.mp4", huge, 5)
    summary = curate([inbox], tmp_path / "run", workers=1)
    assert summary.inputs == 8
    failures = {Path(f["input"]).name: f["error"] for f in table(tmp_path / "run", "failures")}
    assert set(failures) == {"empty.mp4", "notes.mp4", "truncated.mp4", "voice.m4a"}
    assert "empty" in failures["empty.mp4"]
    assert "not a video" in failures["notes.mp4"]
    assert "truncated" in failures["truncated.mp4"] or "corrupt" in failures["truncated.mp4"]
    assert "no video stream" in failures["voice.m4a"]
    got = decisions_by_name(tmp_path / "run")
    assert got["rotated.mp4"] == {"accepted": 1, "reasons": []}  # upright frames: a large-angle face
    assert got["vfr.mp4"] == {"accepted": 1, "reasons": []}
    assert got["it's a clip — ünïcødé & spaces.mp4"]["reasons"] == ["insufficient_angle_variation"]
    assert got["huge.mp4"]["reasons"] == ["no_face"]
    manifest = table(tmp_path / "run", "manifest")
    rotated = next(m for m in manifest if Path(m["source"]).name == "rotated.mp4")
    assert (rotated["width"], rotated["height"]) == (512, 512)
    # --retry-failed retries only the failures
    seen = []
    curate([inbox], tmp_path / "run", retry_failed=True, on_input=seen.append, report=False)
    assert sorted(Path(s["source"]).name for s in seen) == sorted(failures)


def decisions_by_name(run: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for row in table(run, "manifest"):
        out.setdefault(Path(row["source"]).name, {"accepted": 0, "reasons": []})["accepted"] += 1
    for row in table(run, "rejected"):
        out.setdefault(Path(row["source"]).name, {"accepted": 0, "reasons": []})["reasons"].append(row["reason"])
    return out


def test_report_is_a_self_contained_page(local_run):
    page = (local_run / "report.html").read_text()
    assert page.startswith("<!doctype html>") and page.endswith("</html>")
    for section in ("Funnel", "Rejections", "Distributions", "Accepted clips", "identity_switch"):
        assert section in page
    curves = page.count("<img alt='speech curves ")  # the speech stage's examples (mouth vs speech)
    assert curves >= 1 and page.count("data:image/png;base64,") == 4 + curves and "data:image/jpeg;base64," in page
    assert "http://" not in page and "https://" not in page


def test_export_writes_webdataset_shards(local_run, tmp_path):
    import tarfile

    proc = subprocess.run([sys.executable, "-m", "lfa", "curate", "export", str(local_run), str(tmp_path / "wds"),
                           "--shard-size", "4"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    manifest = table(local_run, "manifest")
    index = [json.loads(line) for line in (tmp_path / "wds" / "index.jsonl").read_text().splitlines()]
    assert [i["clip_id"] for i in index] == [m["clip_id"] for m in manifest]
    shards = sorted((tmp_path / "wds" / "shards").glob("*.tar"))
    assert len(shards) == -(-len(manifest) // 4)
    with tarfile.open(shards[0]) as tar:
        names = tar.getnames()
        key = index[0]["clip_id"]
        assert {f"{key}.mp4", f"{key}.json", f"{key}.ref_frontal.jpg"} <= set(names)
        clip = tmp_path / "clip.mp4"
        clip.write_bytes(tar.extractfile(f"{key}.mp4").read())
    row = manifest[0]
    assert len(read_frames(clip)) == pytest.approx((row["end"] - row["start"]) * row["fps"], abs=2)


def test_config_overrides_and_errors(tmp_path):
    cfg = CurateConfig.load(None, ["tracking.sample_fps=2", "constraints.angle_criterion=euler_sum"])
    assert cfg.tracking.sample_fps == 2 and cfg.constraints.angle_criterion == "euler_sum"
    with pytest.raises(ConfigError, match="tracking.sample_rate"):
        CurateConfig.load(None, ["tracking.sample_rate=2"])
    with pytest.raises(ConfigError, match="must be a number"):
        CurateConfig.load(None, ["tracking.sample_fps=fast"])
    with pytest.raises(ConfigError, match="yaw_range"):
        CurateConfig.load(None, ["constraints.angle_criterion=roll"])
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert CurateConfig.load(path) == cfg
    assert cfg.work_digest() == CurateConfig.load(path, ["identity.cluster_min_z=2.5"]).work_digest()
    assert cfg.work_digest() != CurateConfig.load(path, ["tracking.sample_fps=3"]).work_digest()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no input files"):
        curate([tmp_path / "empty"], tmp_path / "out")
    with pytest.raises(ConfigError, match="no input files found .*not found"):
        curate([tmp_path / "missing"], tmp_path / "out")
    assert [(i.path.name, i.problem[0]) for i in list_inputs([tmp_path / "missing"]).inputs] == [("missing", "input not found")]


def test_clip_windows_and_clustering():
    from lfa.curate.config import ShotConfig

    kept, short = clip_windows([3.0, 4.0], 25.0, ShotConfig(min_clip_s=2.0, window_s=10.0))
    assert kept == [(0.0, 3.0), (4.0, 11.0), (11.0, 18.0), (18.0, 25.0)] and short == [(3.0, 4.0)]
    from lfa.curate.pipeline import build_scorer
    from lfa.face.identity.score import FaceSet

    rng = np.random.default_rng(0)
    base = rng.normal(size=128)
    a, b = base + 0.8 * rng.normal(size=128), base + 0.8 * rng.normal(size=128)  # two people, cosine ~0.6
    clip = lambda v: FaceSet(np.stack([v + 0.05 * rng.normal(size=128) for _ in range(5)]), np.zeros(5),
                             backend="dlib_resnet")
    clusters = cluster_identities([clip(a), clip(a), clip(b), clip(b), clip(a)], build_scorer(CurateConfig()), 3.0)
    assert clusters.ids.tolist() == [0, 0, 1, 1, 0]
    assert [r["clips"] for r in clusters.rows()] == [3, 2]


def test_shot_scores_equal_pyscenedetect(corpus):
    """ShotBoundaries (BGR thumbnails straight from YUV, its own HSV difference) gives PySceneDetect's
    ContentDetector's scores and cuts bit for bit, on RGB thumbnails converted the old way (and on images
    more than twice the analysis width, which both scale down the same way)."""
    import cv2
    from scenedetect import FrameTimecode
    from scenedetect.detectors import ContentDetector

    from lfa.curate.config import ShotConfig
    from lfa.curate.stages.shots import ShotBoundaries
    from lfa.media import iter_decoded

    config = ShotConfig()
    rng = np.random.default_rng(0)
    greyish = [np.clip(128 + rng.integers(-3, 4, size=(90, 160, 3)), 0, 255).astype(np.uint8) for _ in range(6)]
    streams = [[(f.thumbnail(config.analysis_width), f.thumbnail(config.analysis_width, bgr=True))
                for f in iter_decoded(v)] for v in sorted(corpus.glob("*.mp4"))]
    noise = greyish + [rng.integers(0, 256, size=(90, 160, 3), dtype=np.uint8) for _ in range(6)]
    streams.append([(rgb, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)) for rgb in noise])
    wide = [np.repeat(np.repeat(rgb, 4, axis=0), 4, axis=1) for rgb in noise]  # 640 px: scaled down first
    streams.append([(rgb, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)) for rgb in wide])
    cuts = 0
    for frames in streams:
        ours, library = ShotBoundaries(config, 25.0), ContentDetector(config.threshold, min_scene_len=12)
        theirs = []
        for k, (rgb, bgr) in enumerate(frames):
            ours.add(bgr)
            h, w = rgb.shape[:2]
            small = rgb if w <= 320 else cv2.resize(rgb[::2, ::2], (160, round(h * 160 / w)), interpolation=cv2.INTER_AREA)
            theirs += library.process_frame(FrameTimecode(k, 25.0), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
            assert ours.score() == library._frame_score
        assert ours.cuts == [c.frame_num / 25.0 for c in theirs]
        cuts += len(theirs)
    assert cuts >= 1  # the corpus' scene cut


def test_result_json_is_asdicts_text():
    import json
    from dataclasses import asdict

    from lfa.curate.pipeline import InputResult
    from lfa.curate.store import result_json
    from lfa.face.types import HeadPose

    result = InputResult("a.mp4", clips=[{"clip_id": "a-000", "yaw": [1.5, -2.0], "pose": HeadPose(1.0, 2.0, 3.0)}],
                         rejected=[{"reason": "no_face", "t": (0.0, 4.0)}], frames=[{"box": [1.0, 2.0], "n": None}],
                         failure={"error": "x"}, decoded_frames=7)
    result.warn("scan", "odd")
    assert result_json(result) == json.dumps(asdict(result))
    with pytest.raises(TypeError):
        result_json(InputResult("b.mp4", frames=[{"x": np.zeros(2)}]))


def test_vlm_captions_retry_and_cache(corpus, tmp_path):
    from lfa.curate.stages.captions import VlmCaptioner
    from lfa.errors import LfaError

    fake = FakeChatServer(fail_first=1)
    try:
        inbox = tmp_path / "in"
        inbox.mkdir()
        for name in ("large_angle_grace", "silent"):
            shutil.copy(corpus / f"{name}.mp4", inbox / f"{name}.mp4")
        (inbox / "silent.txt").write_text("Grace Hopper turns her head, silent.")
        cfg = CurateConfig.load(None, [f"captions.vlm_endpoint={fake.url}", "captions.timeout_s=5"])
        curate([inbox], tmp_path / "run", cfg, workers=1, report=False)
        rows = {Path(m["source"]).stem: m for m in table(tmp_path / "run", "manifest")}
        assert rows["silent"]["caption"] == ("Grace Hopper turns her head, silent. "
                                             "The person on screen does not speak.")  # + the speech stage
        assert rows["silent"]["caption_source"] == "sidecar-txt+speech-template"
        assert rows["large_angle_grace"]["caption"].startswith("a person, request 2.")  # the first try: HTTP 500
        assert rows["large_angle_grace"]["caption_source"] == "vlm+speech-template"
        content = fake.requests[-1]["messages"][0]["content"]
        assert content[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
        n = len(fake.requests)
        curate([inbox], tmp_path / "run", cfg, workers=1, report=False)  # cached: no new request
        assert len(fake.requests) == n
    finally:
        fake.close()
    dead = VlmCaptioner(CurateConfig.load(None, ["captions.vlm_endpoint=http://127.0.0.1:9/v1", "captions.retries=1",
                                                 "captions.timeout_s=1"]).captions, tmp_path / "cache")
    with pytest.raises(LfaError, match="VLM captioning failed"):
        dead.caption(np.zeros((32, 32, 3), np.uint8))
