"""A set of faces on one side of an identity comparison: embeddings with their head pose (the input of
:mod:`lfa.face.identity.score` and of the impostor models of :mod:`lfa.face.identity.impostors`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

from lfa.errors import ConfigError
from lfa.face.embedding import l2_normalize
from lfa.face.types import Face


@dataclass(frozen=True)
class FaceSet:
    """Faces on one side of a comparison. ``embeddings`` (N, D) are L2-normalised here; a row of NaN
    is a frame without a face (kept so per-frame results line up). ``yaw``/``pitch`` (N,) in degrees,
    NaN where unknown. ``backend`` names the identity model, checked against the impostor model's."""

    embeddings: np.ndarray
    yaw: np.ndarray
    pitch: np.ndarray | None = None
    backend: str | None = None

    def __post_init__(self) -> None:
        emb = np.asarray(self.embeddings, np.float32)
        if emb.ndim == 1:
            emb = emb[None]
        yaw = np.atleast_1d(np.asarray(self.yaw, np.float64))
        if emb.ndim != 2 or len(yaw) != len(emb):
            raise ConfigError(f"a face set needs (N, D) embeddings and N yaws, got {emb.shape} and {yaw.shape}",
                              "pass one yaw per embedding (NaN where the pose is unknown)")
        pitch = None if self.pitch is None else np.atleast_1d(np.asarray(self.pitch, np.float64))
        if pitch is not None and len(pitch) != len(emb):
            raise ConfigError(f"{len(pitch)} pitches for {len(emb)} faces", "pass one pitch per face, or none")
        face = np.isfinite(emb).all(axis=1) if emb.size else np.zeros(len(emb), bool)
        emb = np.where(face[:, None], l2_normalize(np.nan_to_num(emb)), np.nan).astype(np.float32)
        object.__setattr__(self, "embeddings", emb)
        object.__setattr__(self, "yaw", np.where(face, yaw, np.nan))
        object.__setattr__(self, "pitch", pitch)

    @classmethod
    def from_faces(cls, faces: Sequence[Face | None], dim: int | None = None) -> FaceSet:
        """From analysed faces (``None``: a frame without a face). Every face needs an embedding."""
        found = [f for f in faces if f is not None]
        if any(f.embedding is None for f in found):
            raise ConfigError("a face has no identity embedding",
                              "analyse with an identity backend (AnalyzerConfig(identity='dlib'))")
        backends = {f.embedding_model for f in found}
        if len(backends) > 1:
            raise ConfigError(f"faces embedded by different identity models: {sorted(map(str, backends))}",
                              "embed every face with one identity backend")
        d = len(found[0].embedding) if found else (dim or 1)
        emb = np.array([f.embedding if f is not None else np.full(d, np.nan) for f in faces], np.float32)
        yaw = [f.yaw if f is not None else math.nan for f in faces]
        pitch = [f.pitch if f is not None else math.nan for f in faces]
        return cls(emb.reshape(len(faces), d), np.array(yaw), np.array(pitch), backends.pop() if backends else None)

    def __len__(self) -> int:
        return len(self.embeddings)

    @property
    def has_face(self) -> np.ndarray:
        return ~np.isnan(self.embeddings[:, 0]) if len(self) else np.zeros(0, bool)

    @property
    def n_faces(self) -> int:
        return int(self.has_face.sum())

    def select(self, which: np.ndarray | Sequence[int] | slice) -> FaceSet:
        """The faces at ``which`` (a boolean mask, indices or a slice)."""
        return FaceSet(self.embeddings[which], self.yaw[which], None if self.pitch is None else self.pitch[which],
                       self.backend)


Faces = Union[FaceSet, Face, Sequence[Optional[Face]]]  # what the scoring API accepts for a side


def as_face_set(faces: Faces) -> FaceSet:
    """A :class:`FaceSet` from what a caller has at hand: a face set, one analysed face, or a list of faces
    (``None`` for a frame without one)."""
    if isinstance(faces, FaceSet):
        return faces
    if isinstance(faces, Face):
        return FaceSet.from_faces([faces])
    if isinstance(faces, (list, tuple)) and all(f is None or isinstance(f, Face) for f in faces):
        return FaceSet.from_faces(faces)
    raise ConfigError(f"cannot compare {type(faces).__name__} as faces",
                      "pass a FaceSet, a Face or a list of Faces (FaceAnalyzer.analyze)")

