"""Speech disambiguation (issues 14, 26): statuses on rendered clips (mouths that say the words of the
speech, other words, or nothing), a real recording's transcript, the lag search, damaged sound tracks, long
shots cut in pauses, the curation stage, and the caption rewrite through a loopback OpenAI-compatible server."""

from __future__ import annotations

import json
import re
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
from tests.damage import corrupt_audio_packets

KINDS = {  # name: (ClipSpec overrides); short, low-resolution clips, rendered once for the module. The mouths say the
    # words of the shipped counting recording (dubbed: "hello world", then the mouth rests while the counting goes on).
    # The measure is right on ~87% of the held-out renders' decided segments (docs/PERFORMANCE.md); a dub timed like
    # the voice (the quick brown fox's mouth over the counting) is called speaking, so it is not one of these
    "speaking": dict(speech="on_screen"),
    "shifted": dict(speech="on_screen", audio_shift_s=0.2),
    "voiceover": dict(speech="voice_over"),
    "dubbed": dict(speech="dubbed"),
    "no_stream": dict(speech="none", audio_stream=False),
    "silent_track": dict(speech="none"),
    "mouth_only": dict(speech="mouth_only"),
    "tone": dict(speech="tone"),
    "noise": dict(speech="noise"),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory, heads, store):
    folder = tmp_path_factory.mktemp("speech_clips")
    for name, extra in KINDS.items():
        if name == "dubbed":
            extra = dict(extra, mouth_audio=str(store.path("speech_en", "hello_world.wav")))
        spec = ClipSpec("astronaut", "frontal", 3.4, 25.0, 256, 256, 0.45, speech_index=0, speech_at=0.2,
                        background="field", seed=2, **extra)
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
    assert got["dubbed"] != "speaking"  # the mouth says other words: voiceover (or, weak evidence, uncertain)
    assert got["no_stream"] == "silent" and results["no_stream"].audio == "no_stream"
    assert got["silent_track"] == "silent" and results["silent_track"].audio == "digital_silence"
    assert got["mouth_only"] != "speaking"
    assert got["tone"] == "non_speech_audio" and got["noise"] == "non_speech_audio"
    for name in KINDS:  # the synth sidecar's label is the status the stage should give
        if name != "dubbed":
            assert json.loads((clips / f"{name}.json").read_text())["speech"]["status"] == got[name], name
    speaking = results["speaking"]
    assert speaking.av_score >= SpeechConfig().min_av_score > results["dubbed"].av_score
    assert [s["status"] for s in speaking.to_dict()["segments"]] == ["speaking"]
    segment = speaking.to_dict()["segments"][0]  # the AV score's two tests are reported beside it
    assert segment["level_score"] + segment["syllable_score"] == pytest.approx(segment["av_score"], abs=2e-4)
    assert _words(speaking.transcript)[:3] == ["1", "2", "3"] and speaking.language == "en"
    assert speaking.caption.startswith("The person on screen is speaking, saying: \"")
    assert "does not speak; a voice off screen" in results["voiceover"].caption
    assert not any(r.warnings for r in results.values())


def test_audio_shift_is_found_by_the_window_offset(results, clips, store):
    # each segment's lag search is narrow (a mouth leads its sound by ~60 ms); sound 0.2 s late is found by the
    # window's offset estimate, and is not lined up without it (max_offset_s 0: files known to be in sync)
    shifted, base = results["shifted"], results["speaking"]
    assert shifted.status == "speaking"
    assert shifted.lag_s - base.lag_s == pytest.approx(0.2, abs=0.06)
    fixed = SpeechConfig(max_offset_s=0.0)
    assert speech_of_video(clips / "shifted.mp4", models=SpeechModels(fixed, store)).status != "speaking"


