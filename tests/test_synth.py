"""lfa synth: ground truth that matches what was rendered, the labelled corpus, speech, determinism."""

import dataclasses
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from lfa.errors import ConfigError
from lfa.media import extract_audio, probe, read_frames
from lfa.synth import STANDARD_CORPUS, ClipSpec, render_clip
from lfa.synth.backgrounds import make_backdrop, natural_images
from lfa.synth.mesh import FACE_VERTICES, fit_head
from lfa.synth.render import HeadPlacement, Lighting, render
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
                           "--sweep", "profile-sweep", "--json", "--plot", str(tmp_path / "p.png")],
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


def _tint_fractions(image, landmarks):
    """Fractions of the face-mesh pixels that are clearly green-tinted and clearly blue-tinted."""
    hull = cv2.convexHull(landmarks.astype(np.int32))
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    px = image[mask > 0].astype(float)
    return float(np.mean(px[:, 1] - px[:, 2] > 25)), float(np.mean(px[:, 2] - px[:, 1] > 25))


def test_side_the_photo_never_showed_takes_its_mirrors_colour(analyzer, astronaut):
    # a face whose two halves have different known colours (green / blue), photographed turned by 50°
    # so that one half is hardly seen; rendered at ±90° the hidden half must not be a smear of its own
    # compressed pixels but take the colour of the half that was seen
    source_yaw = 50
    photo = astronaut.astype(np.float32)
    mid = int(analyzer.analyze(astronaut)[0].landmarks[1, 0])
    photo[:, :mid] *= (0.8, 1.3, 0.8)
    photo[:, mid:] *= (0.8, 0.8, 1.3)
    tinted = fit_head(np.clip(photo, 0, 255).astype(np.uint8), analyzer, "tinted")
    grey = np.full((512, 512, 3), 128, np.uint8)

    def shot(head, yaw):
        image, (drawn,) = render(grey, [HeadPlacement(head, yaw, 0, 0, (256, 280), 150 / head.face_width)])
        return _tint_fractions(image, drawn.landmarks), image

    (green, blue), turned = shot(tinted, source_yaw)
    seen, hidden = (0, 1) if green > blue else (1, 0)  # which tint the turned photo mostly shows
    assert (green, blue)[seen] > 0.3
    head = fit_head(turned, analyzer, "turned")
    unmirrored = dataclasses.replace(head, mirror_weight=np.zeros_like(head.mirror_weight))
    hidden_yaw = -90 if source_yaw > 0 else 90
    mirrored_fill = shot(head, hidden_yaw)[0]
    smear = shot(unmirrored, hidden_yaw)[0]
    seen_side = shot(head, -hidden_yaw)[0]
    assert seen_side[seen] > 0.3  # the side the photo showed: its own colour
    assert smear[hidden] > 0.08  # stretching the hidden half's own pixels would show its colour ...
    assert mirrored_fill[hidden] < 0.3 * smear[hidden]  # ... the mirror does not
    assert mirrored_fill[seen] > 0.1 + mirrored_fill[hidden]  # it shows the colour of the half that was seen


def test_shell_winds_outward_and_backgrounds_have_no_face(heads, analyzer):
    head = heads.get("astronaut")
    v = head.vertices[head.triangles]
    normal = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    skull = head.triangles.min(1) >= FACE_VERTICES  # the generic head and neck, all outward
    centre = head.vertices[FACE_VERTICES:].mean(0)
    outward = np.einsum("ij,ij->i", normal[skull], v[skull].mean(1) - centre) > 0
    assert outward.mean() > 0.8
    images = dict(natural_images())
    assert len(images) >= 6 and "astronaut" not in images and "camera" not in images  # those have faces
    for seed in range(4):
        backdrop = make_backdrop("photo", 320, 240, seed)
        assert backdrop.shape == (240, 320, 3) and not analyzer.analyze(backdrop)
    with pytest.raises(ConfigError, match="field"):
        make_backdrop("plain", 64, 64, 0)


def test_lighting_is_seeded_and_directional(heads):
    assert Lighting.random(3) == Lighting.random(3) != Lighting.random(4)
    head = heads.get("grace_hopper")
    grey = np.full((256, 256, 3), 128, np.uint8)

    def lit(direction):
        placement = HeadPlacement(head, 0, 0, 0, (128, 140), 80 / head.face_width)
        return render(grey, [placement], Lighting(direction, 0.5, 0.6))[0].astype(float)

    from_right, from_left = lit((1.0, 0.0, 0.0)), lit((-1.0, 0.0, 0.0))
    head_px = (np.abs(from_right - 128).sum(2) + np.abs(from_left - 128).sum(2)) > 0
    diff = (from_right - from_left).sum(2)
    assert diff[:, 140:][head_px[:, 140:]].mean() > 10  # the side toward the light is brighter
    assert diff[:, :116][head_px[:, :116]].mean() < -10


def test_visemes_follow_the_words_not_the_loudness():
    from lfa.synth.visemes import REST, TimedWord, mouth_track, number_words, spell

    assert spell("Bob") == ["closed", "o", "closed"] and spell("shoe")[0] == "postalveolar"
    assert number_words("678910") == ["six", "seven", "eight", "nine", "ten"] and number_words("42") == ["forty", "two"]
    words = [TimedWord(0.5, 0.9, "map", (0.7,)), TimedWord(0.9, 1.3, "bee", (1.1,)), TimedWord(2.2, 2.6, "ah", (2.4,))]
    jaw, rounding = mouth_track(words, 25.0, 80, seed=3)
    t = np.arange(80) / 25.0
    assert jaw[t < 0.2].max() <= REST[0] + 0.02 and jaw[t > 2.9].min() <= REST[0] + 0.02  # rest before and after
    assert jaw[(t > 2.2) & (t < 2.6)].max() > 0.6 > jaw[(t > 0.9) & (t < 1.3)].max()  # "ah" opens wider than "bee"
    assert rounding[(t > 0.9) & (t < 1.3)].min() < -0.3  # "ee" spreads the lips
    # the same words at the same times: the same mouth, whatever the sound was (it never sees the sound)
    assert np.array_equal(jaw, mouth_track(words, 25.0, 80, seed=3)[0])


def test_speech_audio_drives_the_mouth_from_its_words(tmp_path, heads, store):
    from lfa.synth.visemes import words_of

    recording = store.path("speech_en", "hello_world.wav")
    words = words_of(extract_audio(recording))
    assert [w.text.strip(".").lower() for w in words] == ["hello", "world"]
    assert all(w.nuclei and w.start <= w.nuclei[0] + 0.08 for w in words)
    spec = ClipSpec("astronaut", "frontal", 1.6, fps=12.5, width=128, height=128, speech_audio=str(recording),
                    speech="on_screen", speech_at=0.3, background="field")
    sidecar = render_clip(spec, tmp_path / "hello.mp4", heads)
    assert [w[2] for w in sidecar["speech"]["words"]][0].lower() == "hello" and sidecar["speech"]["mouth_model"]
    mouth = np.array([f["faces"][0]["mouth_open"] for f in sidecar["frames"]])
    assert mouth.max() > 0.3 and mouth[0] < 0.1 and mouth[-1] < 0.1
    dubbed = render_clip(ClipSpec(**{**spec.__dict__, "speech": "dubbed", "mouth_audio": str(
        store.path("speech_en", "counting.wav"))}), tmp_path / "dubbed.mp4", heads)
    assert dubbed["speech"]["status"] == "voiceover"
    assert [f["faces"][0]["mouth_open"] for f in dubbed["frames"]] != mouth.tolist()  # the mouth says other words
