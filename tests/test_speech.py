"""Speech disambiguation (issue 14): statuses on rendered clips, a real recording's transcript, the lag
search, the curation stage, and the caption rewrite through a loopback OpenAI-compatible server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lfa.curate.config import CurateConfig
from lfa.curate.run import curate
from lfa.errors import ConfigError
from lfa.media import extract_audio, read_frames, write_video
from lfa.speech import SpeechConfig, SpeechModels, speech_of_video
from lfa.speech.caption import rewrite_caption, template_caption
from lfa.synth.clip import ClipSpec, render_clip
from tests.chat_server import FakeChatServer

KINDS = {  # name: (ClipSpec overrides); short, low-resolution clips, rendered once for the module
    "speaking": dict(speech="on_screen"),
    "shifted": dict(speech="on_screen", audio_shift_s=0.2),
    "voiceover": dict(speech="voice_over"),
    "no_stream": dict(speech="none", audio_stream=False),
    "silent_track": dict(speech="none"),
    "mouth_only": dict(speech="mouth_only"),
    "tone": dict(speech="tone"),
    "noise": dict(speech="noise"),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory, heads):
    folder = tmp_path_factory.mktemp("speech_clips")
    for name, extra in KINDS.items():
        spec = ClipSpec("astronaut", "frontal", 2.6, 25.0, 256, 256, 0.45, speech_index=1, speech_at=0.1,
                        background="field", **extra)
        render_clip(spec, folder / f"{name}.mp4", heads)
    return folder


@pytest.fixture(scope="module")
def models(store):
    assert store.is_available("silero_vad") and store.is_available("whisper_tiny_en"), "run `lfa models fetch`"
    return SpeechModels(SpeechConfig(), store)


@pytest.fixture(scope="module")
def results(clips, models):
    return {name: speech_of_video(clips / f"{name}.mp4", models=models) for name in KINDS}


def test_statuses_of_rendered_clips(results, clips):
    got = {name: r.status for name, r in results.items()}
    assert got["speaking"] == "speaking"
    assert got["voiceover"] == "voiceover"
    assert got["no_stream"] == "silent" and results["no_stream"].audio == "no_stream"
    assert got["silent_track"] == "silent" and results["silent_track"].audio == "digital_silence"
    assert got["mouth_only"] != "speaking"
    assert got["tone"] == "non_speech_audio" and got["noise"] == "non_speech_audio"
    for name in KINDS:  # the synth sidecar's label is the status the stage should give
        assert json.loads((clips / f"{name}.json").read_text())["speech"]["status"] == got[name], name
    speaking = results["speaking"]
    assert speaking.av_score >= SpeechConfig().min_av_score > results["voiceover"].av_score
    assert [s["status"] for s in speaking.to_dict()["segments"]] == ["speaking"]
    assert "fox" in speaking.transcript.lower() and speaking.language == "en"
    assert speaking.caption.startswith("The person on screen is speaking, saying: \"")
    assert "does not speak; a voice off screen" in results["voiceover"].caption


def test_audio_shift_is_found_by_the_lag_search(results):
    shifted, base = results["shifted"], results["speaking"]
    assert shifted.status == "speaking"
    assert shifted.lag_s - base.lag_s == pytest.approx(0.2, abs=0.06)


def test_real_recording_muxed_into_a_clip_is_transcribed(clips, models, store, tmp_path):
    frames = read_frames(clips / "mouth_only.mp4", end=1.6)
    audio = extract_audio(store.path("speech_en", "hello_world.wav"))  # pytest-audioeval: "Hello world."
    clip = tmp_path / "hello.mp4"
    write_video(clip, [f.image for f in frames], 25.0, audio=np.concatenate([np.zeros(3200, np.float32), audio]))
    result = speech_of_video(clip, models=models)
    words = result.transcript.lower()
    assert "hello" in words and "world" in words
    assert result.status == "voiceover"  # the rendered mouth moved to other speech


def test_cli_json(clips, monkeypatch):
    from typer.testing import CliRunner

    from lfa.cli import app

    res = CliRunner().invoke(app, ["speech", str(clips / "tone.mp4"), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert set(data) == {"status", "segments", "language", "transcript", "caption"}
    assert data["status"] == "non_speech_audio"
    res = CliRunner().invoke(app, ["speech", str(clips / "tone.mp4"), "--set", "on_voiceover=zap"])
    assert res.exit_code != 0 and "on_voiceover" in str(res.exception)


def test_curation_stage_columns_drop_and_report(clips, tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    for name in ("speaking", "voiceover"):
        shutil.copy(clips / f"{name}.mp4", inbox / f"{name}.mp4")
    # the clips hold a frontal head: no angle requirement, so that the speech stage sees them
    cfg = CurateConfig.load(None, ["shots.min_clip_s=1.0", "constraints.min_yaw_range=0", "speech.on_voiceover=drop"])
    curate([inbox], tmp_path / "run", cfg, workers=1, report=True)
    rows = {Path(m["source"]).stem: m for m in pq.read_table(tmp_path / "run" / "manifest.parquet").to_pylist()}
    rejected = pq.read_table(tmp_path / "run" / "rejected.parquet").to_pylist()
    assert set(rows) == {"speaking"}
    assert [(Path(r["source"]).stem, r["stage"], r["reason"]) for r in rejected] == [("voiceover", "speech", "voiceover")]
    speaking = rows["speaking"]
    assert speaking["speech_status"] == "speaking" and speaking["speech_av_score"] >= 0.6
    assert speaking["speech_segments"][0]["status"] == "speaking" and "fox" in speaking["transcript"].lower()
    assert speaking["caption"].startswith("The person on screen is speaking") and speaking["language"] == "en"
    assert len(speaking["speech_mouth"]) == len(speaking["speech_curve_t"]) >= 30  # 12.5 fps over 2.6 s
    report = (tmp_path / "run" / "report.html").read_text()
    assert "<h2>Speech</h2>" in report and "speech curves" in report

    from lfa.curate.export import export_webdataset

    index = export_webdataset(tmp_path / "run", tmp_path / "export")
    lines = [json.loads(line) for line in index.read_text().splitlines()]
    assert [line["speech_status"] for line in lines] == ["speaking"]


def test_syncnet_backend_with_weights_the_test_builds(clips, results, store, tmp_path):
    import torch

    from lfa.errors import ModelLoadError
    from lfa.registry import ModelStore
    from lfa.speech import analyze_speech
    from lfa.speech.syncnet import SyncScore, _network, read_crops, syncnet_follows

    torch.manual_seed(0)
    net = _network()
    torch.save(net.state_dict(), tmp_path / "syncnet_v2.model")
    torch.save({"net": torch.nn.Linear(2, 2)}, tmp_path / "pickled.model")  # a pickled module
    home = ModelStore(tmp_path / "home")
    home.models_dir.mkdir(parents=True)
    for name in ("yunet", "face_landmarker", "silero_vad", "whisper_tiny_en"):
        (home.models_dir / name).symlink_to(store.model_dir(name))
    with pytest.raises(ModelLoadError):  # pickled objects are refused (weights_only)
        home.add("syncnet", tmp_path / "pickled.model")
    home.add("syncnet", tmp_path / "syncnet_v2.model")
    # the SyncNet path on the first 0.4 s of crops (5 windows: random full-size weights are slow on CPU);
    # the mouth signal measured before
    config = SpeechConfig(syncnet=True)
    crops = read_crops(clips / "speaking.mp4", 0.0, 0.4, lambda frame: np.array([60.0, 70.0, 196.0, 220.0]))
    assert crops.shape == (10, 224, 224, 3)
    result = analyze_speech(clips / "speaking.mp4", 0.0, 2.6, lambda: results["speaking"].mouth, config,
                            SpeechModels(config, home), crops=lambda: crops)
    assert result.sync is not None and abs(result.sync.offset_frames) <= 15 and result.sync.confidence >= 0
    assert result.status == ("speaking" if syncnet_follows(result.sync) else "voiceover")  # its rule decides
    assert result.segments[0].av_score >= SpeechConfig().min_av_score  # and the envelope signal is reported too
    assert result.to_dict()["syncnet"]["offset_frames"] == result.sync.offset_frames
    assert syncnet_follows(SyncScore(6, 3.0, 1.0)) and syncnet_follows(SyncScore(-6, 7.0, 1.0))
    assert not syncnet_follows(SyncScore(7, 5.0, 1.0)) and not syncnet_follows(SyncScore(0, 2.9, 1.0))


# -- the caption rewrite through an OpenAI-compatible endpoint ------------------------------------------------

def _rewrite(server, tmp_path, **settings):
    config = SpeechConfig(rewrite_endpoint=server.url, rewrite_timeout_s=settings.pop("timeout", 5.0),
                          rewrite_retries=settings.pop("retries", 0), **settings)
    return rewrite_caption(template_caption("A woman.", "speaking", "hello there"), config, tmp_path / "cache")


def test_rewrite_answer_cache_and_fallbacks(tmp_path):
    template = template_caption("A woman.", "speaking", "hello there")
    assert template == 'A woman. The person on screen is speaking, saying: "hello there"'
    good = FakeChatServer(answer='A woman says "hello there".')
    try:
        assert _rewrite(good, tmp_path) == ('A woman says "hello there".', None)
        assert _rewrite(good, tmp_path)[0] == 'A woman says "hello there".' and len(good.requests) == 1  # cached
        assert good.requests[0]["messages"][1]["content"] == template
    finally:
        good.close()
    for server, expect in ((FakeChatServer(malformed=True), "malformed"), (FakeChatServer(delay_s=3.0), "in time"),
                           (FakeChatServer(fail_first=5), "HTTP 500")):
        try:
            caption, failure = _rewrite(server, tmp_path / expect, timeout=1.0)
        finally:
            server.close()
        assert caption == template and expect in failure


def test_rewrite_key_right_wrong_none(tmp_path, monkeypatch):
    server = FakeChatServer(key="sekrit-123")
    try:
        monkeypatch.setenv("LFA_TEST_KEY", "sekrit-123")
        assert _rewrite(server, tmp_path / "a", rewrite_api_key_env="LFA_TEST_KEY")[1] is None
        assert server.headers[-1]["authorization"] == "Bearer sekrit-123"
        monkeypatch.setenv("LFA_TEST_KEY", "wrong")
        caption, failure = _rewrite(server, tmp_path / "b", rewrite_api_key_env="LFA_TEST_KEY")
        assert "refused the key" in failure
        caption, failure = _rewrite(server, tmp_path / "c")  # no key configured
        assert "refused the key" in failure and server.headers[-1]["authorization"] != "Bearer sekrit-123"
        monkeypatch.delenv("LFA_TEST_KEY")
        with pytest.raises(ConfigError, match="LFA_TEST_KEY"):
            _rewrite(server, tmp_path / "d", rewrite_api_key_env="LFA_TEST_KEY")
    finally:
        server.close()


def test_key_is_in_no_file_of_the_run_dir(clips, tmp_path, monkeypatch):
    key = "sk-never-store-this-7f3a"
    monkeypatch.setenv("LFA_REWRITE_KEY", key)
    server = FakeChatServer(key=key, answer="A person who does not speak.")
    inbox = tmp_path / "in"
    inbox.mkdir()
    shutil.copy(clips / "tone.mp4", inbox / "tone.mp4")
    cfg = CurateConfig.load(None, ["shots.min_clip_s=1.0", "constraints.min_yaw_range=0",
                                   f"speech.rewrite_endpoint={server.url}", "speech.rewrite_api_key_env=LFA_REWRITE_KEY"])
    try:
        curate([inbox], tmp_path / "run", cfg, workers=1, report=True)
    finally:
        server.close()
    rows = pq.read_table(tmp_path / "run" / "manifest.parquet").to_pylist()
    assert [r["caption"] for r in rows] == ["A person who does not speak."]
    assert rows[0]["speech_status"] == "non_speech_audio" and rows[0]["speech_segments"] == []
    assert rows[0]["caption_source"] == "speech-llm"
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert any(p.parent.name == "speech" for p in files)  # the rewrite cache is there
    for path in files:
        assert key.encode() not in path.read_bytes(), path
    assert "LFA_REWRITE_KEY" in (tmp_path / "run" / "config.json").read_text()