def test_real_recording_muxed_into_a_clip_is_transcribed(clips, models, store, tmp_path):
    frames = read_frames(clips / "mouth_only.mp4", end=1.6)
    audio = extract_audio(store.path("speech_en", "hello_world.wav"))  # pytest-audioeval: "Hello world."
    clip = tmp_path / "hello.mp4"
    write_video(clip, [f.image for f in frames], 25.0, audio=np.concatenate([np.zeros(3200, np.float32), audio]))
    result = speech_of_video(clip, models=models)
    words = result.transcript.lower()
    assert "hello" in words and "world" in words
    assert result.status != "speaking"  # the rendered mouth moved to other speech


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
    monkeypatch.setenv("COLUMNS", "80")  # the segment table, with both tests' scores, fits a terminal
    res = CliRunner().invoke(app, ["speech", str(clips / "speaking.mp4")])
    assert res.exit_code == 0, res.output
    assert all(word in res.output for word in ("level", "syll", "speaking"))
    assert max(len(line) for line in res.output.splitlines()) <= 80


def test_a_corrupt_first_audio_packet_changes_nothing_but_a_warning(clips, results, models, tmp_path):
    from typer.testing import CliRunner

    from lfa.cli import app

    damaged = tmp_path / "speaking_damaged.mp4"
    corrupt_audio_packets(clips / "speaking.mp4", damaged, (0,))
    result = speech_of_video(damaged, models=models)
    assert result.status == results["speaking"].status == "speaking"
    assert result.transcript == results["speaking"].transcript
    assert len(result.warnings) == 1 and "1 undecodable audio packet skipped (at 0.00 s" in result.warnings[0]
    res = CliRunner().invoke(app, ["speech", str(damaged), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["status"] == "speaking"
    assert "undecodable audio packet" in res.stderr and "speaking_damaged.mp4" in res.stderr


def test_a_track_that_never_decodes_is_unknown_with_its_reason(clips, models, tmp_path):
    from typer.testing import CliRunner

    from lfa.cli import app

    garbled = tmp_path / "garbled.mp4"
    corrupt_audio_packets(clips / "speaking.mp4", garbled, tuple(range(1000)))
    result = speech_of_video(garbled, models=models)
    assert result.status == "unknown" and result.audio == "undecodable"
    assert "none of its" in result.reason and "audio packets decodes" in result.reason and "ffmpeg" in result.reason
    assert result.caption == "Whether the person on screen speaks could not be determined."
    res = CliRunner().invoke(app, ["speech", str(garbled), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["reason"] == result.reason


def test_a_segment_with_few_mouth_frames_is_measured_not_a_crash():
    # a face seen on only 8 frames of a segment (fewer than the 0.4-s trend window) crashed the detrending
    from lfa.speech.agreement import detrend, segment_evidence
    from lfa.speech.lips import MouthSignal

    assert detrend(np.arange(9.0), 11).shape == (9,)
    t = np.arange(0, 4, 0.04)
    values = np.where((t > 1.0) & (t < 1.36), 0.3 + 0.1 * np.sin(t * 20), np.nan)  # 8 frames with a face
    audio = np.random.default_rng(0).normal(0, 0.1, 4 * 16000).astype(np.float32)
    each, _ = segment_evidence(audio, 0.0, MouthSignal(t, values), [(0.9, 1.6)], 0.06, 0.06, 0.3)
    assert each[0].frames == int(np.isfinite(values).sum()) < 11 and np.isfinite(each[0].mouth_motion)


def test_the_mouth_reader_follows_a_face_the_detector_misses():
    # the detector loses some faces turned 20-60 degrees that the landmarker still reads: lfa speech reads them
    # on the box of the last face read, for up to FOLLOW_S after it, and stops following after that
    from types import SimpleNamespace

    from lfa.face.types import HeadPose
    from lfa.media import Frame
    from lfa.speech.lips import FOLLOW_S, box_around, largest_face_reader, mouth_opening

    mesh = np.zeros((478, 3), np.float32)
    mesh[:, :2] = np.random.default_rng(0).uniform(100, 200, (478, 2))
    mesh[[13, 14, 61, 291], :2] = [(150, 170), (150, 180), (130, 175), (170, 175)]  # opening 10 / 40
    detected = {0, 1}  # the detector sees the face on frames 0 and 1 only
    landmarker_sees = {2, 3, 4, 40}  # the landmarker reads it on the box through frame 4, and on frame 40
    boxes = []

    class Landmarker:
        def estimate(self, image, detection):  # noqa: ANN001, ANN202
            boxes.append(detection.box)
            return HeadPose(30.0, 0.0, 0.0, mesh) if int(image[0, 0, 0]) in landmarker_sees else None

    face = SimpleNamespace(box=np.array([100, 100, 200, 200], np.float32), landmarks=mesh)
    analyzer = SimpleNamespace(pose=SimpleNamespace(landmarks_backend=Landmarker()),
                               analyze=lambda image: [face] if int(image[0, 0, 0]) in detected else [])
    seen = []
    read = largest_face_reader(analyzer, seen=seen.append)
    values = [read(Frame(index=i, t=i * 0.04, image=np.full((4, 4, 3), i, np.uint8))) for i in range(45)]
    assert values[0] == values[1] == values[4] == pytest.approx(mouth_opening(mesh)) == pytest.approx(0.25)
    # followed on frames 2-4; then tried until FOLLOW_S after frame 4, never again (frame 40 is too late)
    tried = round(FOLLOW_S / 0.04)
    assert np.isnan(values[5]) and np.isnan(values[40]) and len(boxes) == 3 + tried
    assert all(np.allclose(b, box_around(mesh)) for b in boxes)
    assert isinstance(seen[2], HeadPose) and seen[5] is None and seen[0] is face


def test_a_segment_needs_both_tests_not_to_fail_and_their_sum_to_speak():
    from lfa.speech.agreement import Evidence
    from lfa.speech.status import segment_status

    config = SpeechConfig()

    def status(level: float, syllable: float, motion: float = 0.03) -> str:
        return segment_status(Evidence(level + syllable, 0.0, 0.06, motion, 50, syllable, level), config)

    strong = config.min_av_score + 1.0
    # a long run of speech with short pauses: little silence for the level test, the syllables carry it
    assert status(config.max_voiceover_level + 0.2, strong) == "speaking"
    assert status(strong, config.max_voiceover_syllable) == "voiceover"  # loud when the voice is, off its syllables
    assert status(config.max_voiceover_level, strong) == "voiceover"  # talks in the voice's pauses
    assert status(strong, strong, motion=config.min_mouth_motion / 2) == "voiceover"  # a still mouth
    level = config.max_voiceover_level + 0.1  # neither test fails, their sum falls short
    assert status(level, config.min_av_score - level - 0.1) == "uncertain"
    # under a second (no syllable score): the level can show only that the mouth does not follow
    assert status(config.max_voiceover_level - 0.5, float("nan")) == "voiceover"
    assert status(strong, float("nan")) == "uncertain"


def test_policies_are_checked():
    for key in ("on_voiceover", "on_uncertain", "on_unknown"):
        with pytest.raises(ConfigError, match=key):
            SpeechConfig(**{key: "zap"})
    assert template_caption(None, "uncertain", "hi").startswith('Speech is heard, saying: "hi"; whether')


def test_caption_policies_label_keep(tmp_path):
    from lfa.curate.stages.speech import enrich_captions

    def clips():
        return [{"source": s, "clip_id": s, "caption": "A woman.", "caption_source": "sidecar-txt", "speech_status": s,
                 "transcript": "hi"} for s in ("speaking", "voiceover", "uncertain", "unknown")]

    labelled = {}
    for c in clips():
        enrich_captions([c], SpeechConfig(), tmp_path)
        labelled[c["speech_status"]] = c["caption"]
    assert labelled["uncertain"] == 'A woman. Speech is heard, saying: "hi"; whether the person on screen is the one speaking is unclear.'
    assert labelled["unknown"] == "A woman. Whether the person on screen speaks could not be determined."
    kept = clips()
    enrich_captions(kept, SpeechConfig(on_voiceover="keep", on_uncertain="keep", on_unknown="keep"), tmp_path)
    assert [c["caption"] for c in kept][1:] == ["A woman."] * 3 and kept[0]["caption"] != "A woman."


def test_cuts_move_into_pauses():
    from lfa.curate.config import ShotConfig
    from lfa.curate.stages.shots import clip_windows

    config = ShotConfig(window_s=10.0, min_clip_s=2.0, cut_in_pause_s=2.0)
    speech = [(0.3, 3.2), (3.8, 6.8), (7.4, 8.5), (9.1, 10.3)]
    assert clip_windows([], 10.8, config)[0] == [(0.0, 5.4), (5.4, 10.8)]  # no speech known: even cuts
    assert clip_windows([], 10.8, config, lambda: speech)[0] == [(0.0, 7.1), (7.1, 10.8)]  # the nearest pause
    assert clip_windows([], 10.8, config, lambda: [(0.2, 10.6)])[0] == [(0.0, 5.4), (5.4, 10.8)]  # none near
    assert clip_windows([], 10.8, ShotConfig(cut_in_pause_s=0.0), lambda: speech)[0] == [(0.0, 5.4), (5.4, 10.8)]
    assert clip_windows([], 8.0, config, lambda: speech)[0] == [(0.0, 8.0)]  # one window: nothing to move
    # a window never grows past window_s: 19.8 s in two windows leaves the cut at most 0.2 s to the right
    late = clip_windows([], 19.8, config, lambda: [(0.0, 9.95), (10.5, 19.0)])[0]
    assert late[0][1] <= 10.0 and late[1][1] - late[1][0] <= 10.0


LONG_TAKE = (("quick_brown_fox", 0.3), ("counting", 0.6), ("hello_world", 0.6), ("hello_world", 0.6))  # (recording, pause before)


def _joined_recording(store, path: Path) -> tuple[Path, list[str]]:
    """The shipped English recordings one after another with pauses (10.8 s with the tail), and their texts."""
    import wave

    from lfa.synth.speech import RECORDINGS, TEXTS

    texts = dict(zip((Path(r).stem for r in RECORDINGS), TEXTS))
    parts = []
    for name, pause in LONG_TAKE:
        parts += [np.zeros(int(pause * 16000), np.float32), extract_audio(store.path("speech_en", f"{name}.wav"))]
    audio = np.concatenate(parts)
    audio = np.concatenate([audio, np.zeros(int(10.8 * 16000) - len(audio), np.float32)])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path, [texts[name] for name, _ in LONG_TAKE]


@pytest.fixture(scope="module")
def curated(clips, store, tmp_path_factory):
    """One curation run (``speech.on_unknown=drop``): the speaking and voice-over clips, copies whose first audio
    packet is corrupt, a copy none of whose audio decodes, and a 10.8 s talking head (``lfa synth render
    --speech-audio``) saying the shipped recordings joined with pauses."""
    from typer.testing import CliRunner

    from lfa.cli import app

    tmp = tmp_path_factory.mktemp("speech_run")
    inbox = tmp / "in"
    inbox.mkdir()
    for name in ("speaking", "voiceover"):
        shutil.copy(clips / f"{name}.mp4", inbox / f"{name}.mp4")
        corrupt_audio_packets(clips / f"{name}.mp4", inbox / f"{name}_damaged.mp4", (0,))
    corrupt_audio_packets(clips / "speaking.mp4", inbox / "garbled.mp4", tuple(range(1000)))
    wav, texts = _joined_recording(store, tmp / "take.wav")
    res = CliRunner().invoke(app, ["synth", "render", "--photo", "astronaut", "--trajectory", "frontal", "--duration",
                                   "10.8", "--size", "256x256", "--face-size", "0.45", "--background", "field",
                                   "--speech-audio", str(wav), "--speech-at", "0", "--out", str(tmp / "long.mp4")])
    assert res.exit_code == 0, res.output
    shutil.copy(tmp / "long.mp4", inbox / "long.mp4")
    # the clips hold a frontal head: no angle requirement, so that the speech stage sees them
    cfg = CurateConfig.load(None, ["shots.min_clip_s=1.0", "constraints.min_yaw_range=0", "speech.on_unknown=drop"])
    curate([inbox], tmp / "run", cfg, workers=1, report=True)
    return tmp / "run", json.loads((tmp / "long.json").read_text()), texts


def test_curation_stage_columns_drop_and_report(curated, tmp_path):
    run, _, _ = curated
    rows = {Path(m["source"]).stem: m for m in pq.read_table(run / "manifest.parquet").to_pylist()
            if Path(m["source"]).stem != "long"}
    rejected = pq.read_table(run / "rejected.parquet").to_pylist()
    assert set(rows) == {"speaking", "speaking_damaged", "voiceover", "voiceover_damaged"}
    assert [(Path(r["source"]).stem, r["stage"], r["reason"]) for r in rejected] == [("garbled", "speech", "unknown")]
    assert rows["voiceover"]["speech_status"] == rows["voiceover_damaged"]["speech_status"] == "voiceover"
    assert "does not speak; a voice off screen" in rows["voiceover_damaged"]["caption"]  # on_voiceover=label
    speaking = rows["speaking"]
    assert speaking["speech_status"] == "speaking" and speaking["speech_av_score"] >= SpeechConfig().min_av_score
    assert speaking["speech_segments"][0]["status"] == "speaking" and _words(speaking["transcript"])[:2] == ["1", "2"]
    assert speaking["speech_segments"][0]["level_score"] > SpeechConfig().max_voiceover_level
    assert speaking["caption"].startswith("The person on screen is speaking") and speaking["language"] == "en"
    assert len(speaking["speech_mouth"]) == len(speaking["speech_curve_t"]) >= 40  # 12.5 fps over 3.4 s
    report = (run / "report.html").read_text()
    assert "<h2>Speech</h2>" in report and "speech curves" in report and "uncertain" in report

    from lfa.curate.export import export_webdataset

    index = export_webdataset(run, tmp_path / "export")
    lines = [json.loads(line) for line in index.read_text().splitlines()]
    assert sorted(line["speech_status"] for line in lines) == sorted(m["speech_status"] for m in pq.read_table(
        run / "manifest.parquet").to_pylist())


def test_curation_gives_damaged_files_the_intact_status(curated):
    run, _, _ = curated
    rows = {Path(m["source"]).stem: m for m in pq.read_table(run / "manifest.parquet").to_pylist()}
    assert rows["speaking_damaged"]["speech_status"] == rows["speaking"]["speech_status"] == "speaking"
    assert rows["speaking_damaged"]["transcript"] == rows["speaking"]["transcript"]
    warnings = pq.read_table(run / "warnings.parquet").to_pylist()
    damage = {Path(w["source"]).stem: w["message"] for w in warnings if "undecodable audio packet" in w["message"]}
    assert set(damage) == {"speaking_damaged", "voiceover_damaged"}
    assert "1 undecodable audio packet skipped (at 0.00 s" in damage["speaking_damaged"]
    unknown = [w for w in warnings if Path(w["source"]).stem == "garbled" and w["stage"] == "speech"]
    assert unknown and "speech unknown: none of its" in unknown[0]["message"]


def _words(text: str) -> list[str]:
    """Lower-case words with number words as digits and digit runs split ("1-2-345" -> 1 2 3 4 5)."""
    numbers = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}
    out = []
    for token in re.findall(r"[a-z]+|\d+", text.lower()):
        out += [numbers.get(token, token)] if not token.isdigit() else re.findall(r"10|\d", token)
    return out


def test_a_long_take_is_cut_in_a_pause_and_keeps_every_word(curated):
    run, sidecar, texts = curated
    rows = sorted((m for m in pq.read_table(run / "manifest.parquet").to_pylist() if Path(m["source"]).stem == "long"),
                  key=lambda m: m["start"])
    assert len(rows) == 2 and rows[0]["end"] == rows[1]["start"]
    cut = rows[0]["end"]
    assert cut != pytest.approx(5.4, abs=0.3)  # the even cut falls mid-count; it moved
    assert not any(a - 0.05 < cut < b + 0.05 for a, b in sidecar["speech"]["intervals"])  # into a pause
    heard = [w for m in rows for w in _words(m["transcript"])]
    expected = [w for t in texts for w in _words(t)]
    at = 0
    for word in expected:  # every word of the shipped transcripts, in order, across the windows
        assert word in heard[at:], (word, heard)
        at = heard.index(word, at) + 1
    assert all(m["speech_status"] in ("speaking", "voiceover", "uncertain") for m in rows)  # each window decided on its own


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
    result = analyze_speech(clips / "speaking.mp4", 0.0, 3.4, lambda: results["speaking"].mouth, config,
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
