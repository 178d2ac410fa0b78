"""One labelled synthetic clip: a spec in, an mp4 and its ground-truth sidecar JSON out."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lfa.errors import ConfigError
from lfa.face import AnalyzerConfig, FaceAnalyzer
from lfa.media import read_image, write_video
from lfa.samples import SAMPLE_NAMES, sample_photo
from lfa.synth import speech as speech_mod
from lfa.synth import visemes
from lfa.synth.backgrounds import BACKDROPS, make_backdrop
from lfa.synth.mesh import HeadModel, fit_head
from lfa.synth.render import HeadPlacement, Lighting, render
from lfa.synth.trajectory import resolve

SIDECAR_VERSION = 1
SPEECH_KINDS = ("none", "on_screen", "voice_over", "dubbed", "mouth_only", "tone", "noise")
# the status speech disambiguation should give each kind (lfa.speech)
SPEECH_STATUS = {"none": "silent", "on_screen": "speaking", "voice_over": "voiceover", "dubbed": "voiceover",
                 "mouth_only": "silent", "tone": "non_speech_audio", "noise": "non_speech_audio"}
MOUTH_MODEL = "visemes of faster-whisper's word-timed transcript (lfa.synth.visemes)"


@dataclass
class SecondFace:
    photo: str = "grace_hopper"
    relative_size: float = 1.0  # face width relative to the main face (<= 1)
    trajectory: str = "frontal"


@dataclass
class ClipSpec:
    photo: str = "astronaut"
    trajectory: str = "yaw-sweep"
    duration: float = 4.0
    fps: float = 25.0
    width: int = 512
    height: int = 512
    face_size: float = 0.3  # face width as a fraction of the frame width
    second_face: SecondFace | None = None
    switch_photo: str | None = None  # identity switch: this photo from switch_at on
    switch_at: float | None = None
    # none | on_screen (the mouth says the words of the speech) | voice_over (mouth still) | dubbed (the mouth says
    # other words: those of mouth_audio, else the next shipped sentence) | mouth_only (the mouth moves as if
    # speaking, the track is silent) | tone (440 Hz) | noise (pink-ish noise): the last two with a still mouth
    speech: str = "none"
    speech_audio: str | None = None  # a recording (any file with a sound track) instead of a shipped sentence
    mouth_audio: str | None = None  # dubbed: the recording whose words the mouth says
    audio_stream: bool = True  # False: the file has no audio stream at all
    audio_shift_s: float = 0.0  # the sound comes this much later than the picture (mouth) it belongs to
    speech_at: float = 0.4
    speech_index: int = 0
    scene_cut_at: float | None = None
    blur: float = 0.0  # Gaussian sigma, pixels
    noise: float = 0.0  # Gaussian noise sigma, grey levels
    jpeg_quality: int | None = None  # per-frame JPEG round trip
    background: str = "photo"  # photo: a face-free natural image (seeded crop and blur) | field: colour field
    shading: bool = True  # a seeded directional + ambient light; False: the fixed default light
    upside_down: bool = False  # frames stored rotated by 180° with no rotation metadata (sidecar boxes unrotated)
    seed: int = 0
    purpose: str = ""
    expected: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.second_face, dict):
            self.second_face = SecondFace(**self.second_face)
        if self.background not in BACKDROPS:
            raise ConfigError(f"unknown background {self.background!r}", f"use one of {', '.join(BACKDROPS)}")
        if self.speech not in SPEECH_KINDS:
            raise ConfigError(f"unknown speech kind {self.speech!r}", f"use one of {', '.join(SPEECH_KINDS)}")
        if (self.switch_photo is None) != (self.switch_at is None):
            raise ConfigError("an identity switch needs both switch_photo and switch_at", "give both or neither")
        if self.width % 2 or self.height % 2 or self.duration <= 0 or self.fps <= 0:
            raise ConfigError("clip size must be even and duration/fps positive", "e.g. 512x512, 4 s, 25 fps")


class HeadLibrary:
    """Fitted heads by photo, fitted once (fitting runs the perception stack)."""

    def __init__(self, analyzer: FaceAnalyzer | None = None) -> None:
        self._analyzer = analyzer
        self._heads: dict[str, HeadModel] = {}

    def get(self, photo: str) -> HeadModel:
        """The head of ``photo`` (a sample name or a path). ``"FACE@LOOKS"`` is a look-alike: the face of
        FACE with the skin, hair and clothes colours of LOOKS (two people who differ only in the face)."""
        if "@" in photo and photo not in self._heads:
            face, looks = photo.split("@", 1)
            self._heads[photo] = replace(self.get(face), atlas=self.get(looks).atlas, label=f"{Path(face).stem}@")
        if photo not in self._heads:
            if self._analyzer is None:
                self._analyzer = FaceAnalyzer(AnalyzerConfig(identity="none"))
            image = sample_photo(photo) if photo in SAMPLE_NAMES else read_image(photo)
            self._heads[photo] = fit_head(image, self._analyzer, Path(photo).stem)
        return self._heads[photo]


def _degrade(image: np.ndarray, spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    if spec.blur > 0:
        image = cv2.GaussianBlur(image, (0, 0), spec.blur)
    if spec.noise > 0:
        image = np.clip(image + rng.normal(0, spec.noise, image.shape), 0, 255).astype(np.uint8)
    if spec.jpeg_quality:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, spec.jpeg_quality])
        image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return image


def render_clip(spec: ClipSpec, out: Path, heads: HeadLibrary | None = None) -> dict[str, Any]:
    """Render ``spec`` to ``out`` (mp4) and ``out.with_suffix('.json')`` (sidecar); return the sidecar."""
    heads = heads or HeadLibrary()
    n = int(round(spec.duration * spec.fps))
    main_traj = resolve(spec.trajectory)
    n_audio = int(round(spec.duration * speech_mod.SAMPLE_RATE))
    audio = np.zeros(n_audio, np.float32)
    intervals: list[tuple[float, float]] = []
    mouth, rounding = np.zeros(n, np.float32), np.zeros(n, np.float32)
    words: list[visemes.TimedWord] = []
    if spec.speech in ("on_screen", "voice_over", "dubbed", "mouth_only"):
        voice = speech_mod.speech_recording(spec.speech_audio, spec.speech_index)
        start = int(spec.speech_at * speech_mod.SAMPLE_RATE)
        voice = voice[: max(0, n_audio - start)]
        audio[start : start + len(voice)] = voice
        intervals = [(float(a), float(b)) for a, b in speech_mod.active_intervals(voice, spec.speech_at)]
        words = visemes.words_of(voice, spec.speech_at)
        if spec.speech in ("on_screen", "mouth_only"):
            mouth, rounding = visemes.mouth_track(words, spec.fps, n, spec.seed)
        elif spec.speech == "dubbed":
            other = speech_mod.speech_recording(spec.mouth_audio, spec.speech_index + 1)
            mouth, rounding = visemes.mouth_track(visemes.words_of(other[: max(0, n_audio - start)], spec.speech_at),
                                                  spec.fps, n, spec.seed)
        if spec.speech == "mouth_only":
            audio[:] = 0.0
            intervals = []
        elif spec.audio_shift_s:
            shift = int(round(spec.audio_shift_s * speech_mod.SAMPLE_RATE))
            audio = np.concatenate([np.zeros(shift, np.float32), audio[: n_audio - shift]])
            intervals = [(round(a + spec.audio_shift_s, 3), round(b + spec.audio_shift_s, 3)) for a, b in intervals]
            words = [visemes.TimedWord(w.start + spec.audio_shift_s, w.end + spec.audio_shift_s, w.text) for w in words]
    if spec.speech in ("tone", "noise"):
        audio = speech_mod.non_speech(spec.speech, n_audio, spec.seed)
    cuts = [spec.scene_cut_at] if spec.scene_cut_at is not None else []
    frames, records = [], []
    backdrops: dict[int, np.ndarray] = {}
    lights: dict[int, Lighting] = {}
    for i in range(n):
        t = i / spec.fps
        shot = sum(t >= c for c in cuts)
        if shot not in backdrops:
            backdrops[shot] = make_backdrop(spec.background, spec.width, spec.height, spec.seed * 1000 + shot)
            lights[shot] = Lighting.random(spec.seed * 1000 + shot) if spec.shading else Lighting()
        background = backdrops[shot]
        placements, labels = [], []
        state = main_traj(t, spec.duration)
        photo = spec.switch_photo if spec.switch_at is not None and t >= spec.switch_at else spec.photo
        head = heads.get(photo)
        cx = 0.5 + (-0.18 if spec.second_face else 0.0) + (0.12 if shot % 2 else 0.0) + state.dx
        scale = spec.face_size * spec.width / head.face_width * state.zoom * (0.85 if shot % 2 else 1.0)
        if spec.second_face:
            sf = spec.second_face
            other = heads.get(sf.photo)
            s2 = main_traj if sf.trajectory == spec.trajectory else resolve(sf.trajectory)
            st2 = s2(t, spec.duration)
            scale2 = spec.face_size * sf.relative_size * spec.width / other.face_width
            placements.append(HeadPlacement(other, st2.yaw, st2.pitch, st2.roll,
                                            (0.75 * spec.width, 0.5 * spec.height), scale2))
            labels.append(("second", Path(sf.photo).stem))
        placements.append(HeadPlacement(head, state.yaw, state.pitch, state.roll,
                                        (cx * spec.width, (0.55 + state.dy) * spec.height), scale, float(mouth[i]),
                                        float(rounding[i])))
        labels.append(("main", head.label))
        image, rendered = render(background, placements, lights[shot])
        image = _degrade(image, spec, np.random.default_rng([spec.seed, i]))
        frames.append(np.ascontiguousarray(image[::-1, ::-1]) if spec.upside_down else image)
        faces = []
        for (role, identity), p, r in zip(labels, placements, rendered):
            faces.append({"role": role, "identity": identity, "yaw": round(p.yaw, 3), "pitch": round(p.pitch, 3),
                          "roll": round(p.roll, 3), "box": [round(float(v), 2) for v in r.box],
                          "mouth_open": round(p.mouth_open, 3), "mouth_round": round(p.mouth_round, 3)})
        records.append({"frame": i, "t": round(t, 4), "shot": shot, "faces": faces[::-1]})
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.stem + ".partial" + out.suffix)
    write_video(partial, frames, spec.fps, audio=audio if spec.audio_stream else None,
                sample_rate=speech_mod.SAMPLE_RATE)
    partial.replace(out)
    sidecar = {
        "version": SIDECAR_VERSION,
        "video": out.name,
        "purpose": spec.purpose,
        "expected": spec.expected,
        "fps": spec.fps, "width": spec.width, "height": spec.height, "n_frames": n, "duration": spec.duration,
        "angle_convention": "lfa: yaw>0 subject turns to their left, pitch>0 up, roll>0 counter-clockwise; "
                            "relative to the photo's frontalised head",
        "identities": sorted({f["identity"] for r in records for f in r["faces"]}),
        "speech": {"kind": spec.speech, "status": SPEECH_STATUS[spec.speech] if spec.audio_stream else "silent",
                   "source": speech_mod.speech_source() if intervals else None, "intervals": intervals,
                   "audio_stream": spec.audio_stream, "audio_shift_s": spec.audio_shift_s,
                   "text": speech_mod.recording_text(spec.speech_audio, spec.speech_index) if intervals else None,
                   "words": [[round(w.start, 3), round(w.end, 3), w.text] for w in words] if intervals else [],
                   "mouth_model": MOUTH_MODEL if spec.speech in ("on_screen", "dubbed", "mouth_only") else None},
        "scene_cuts": cuts,
        "spec": asdict(spec),
        "frames": records,
    }
    tmp = out.with_name(out.stem + ".partial.json")
    tmp.write_text(json.dumps(sidecar, indent=1))
    tmp.replace(out.with_suffix(".json"))
    return sidecar
