"""``FaceAnalyzer``: detection, pose, identity and quality for images and batches of frames."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

import numpy as np

from lfa.errors import ConfigError
from lfa.face.detect import DETECT_MAX_SIDE, Detector
from lfa.face.identity import IdentityEncoder, embed_faces
from lfa.face.pose import PoseEstimator
from lfa.face.quality import area_ratio, sharpness
from lfa.face.pose.track import PosedFace
from lfa.face.types import Detection, Face
from lfa.registry import ModelStore

DETECTORS = ("yunet", "scrfd")
POSE_BACKENDS = ("fused", "mediapipe", "whenet", "sixdrepnet", "none")
IDENTITY_BACKENDS = ("dlib", "arcface", "curricularface", "none")


@dataclass(frozen=True)
class AnalyzerConfig:
    detector: str = "yunet"
    pose: str = "fused"  # landmark fit + WHENet (lfa.face.pose.fused); or one backend alone
    pose_solver: str = "canonical"  # MediaPipe (alone or fused): "canonical" fit or FaceLandmarker's "matrix"
    identity: str = "dlib"
    min_score: float = 0.6
    max_faces: int | None = None
    detect_max_side: int = DETECT_MAX_SIDE  # lfa's one detection size (lfa.face.detect)
    device: str = "cpu"

    def __post_init__(self) -> None:
        for value, allowed, what in ((self.detector, DETECTORS, "detector"), (self.pose, POSE_BACKENDS, "pose"),
                                     (self.identity, IDENTITY_BACKENDS, "identity")):
            if value not in allowed:
                raise ConfigError(f"unknown {what} backend {value!r}", f"use one of: {', '.join(allowed)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_detector(config: AnalyzerConfig, store: ModelStore) -> Detector:
    if config.detector == "scrfd":
        from lfa.face.detect.scrfd import SCRFDDetector

        return SCRFDDetector(store.path("scrfd"), score_threshold=config.min_score)
    from lfa.face.detect.yunet import YuNetDetector

    return YuNetDetector(store.path("yunet"), score_threshold=config.min_score, max_side=config.detect_max_side)


def build_pose(config: AnalyzerConfig, store: ModelStore) -> PoseEstimator | None:
    if config.pose == "fused":
        from lfa.face.pose.fused import FusedPose

        landmarks = build_pose(replace(config, pose="mediapipe"), store)
        whenet = build_pose(replace(config, pose="whenet"), store)
        assert landmarks is not None and whenet is not None
        return FusedPose(landmarks, whenet)
    if config.pose == "mediapipe":
        from lfa.face.pose.mediapipe import MediaPipePose

        return MediaPipePose(store.path("face_landmarker"), solver=config.pose_solver)
    if config.pose == "whenet":
        from lfa.face.pose.whenet import WHENetPose

        return WHENetPose(store.path("whenet"), device=config.device)
    if config.pose == "sixdrepnet":
        from lfa.face.pose.sixdrepnet import SixDRepNetPose

        return SixDRepNetPose(store.path("sixdrepnet"), device=config.device)
    return None


def identity_class(name: str) -> tuple[type, str] | None:
    """The encoder class of identity backend ``name`` and its model's name in the store (None for "none"),
    without loading the model."""
    if name == "dlib":
        from lfa.face.identity.dlib_resnet import DlibResNetEncoder

        return DlibResNetEncoder, "dlib_resnet"
    if name == "arcface":
        from lfa.face.identity.arcface_onnx import ArcFaceOnnxEncoder

        return ArcFaceOnnxEncoder, "arcface"
    if name == "curricularface":
        from lfa.face.identity.curricularface import CurricularFaceEncoder

        return CurricularFaceEncoder, "curricularface"
    return None


def build_identity(config: AnalyzerConfig, store: ModelStore) -> IdentityEncoder | None:
    found = identity_class(config.identity)
    if found is None:
        return None
    cls, model = found
    if config.identity == "curricularface":  # PyTorch: runs on config.device
        return cls(store.path(model), device=config.device)
    return cls(store.path(model))


class PoseTarget(PosedFace, Protocol):
    """A face whose pose :meth:`FaceAnalyzer.measure_pose` can set: a :class:`Face`, or curation's sampled face."""

    box: np.ndarray
    score: float
    landmarks5: np.ndarray
    landmarks: np.ndarray | None


class FaceAnalyzer:
    """Finds faces and measures them. Models load once, when the analyzer is built.

    >>> analyzer = FaceAnalyzer()                       # YuNet + MediaPipe + dlib, all offline
    >>> faces = analyzer.analyze(rgb_uint8_image)       # list[Face], largest score first
    """

    def __init__(self, config: AnalyzerConfig | None = None, *, store: ModelStore | None = None) -> None:
        self.config = config or AnalyzerConfig()
        store = store or ModelStore()
        self.detector = build_detector(self.config, store)
        self.pose = build_pose(self.config, store)
        self.identity = build_identity(self.config, store)

    def analyze(self, image: np.ndarray) -> list[Face]:
        """All faces in one RGB uint8 image (H, W, 3)."""
        image = _check_image(image)
        faces = self.find(image)
        for face in faces:
            self.measure_pose(image, face)
        if self.identity is not None and faces:
            embeddings = embed_faces(self.identity, image, [f.landmarks5 for f in faces])
            for face, emb in zip(faces, embeddings):
                face.embedding, face.embedding_model = emb, self.identity.name
        return faces

    def find(self, image: np.ndarray) -> list[Face]:
        """Detection and quality only: faces without pose or embedding (:meth:`measure_pose` adds pose)."""
        image = _check_image(image)
        h, w = image.shape[:2]
        return [Face(box=d.box, score=d.score, landmarks5=d.landmarks5, area_ratio=area_ratio(d.box, w, h),
                     sharpness=sharpness(image, d.box))
                for d in self.detector.detect(image)[: self.config.max_faces]]

    def measure_pose(self, image: np.ndarray, face: PoseTarget) -> None:
        """Set the pose fields of ``face`` (found in ``image``); without a pose backend, nothing changes."""
        if self.pose is None:
            return
        pose = self.pose.estimate(image, Detection(face.box, face.score, face.landmarks5))
        if pose is None:
            face.pose_missing_reason = self.pose.missing_reason or f"{self.pose.name} gave no pose"
            return
        face.yaw, face.pitch, face.roll, face.landmarks = pose.yaw, pose.pitch, pose.roll, pose.landmarks
        face.pose_source, face.pose_confidence = pose.source or self.pose.name, pose.confidence
        face.pose_readings = dict(pose.readings)
        face.pose_missing_reason = None

    def analyze_batch(self, images: Iterable[np.ndarray] | Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces of each frame of a batch (frames of a video, say)."""
        return [self.analyze(image) for image in images]


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ConfigError(f"expected an RGB image of shape (H, W, 3), got {image.shape}",
                          "pass a decoded RGB frame, e.g. from lfa.media.read_image")
    if image.shape[2] == 4:
        image = image[:, :, :3]
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)
