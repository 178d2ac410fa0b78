"""Stage 4, identity consistency: embed K frames spread over time, and look for an identity switch with
the pose-aware identity score (:mod:`lfa.face.identity.score`), so that a clip turning from frontal to
profile compares like with like instead of a frontal face with a profile.

For every split between embedded frames, the faces before and after are compared pair by pair. A switch
needs pose-matched evidence: pairs on the same side of the face within 15° of yaw that look like two
people at the configured false-accept rate, not contradicted by the other pairs. Where the chosen frames
hold no pose-matched pair across a split, the closest-yaw pair the track has is embedded too. Cross-pose
pairs alone never reject a clip: with dlib they separate people poorly (AUC ~0.64 for opposite sides,
issue 9), and a false reject of a large-angle clip is what curation must avoid. The switch is then
located to one sampled frame (embedding the frames in between), then to one frame at the full frame rate
(:func:`refine_switch`), so ``on_switch=split`` cuts where the person changes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lfa.curate.config import IdentityConfig
from lfa.curate.records import Decision, SampledFace
from lfa.curate.stages.tracking import link_cost
from lfa.face.align import align_face
from lfa.face.detect import Detector
from lfa.face.embedding import l2_normalize
from lfa.face.identity import IdentityEncoder
from lfa.face.identity.score import FaceSet, IdentityScorer

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


@dataclass
class SplitEvidence:
    """Faces before vs after one split. Margins are z minus the z threshold at the false-accept rate, per
    pair of faces: below 0 the pair looks like two people. Pose-matched pairs (same side, |Δyaw| ≤ 15°)
    are the telling ones; the others (cross-bucket) are weak evidence with today's identity models."""

    pos: int
    matched: list[tuple[float, float]]  # (z, threshold) of pose-matched pairs
    cross: list[float]  # margins of the other pairs with a pose on both faces

    @property
    def matched_margin(self) -> float:
        return float(np.mean([z - t for z, t in self.matched])) if self.matched else float("nan")

    @property
    def cross_margin(self) -> float:
        return float(np.median(self.cross)) if self.cross else float("nan")

    @property
    def says_switch(self) -> bool:
        """Two people: the pose-matched pairs say so, and the other pairs do not contradict it."""
        return bool(self.matched) and self.matched_margin < 0 and not (self.cross_margin >= 0)


def _evidence(ev: IdentityEvidence, pos: int, scorer: IdentityScorer, max_dyaw: float) -> SplitEvidence:
    matched, cross = [], []
    for i in range(pos):
        for j in range(pos, len(ev.times)):
            if np.isnan(ev.yaws[i]) or np.isnan(ev.yaws[j]):
                continue
            s = scorer.compare(ev.face_set([i]), ev.face_set([j]))
            if abs(ev.yaws[i] - ev.yaws[j]) <= max_dyaw:
                matched.append((s.z, s.threshold))
            else:
                cross.append(s.z - s.threshold)
    return SplitEvidence(pos, matched, cross)


def _closest_pose_pair(faces: list[tuple[float, SampledFace]], split_t: float, max_dyaw: float) -> list[int]:
    """One face before ``split_t`` and one after with the closest yaw (nearest frontal among ties), when
    within ``max_dyaw``: a pose-matched pair to embed where the chosen frames hold none."""
    before = [i for i, (t, f) in enumerate(faces) if t < split_t and f.has_pose]
    after = [i for i, (t, f) in enumerate(faces) if t >= split_t and f.has_pose]
    best = min(((abs(faces[i][1].yaw - faces[j][1].yaw), abs(faces[i][1].yaw) + abs(faces[j][1].yaw), i, j)
                for i in before for j in after), default=None)
    return [best[2], best[3]] if best is not None and best[0] <= max_dyaw else []


def _locate_switch(emb: _Embedder, left: int, right: int) -> tuple[int, int]:
    """The switch between sampled faces ``left`` (before) and ``right`` (after): every face in between is
    embedded and the cut goes where consecutive faces differ most. Neighbouring samples of one person
    differ little in pose, so the largest drop of their cosine is the change of person. Returns the two
    consecutive faces around it."""
    idx = list(range(left, right + 1))
    emb.embed(idx)
    sims = [float(emb.done[a] @ emb.done[b]) for a, b in zip(idx, idx[1:])]
    k = int(np.argmin(sims))
    return idx[k], idx[k + 1]


