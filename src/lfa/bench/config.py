"""What a benchmark run measures and how: one frozen record, written into summary.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from lfa.bench.metrics import PITCH_EDGES, YAW_EDGES
from lfa.errors import ConfigError
from lfa.face.analyzer import DETECTORS, POSE_BACKENDS
from lfa.face.detect import DETECT_MAX_SIDE
from lfa.face.identity.impostors import FARS
from lfa.registry import ModelStore

# AnalyzerConfig identity name -> (registry model name, column suffix)
IDENTITY_MODELS: dict[str, tuple[str, str]] = {
    "arcface": ("arcface", "arc"),
    "curricularface": ("curricularface", "cur"),
    "dlib": ("dlib_resnet", "dlib"),
}
PRIMARY_ORDER = ("arcface", "curricularface", "dlib")
COMPAT_MODES = ("consisid", "opens2v")
DEFAULT_FRAMES = 16


def short(identity: str) -> str:
    """Column suffix of an identity model: ``arcface`` -> ``arc``."""
    return IDENTITY_MODELS[identity][1]


def available_identities(store: ModelStore) -> list[str]:
    """Every identity model that can run here: dlib always, ArcFace/CurricularFace when registered."""
    return [name for name in PRIMARY_ORDER if name == "dlib" or store.is_available(IDENTITY_MODELS[name][0])]


@dataclass(frozen=True)
class BenchConfig:
    """Settings of a run. ``identities=None`` means every available identity model."""

    identities: tuple[str, ...] | None = None
    primary: str | None = None  # identity model of the un-suffixed columns (buckets, copy-paste, spread)
    detector: str = "yunet"
    pose: str = "fused"  # the analyzer's default: landmark fit + WHENet (lfa.face.pose.fused), full yaw range
    detect_max_side: int = DETECT_MAX_SIDE  # detection input, longest side: lfa's one size (lfa.face.detect)
    min_score: float = 0.6
    frames: int | None = DEFAULT_FRAMES  # frames per video, lfa.media.sample_times(n=...) (centred bins)
    fps: float | None = None  # or frames at this rate (sample_times(fps=...)); frames=None, fps=None: every frame
    compat: tuple[str, ...] = ()
    inception: Path | None = None  # ONNX feature network for Face FID (docs/BENCH.md)
    clip: str | None = None  # CLIP for CLIPScore: transformers folder or open_clip:ARCH:FILE
    workers: int = 1
    yaw_edges: tuple[float, ...] = YAW_EDGES
    pitch_edges: tuple[float, ...] = PITCH_EDGES
    min_bucket_frames: int = 3  # a bucket needs this many frames (pooled over a model's videos) to be "worst"
    worst_videos: int = 4
    seed: int = 0
    store_home: Path | None = None
    impostors: Path | None = None  # impostor model (lfa identity calibrate) of the headline's identity score
    far: float = 0.01  # false-accept rate of the headline's identity decision
    cache_dir: Path | None = None  # per-video analyses kept here by content hash (None: within the run only)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ConfigError(f"unknown detector {self.detector!r}", f"use one of: {', '.join(DETECTORS)}")
        if self.pose not in POSE_BACKENDS:
            raise ConfigError(f"unknown pose backend {self.pose!r}", f"use one of: {', '.join(POSE_BACKENDS)}")
        for mode in self.compat:
            if mode not in COMPAT_MODES:
                raise ConfigError(f"unknown compatibility mode {mode!r}", f"use one of: {', '.join(COMPAT_MODES)}")
        if self.identities is not None:
            for name in self.identities:
                if name not in IDENTITY_MODELS:
                    raise ConfigError(f"unknown identity model {name!r}",
                                      f"use one of: {', '.join(IDENTITY_MODELS)}")
            if not self.identities:
                raise ConfigError("no identity model selected", "give at least one --identity (dlib is always there)")
        if self.frames is not None and self.fps is not None:
            raise ConfigError("give frames or fps, not both", "use --frames N or --fps R")
        if self.frames is not None and self.frames < 1:
            raise ConfigError(f"frames must be >= 1, got {self.frames}", "use --frames 16, or --all-frames")
        if self.fps is not None and self.fps <= 0:
            raise ConfigError(f"fps must be > 0, got {self.fps}", "use e.g. --fps 4")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}", "use --workers 1 or more")
        if self.far not in FARS:
            raise ConfigError(f"no identity threshold at false-accept rate {self.far:g}",
                              f"use --far {' or '.join(f'{f:g}' for f in FARS)}")

    def store(self) -> ModelStore:
        return ModelStore(self.store_home) if self.store_home else ModelStore()

    def resolve(self, store: ModelStore | None = None) -> BenchConfig:
        """Fill ``identities`` and ``primary`` from what is available (ModelMissingError for an explicit
        identity model that is not registered)."""
        store = store or self.store()
        identities = self.identities or tuple(available_identities(store))
        for name in identities:
            store.path(IDENTITY_MODELS[name][0])  # raises with the fix when absent
        identities = tuple(n for n in PRIMARY_ORDER if n in identities)
        primary = self.primary or identities[0]
        if primary not in identities:
            raise ConfigError(f"primary identity model {primary!r} is not among those run ({', '.join(identities)})",
                              "pick --primary from the identity models of the run")
        return replace(self, identities=identities, primary=primary)

    def sampling(self) -> dict[str, Any]:
        if self.frames is not None:
            return {"rule": "lfa.media.sample_times(duration, n=frames): centred bins", "frames": self.frames}
        if self.fps is not None:
            return {"rule": "lfa.media.sample_times(duration, fps=fps)", "fps": self.fps}
        return {"rule": "every frame"}

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["inception"] = str(self.inception) if self.inception else None
        for key in ("store_home", "impostors", "cache_dir"):
            out[key] = str(out[key]) if out[key] else None
        return out

