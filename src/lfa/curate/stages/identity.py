"""Stage 4, identity consistency: embed K frames spread over time and yaw, and look for an identity switch
with the pose-aware identity score (:mod:`lfa.face.identity.score`), so that a clip turning from frontal to
profile compares like with like instead of a frontal face with a profile.

The switch check compares the faces before and after every split between embedded frames; the split
whose two sides agree least decides. When they are not the same person at the configured false-accept
rate, the switch is located to one sampled frame (embedding the frames in between), so
``on_switch=split`` cuts where the person changes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lfa.curate.config import IdentityConfig
from lfa.curate.records import Decision, SampledFace
from lfa.face.embedding import l2_normalize
from lfa.face.identity import IdentityEncoder
from lfa.face.identity.score import FaceSet, IdentityScore, IdentityScorer

STAGE = "identity"


@dataclass
class IdentityEvidence:
    """The embedded faces of a clip's main track (kept in the manifest for clustering)."""

    times: np.ndarray
    embeddings: np.ndarray  # (K, D), L2-normalised
    yaws: np.ndarray  # NaN where no pose
    backend: str

    @property
    def centroid(self) -> np.ndarray:
        return l2_normalize(self.embeddings.mean(0))

    def face_set(self, which: np.ndarray | slice = slice(None)) -> FaceSet:
        return FaceSet(self.embeddings[which], self.yaws[which], backend=self.backend)


def choose_frames(faces: list[tuple[float, SampledFace]], k: int) -> list[int]:
    """Indices of ``k`` faces spread over time: in each of ``k`` equal stretches of the track, the most
    frontal face (identity models separate people best near frontal; a profile's embedding carries
    more hair, ear and lighting than face)."""
    n = len(faces)
    if n <= k:
        return list(range(n))
    chosen = []
    for part in np.array_split(np.arange(n), k):
        yaws = [abs(faces[i][1].yaw) if faces[i][1].has_pose else 90.0 for i in part]
        chosen.append(int(part[int(np.argmin(yaws))]))
    return chosen


class _Embedder:
    """Embeds a track's faces on demand, once each."""

    def __init__(self, faces: list[tuple[float, SampledFace]], encoder: IdentityEncoder) -> None:
        self.faces, self.encoder = faces, encoder
        self.done: dict[int, np.ndarray] = {}

    def embed(self, indices: list[int]) -> None:
        todo = [i for i in indices if i not in self.done]
        if todo:
            for i, e in zip(todo, self.encoder.embed_aligned(np.stack([self.faces[i][1].chip for i in todo]))):
                self.done[i] = e

    def evidence(self) -> IdentityEvidence:
        idx = sorted(self.done)
        return IdentityEvidence(np.array([self.faces[i][0] for i in idx]), np.stack([self.done[i] for i in idx]),
                                np.array([self.faces[i][1].yaw for i in idx], np.float64), self.encoder.name)


def _split_scores(ev: IdentityEvidence, scorer: IdentityScorer) -> list[tuple[int, IdentityScore]]:
    """(split position, score of before vs after) for every split between embedded frames."""
    return [(i, scorer.compare(ev.face_set(slice(0, i)), ev.face_set(slice(i, None)))) for i in range(1, len(ev.times))]


def _locate_switch(emb: _Embedder, left: int, right: int) -> float:
    """The switch between sampled faces ``left`` (before) and ``right`` (after): every face in between is
    embedded and the cut goes where consecutive faces differ most. Neighbouring samples of one person
    differ little in pose, so the largest drop of their cosine is the change of person. Returns the time
    halfway between the two faces around it."""
    idx = list(range(left, right + 1))
    emb.embed(idx)
    sims = [float(emb.done[a] @ emb.done[b]) for a, b in zip(idx, idx[1:])]
    k = int(np.argmin(sims))
    return float((emb.faces[idx[k]][0] + emb.faces[idx[k + 1]][0]) / 2)


def check_identity(faces: list[tuple[float, SampledFace]], encoder: IdentityEncoder, config: IdentityConfig,
                   scorer: IdentityScorer) -> tuple[Decision, IdentityEvidence]:
    """``faces``: (time, face) of the main track, in time order. Returns the decision and the embedded faces."""
    emb = _Embedder(faces, encoder)
    chosen = choose_frames(faces, config.frames)
    emb.embed(chosen)
    ev = emb.evidence()
    sims = ev.embeddings @ ev.centroid
    stats = {"identity_min_similarity": float(sims.min()), "identity_frames": len(chosen)}
    splits = _split_scores(ev, scorer)
    if not splits:
        return Decision.accept(**stats, identity_split_z=float("nan"), identity_split_pairs=0), ev
    pos, worst = min(splits, key=lambda s: s[1].z if np.isfinite(s[1].z) else np.inf)
    stats.update(identity_split_z=worst.z, identity_split_threshold=worst.threshold,
                 identity_split_kind=worst.kind, identity_split_pairs=worst.n_pairs)
    if worst.accept or not np.isfinite(worst.z):
        return Decision.accept(**stats), ev
    stats["switch_at"] = _locate_switch(emb, chosen[pos - 1], chosen[pos])
    return Decision.reject(STAGE, "identity_switch", worst.z, worst.threshold, **stats), emb.evidence()
