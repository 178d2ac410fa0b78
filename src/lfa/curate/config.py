"""Curation settings: every stage's thresholds, in one typed, JSON-serialisable config."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from lfa.configfile import read_config_file, unknown_key_error
from lfa.errors import ConfigError
from lfa.face.detect import DETECT_MAX_SIDE
from lfa.speech.config import SpeechConfig

ANGLE_CRITERIA = ("yaw_range", "pitch_range", "euler_sum")


@dataclass
class ShotConfig:
    threshold: float = 27.0  # PySceneDetect ContentDetector threshold
    analysis_width: int = 160  # shot detection reads frames about this wide (DecodedFrame.thumbnail)
    min_clip_s: float = 2.0  # shorter shots are dropped
    window_s: float = 10.0  # longer shots are cut into windows of this length
    # with speech in the shot, a cut moves up to this far to fall in a pause (a gap in voice activity), so that
    # no window starts or ends mid-word (needs speech.enabled; 0: even cuts)
    cut_in_pause_s: float = 2.0


@dataclass
class TrackingConfig:
    sample_fps: float = 4.0
    # frames are scaled to this longer side for detection: lfa's one detection size (lfa.face.detect, 960:
    # why there); the cost is ~2.3x the detection pixels of 640 above 960 px.
    detect_max_side: int = DETECT_MAX_SIDE
    min_score: float = 0.6
    link_max_cost: float = 1.5  # centre shift in box sizes (+ log size ratio) that still links a face to a track
    decode_max_side: int = 1280  # huge videos are scaled down while decoding


@dataclass
class ConstraintConfig:
    min_face_fraction: float = 0.6  # sampled frames where the main face is found
    min_single_face_fraction: float = 0.8  # of those, frames where no other face is prominent
    max_other_face_area: float = 0.25  # another face is "prominent" above this area ratio to the main face
    min_face_area_ratio: float = 0.015  # median main-face box area / frame area
    min_face_px: int = 64  # median shorter side of the main-face box
    min_pose_fraction: float = 0.6  # main-track faces with a head pose, needed for an angle decision
    angle_criterion: str = "yaw_range"  # yaw_range | pitch_range | euler_sum (FaithfulFaces)
    min_yaw_range: float = 40.0
    min_pitch_range: float = 30.0
    min_euler_sum: float = 120.0  # sum of the yaw, pitch and roll ranges
    range_percentiles: tuple[float, float] = (5.0, 95.0)  # robust ranges


@dataclass
class CascadeConfig:
    # cheap checks first, the expensive models only where they can change the decision (lfa.curate.stages.
    # cascade); false runs every model on every clip, with the same decisions
    enabled: bool = True
    near_frontal_deg: float = 20.0  # cheap |yaw| (5 points) up to which its error bound below holds
    yaw_error_deg: float = 12.0  # its largest error there on the calibration renders (docs/PERFORMANCE.md)
    # > 0: a head that stays alone and near frontal is read at this rate (per second) in the scan instead of
    # tracking.sample_fps; the frames left out are analysed (a second decode of that stretch) for every clip
    # that the sparse reading does not reject, so kept clips get the full reading (lfa.curate.scan; 0: off)
    frontal_sample_fps: float = 1.0


@dataclass
class IdentityConfig:
    # Decisions use the pose-aware identity score (lfa.face.identity.score): z-scores against the
    # impostors of each yaw-bucket pair, so one setting holds for frontal and profile alike.
    frames: int = 5  # embedded frames per clip, spread over time and yaw
    far: float = 0.01  # a clip's two sides are one person unless impostors score that high this rarely
    on_switch: str = "reject"  # reject | split
    impostors: str | None = None  # impostor model (`lfa identity calibrate`); default: the shipped one
    cluster_min_z: float = 3.0  # average-linkage clusters join while their mean pair z reaches this


@dataclass
class CaptionConfig:
    metadata: str | None = None  # CSV (file,caption) or JSON {file: caption}; else VIDEO.json / VIDEO.txt beside it
    vlm_endpoint: str | None = None  # OpenAI-compatible base URL, e.g. http://localhost:8000/v1
    vlm_model: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    vlm_prompt: str = ("Describe this video frame for a text-to-video training caption: the person, their "
                       "appearance, expression, head orientation, and the scene. One or two sentences.")
    vlm_api_key_env: str | None = None  # name of the environment variable holding the endpoint's key (never the key)
    timeout_s: float = 60.0
    retries: int = 3


@dataclass
class CurateConfig:
    shots: ShotConfig = field(default_factory=ShotConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    constraints: ConstraintConfig = field(default_factory=ConstraintConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    captions: CaptionConfig = field(default_factory=CaptionConfig)
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    cascade: CascadeConfig = field(default_factory=CascadeConfig)
    detector: str = "yunet"
    pose: str = "fused"  # landmark fit where it is reliable, WHENet at large angles (lfa.face.pose.fused)
    identity_model: str = "dlib"
    # byte-identical inputs (found when the tables are merged) are always flagged; true keeps only the first
    # copy's clips (the others' become rejected rows, stage "duplicates")
    dedup: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.dedup, bool):
            raise ConfigError(f"dedup must be true or false, got {self.dedup!r}", "write --set dedup=true")
        if not isinstance(self.cascade.enabled, bool):
            raise ConfigError(f"cascade.enabled must be true or false, got {self.cascade.enabled!r}",
                              "write --set cascade.enabled=false")
        if self.constraints.angle_criterion not in ANGLE_CRITERIA:
            raise ConfigError(f"unknown angle criterion {self.constraints.angle_criterion!r}",
                              f"use one of {', '.join(ANGLE_CRITERIA)}")
        if self.identity.on_switch not in ("reject", "split"):
            raise ConfigError(f"unknown identity.on_switch {self.identity.on_switch!r}", "use 'reject' or 'split'")
        if self.tracking.sample_fps <= 0 or self.identity.frames < 2:
            raise ConfigError("tracking.sample_fps must be > 0 and identity.frames >= 2", "fix the config values")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self) -> str:
        """Hash of everything that changes per-input results (captions' VLM settings included)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def work_digest(self) -> str:
        """Hash of the settings that change per-input results; the rest (clustering, VLM captions, dedup)
        only changes the merge, so changing it does not redo finished inputs."""
        d = self.to_dict()
        d.pop("dedup")
        d["identity"].pop("cluster_min_z")
        d["captions"] = {"metadata": d["captions"]["metadata"]}
        d["speech"] = {k: v for k, v in d["speech"].items() if not k.startswith("rewrite_")}  # applied at merge
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CurateConfig:
        return _build(cls, data, "")

    @classmethod
    def load(cls, path: Path | None = None, overrides: list[str] | None = None) -> CurateConfig:
        """A JSON or YAML file (optional; a run's config.json is one) then ``section.key=value`` overrides
        (values parsed as JSON when they can be)."""
        data: dict[str, Any] = read_config_file(path) if path is not None else {}
        for item in overrides or []:
            key, sep, raw = item.partition("=")
            if not sep:
                raise ConfigError(f"bad override {item!r}", "write section.key=value, e.g. tracking.sample_fps=2")
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
            node = data
            parts = key.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
        return cls.from_dict(data)


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        label = f"valid keys under {prefix.rstrip('.')}" if prefix else "valid keys"
        raise unknown_key_error(unknown[0], {label: known}, prefix=prefix)
    kwargs = {}
    for name, value in data.items():
        default = known[name].default_factory() if callable(known[name].default_factory) else None  # type: ignore[misc]
        if default is not None and is_dataclass(default):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {prefix}{name} must be a section", f"write {name}: {{...}}")
            kwargs[name] = _build(type(default), value, f"{prefix}{name}.")
        else:
            expected = known[name].default
            if isinstance(value, list):
                value = tuple(value)
            number = isinstance(expected, (int, float)) and not isinstance(expected, bool)
            if number and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"config key {prefix}{name} must be a number, got {value!r}",
                                  f"e.g. {prefix}{name}={expected}")
            kwargs[name] = value
    return cls(**kwargs)
