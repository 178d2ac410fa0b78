"""lfa synth: ground truth that matches what was rendered, the labelled corpus, speech, determinism."""

import json
import subprocess
import sys

import numpy as np
import pytest

from lfa.errors import ConfigError
from lfa.media import extract_audio, probe, read_frames
from lfa.synth import STANDARD_CORPUS, ClipSpec, render_clip
from lfa.synth.speech import SAMPLE_RATE
from lfa.synth.trajectory import keyframes, resolve


def sidecar(path):
    return json.loads(path.with_suffix(".json").read_text())


def test_every_corpus_clip_exists_with_its_label(corpus):
    assert len(STANDARD_CORPUS) >= 12
    reasons = {spec.expected["reason"] for spec in STANDARD_CORPUS.values()}
    assert {"insufficient_angle_variation", "multiple_faces", "face_too_small", "identity_switch"} <= reasons
    assert {spec.expected["speech"] for spec in STANDARD_CORPUS.values()} == {"on_screen", "voice_over", "silent"}
    for name, spec in STANDARD_CORPUS.items():
        video = corpus / f"{name}.mp4"
        info = probe(video)
        assert 3.0 <= info.duration_s <= 6.2 and info.has_audio
        meta = sidecar(video)
        assert meta["expected"] == spec.expected and meta["purpose"]
        assert len(meta["frames"]) == meta["n_frames"] == round(spec.duration * spec.fps)
        n_faces = {len(f["faces"]) for f in meta["frames"]}
        assert n_faces == ({2} if spec.second_face else {1})


def test_truth_matches_what_was_rendered(corpus, analyzer):
    video = corpus / "large_angle_astronaut.mp4"
    meta = sidecar(video)
    truth = {f["frame"]: f["faces"][0] for f in meta["frames"]}
    # frames at yaw 0, about +45 and about -45 (the sweep is 75 * sin(2 pi t / 4 s))
    wanted = {0: 0}
    for i, f in truth.items():
        for target in (45, -45):
            if abs(f["yaw"] - target) < 4 and target not in wanted.values():
                wanted[i] = target
    frames = {fr.index: fr.image for fr in read_frames(video, indices=sorted(wanted))}
    est = {i: analyzer.analyze(frames[i])[0] for i in wanted}
    assert abs(est[0].yaw) < 5 and abs(est[0].pitch) < 8 and abs(est[0].roll) < 5
    for i, target in wanted.items():
        if target:
            assert np.sign(est[i].yaw) == np.sign(truth[i]["yaw"]) == np.sign(target)
            assert abs(est[i].yaw - truth[i]["yaw"]) < 10
        box = np.array(truth[i]["box"])
        found = est[i].box
        overlap = max(0, min(box[2], found[2]) - max(box[0], found[0])) * max(0, min(box[3], found[3]) - max(box[1], found[1]))
        assert overlap > 0.3 * (found[2] - found[0]) * (found[3] - found[1])  # the sidecar box is where the face is


def rms(audio, a, b):
    seg = audio[int(a * SAMPLE_RATE): int(b * SAMPLE_RATE)]
    return float(np.sqrt(np.mean(seg**2))) if len(seg) else 0.0


@pytest.mark.parametrize("name", ["speaking_on_screen", "voice_over_still_mouth"])
def test_speech_is_audible_where_labelled_and_silent_elsewhere(corpus, name):
    video = corpus / f"{name}.mp4"
    meta = sidecar(video)
    audio = extract_audio(video)
    intervals = meta["speech"]["intervals"]
    assert intervals
    for a, b in intervals:
        assert rms(audio, a, b) > 0.03
    edges = [0.0] + [t for ab in intervals for t in ab] + [meta["duration"]]
    for a, b in zip(edges[::2], edges[1::2]):  # gaps between labelled speech
        if b - a > 0.1:
            assert rms(audio, a + 0.05, b - 0.05) < 0.005
    mouth = [f["faces"][0]["mouth_open"] for f in meta["frames"]]
    if meta["speech"]["kind"] == "on_screen":
        assert max(mouth) > 0.5
    else:
        assert max(mouth) == 0.0


def test_silent_clip_has_a_silent_track(corpus):
    audio = extract_audio(corpus / "silent.mp4")
    assert sidecar(corpus / "silent.mp4")["speech"]["intervals"] == []
    assert rms(audio, 0, len(audio) / SAMPLE_RATE) < 0.002


def test_same_seed_same_bytes(tmp_path, heads):
    spec = ClipSpec("grace_hopper", "nod-and-turn", 1.0, fps=10, width=256, height=256, noise=3.0, speech="on_screen",
                    seed=5)
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    render_clip(spec, a, heads)
    render_clip(spec, b, heads)
    assert a.read_bytes() == b.read_bytes()
    assert a.with_suffix(".json").read_text().replace("a.mp4", "b.mp4") == b.with_suffix(".json").read_text()
    render_clip(ClipSpec(**{**spec.__dict__, "seed": 6}), b, heads)
    assert a.read_bytes() != b.read_bytes()


def test_keyframe_trajectory_and_config_errors(tmp_path):
    traj = keyframes([{"t": 0, "yaw": 0}, {"t": 2, "yaw": 60, "pitch": -10}])
    assert traj(1.0, 2.0).yaw == pytest.approx(30) and traj(1.0, 2.0).pitch == pytest.approx(-5)
    path = tmp_path / "turn.json"
    path.write_text(json.dumps([{"t": 0, "yaw": 0}, {"t": 1, "yaw": -40}]))
    assert resolve(str(path))(1.0, 1.0).yaw == pytest.approx(-40)
    with pytest.raises(ConfigError, match="yaw-sweep"):
        resolve("spin")
    with pytest.raises(ConfigError):
        ClipSpec(speech="whisper")
    with pytest.raises(ConfigError):
        ClipSpec(switch_photo="grace_hopper")


def test_cli_render_and_eval_pose_json(tmp_path):
    video = tmp_path / "clip.mp4"
    proc = subprocess.run([sys.executable, "-m", "lfa", "synth", "render", "--photo", "astronaut", "--trajectory",
                           "pitch-sweep", "--duration", "1", "--fps", "8", "--size", "256x256", "--out", str(video)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sidecar(video)["n_frames"] == 8 and probe(video).width == 256
    proc = subprocess.run([sys.executable, "-m", "lfa", "synth", "eval-pose", "--photo", "astronaut", "--frames", "16",
                           "--sweep", "yaw-sweep-90", "--json", "--plot", str(tmp_path / "p.png")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == {"mediapipe", "whenet", "fused", "fused+track"}
    for buckets in result.values():
        assert list(buckets) == ["0-15", "15-30", "30-45", "45-60", "60-75", "75-90", "frontal"]
        for m in list(buckets.values())[:-1]:
            assert {"mae_yaw", "mae_pitch", "mae_roll", "detection_rate", "pose_rate"} <= set(m)
        assert buckets["frontal"]["frames"] > 0 and buckets["frontal"]["frontal_offset"] < 10
    assert result["mediapipe"]["0-15"]["detection_rate"] == 1.0 and result["mediapipe"]["0-15"]["mae_yaw"] < 5
    assert result["fused"]["75-90"]["pose_rate"] > 0.5 and result["fused"]["75-90"]["mae_yaw"] < 15
    assert (tmp_path / "p.png").stat().st_size > 10_000
