"""Perception: faces, landmarks, head pose (see :mod:`lfa.face.angles`) and identity embeddings."""

from lfa.face.align import ARCFACE_112, DLIB_150, FaceTemplate, align_face
from lfa.face.analyzer import AnalyzerConfig, FaceAnalyzer
from lfa.face.angles import angles_from_rotation, rotation_from_angles
from lfa.face.detect import DETECT_MAX_SIDE
from lfa.face.embedding import cosine_similarity, l2_normalize
from lfa.face.types import Detection, Face, HeadPose

__all__ = [
    "ARCFACE_112",
    "DETECT_MAX_SIDE",
    "DLIB_150",
    "AnalyzerConfig",
    "Detection",
    "Face",
    "FaceAnalyzer",
    "FaceTemplate",
    "HeadPose",
    "align_face",
    "angles_from_rotation",
    "cosine_similarity",
    "l2_normalize",
    "rotation_from_angles",
]