def refine_switch(path: Path, faces: list[tuple[float, SampledFace]], between: tuple[int, int],
                  detector: Detector, encoder: IdentityEncoder, decode_max_side: int, max_cost: float) -> float:
    """The time of the second person's first frame, at the full frame rate. ``between``: the sampled faces
    (indices into ``faces``) the change lies between, the last of the first person and the first of the
    second. The frames between them are decoded; in each, the face nearest the box the two sampled faces
    interpolate (within ``max_cost`` of :func:`link_cost`) is embedded, and the cut goes where the frames
    after it resemble the second sampled face and those before it the first."""
    from lfa.media import iter_decoded

    (t0, first), (t1, second) = faces[between[0]], faces[between[1]]
    times, chips = [], []
    for frame in iter_decoded(path, start=t0, end=t1):
        if not t0 < frame.t < t1:
            continue
        image = frame.rgb(decode_max_side)
        w = (frame.t - t0) / (t1 - t0)
        expected = (1 - w) * np.asarray(first.box, float) + w * np.asarray(second.box, float)
        detections = detector.detect(image)
        costs = [link_cost(np.asarray(d.box, float), expected) for d in detections]
        if costs and min(costs) <= max_cost:
            times.append(frame.t)
            chips.append(align_face(image, detections[int(np.argmin(costs))].landmarks5, encoder.template))
    if not chips:
        return float(t1)
    ends = encoder.embed_aligned(np.stack([first.chip, second.chip]))
    window = encoder.embed_aligned(np.stack(chips))
    return float([*times, t1][change_point(window @ ends[1] - window @ ends[0])])


def change_point(leaning: np.ndarray) -> int:
    """Where a run of frames turns from the first person to the second: ``leaning`` per frame is how much
    more it resembles the second person (> 0) than the first. Returns k such that frames k, k+1, ... are
    the second person's (``len(leaning)``: none of them): the k with the largest sum of leaning after it."""
    after = np.concatenate([np.cumsum(leaning[::-1])[::-1], [0.0]])
    return int(np.argmax(after))


def check_identity(faces: list[tuple[float, SampledFace]], encoder: IdentityEncoder, config: IdentityConfig,
                   scorer: IdentityScorer) -> tuple[Decision, IdentityEvidence]:
    """``faces``: (time, face) of the main track, in time order. Returns the decision and the embedded faces."""
    emb = _Embedder(faces, encoder)
    chosen = choose_frames(faces, config.frames)
    emb.embed(chosen)
    ev = emb.evidence()
    sims = ev.embeddings @ ev.centroid
    stats: dict = {"identity_min_similarity": float(sims.min()), "identity_frames": len(chosen),
                   "identity_split_z": float("nan")}
    if len(chosen) < 2:
        return Decision.accept(**stats), ev
    for pos in range(1, len(chosen)):  # splits without a pose-matched pair get one embedded, if the clip has one
        split_t = (faces[chosen[pos - 1]][0] + faces[chosen[pos]][0]) / 2
        if not _evidence(ev, ev.times.searchsorted(split_t), scorer, scorer.max_dyaw).matched:
            emb.embed(_closest_pose_pair(faces, split_t, scorer.max_dyaw))
            ev = emb.evidence()
    splits = [_evidence(ev, pos, scorer, scorer.max_dyaw) for pos in range(1, len(ev.times))]
    worst = min(splits, key=lambda e: e.matched_margin if e.matched else np.inf)
    if worst.matched:
        z, thr = (float(np.mean(v)) for v in zip(*worst.matched))
        stats.update(identity_split_z=z, identity_split_threshold=thr, identity_split_pairs=len(worst.matched))
    saying = [e for e in splits if e.says_switch]
    if not saying:
        return Decision.accept(**stats), ev
    switch = min(saying, key=lambda e: e.matched_margin)
    z, thr = (float(np.mean(v)) for v in zip(*switch.matched))
    stats.update(identity_split_z=z, identity_split_threshold=thr, identity_split_pairs=len(switch.matched))
    # every split that says "switch" has the change of person on its far side or near it: look for the
    # change between the first and the last of them
    index = {t: i for i, (t, _) in enumerate(faces)}
    first, last = min(e.pos for e in saying), max(e.pos for e in saying)
    a, b = _locate_switch(emb, index[ev.times[first - 1]], index[ev.times[last]])
    stats["switch_between"] = (a, b)  # refine_switch finds the frame between them
    stats["switch_at"] = float((faces[a][0] + faces[b][0]) / 2)
    return Decision.reject(STAGE, "identity_switch", z, thr, measure="identity_split_z", **stats), emb.evidence()
