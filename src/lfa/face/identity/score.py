"""The pose-aware identity score: one comparison for every job (curation, clustering, the benchmark).

A :class:`FaceSet` is faces of one side of a comparison: identity embeddings and their yaw (lfa
convention, degrees; NaN where no pose was measured). Comparing two sets looks at every pair of faces:

1. **pose-matched** pairs, signed ``|yaw_a - yaw_b| <= max_dyaw`` (15°: the same side of the face),
   are used when there is at least one;
2. otherwise every pair whose two faces have a pose (**cross-bucket**, e.g. a frontal reference against
   a profile frame);
3. otherwise (no pose on either side) every pair (**unposed**).

Each pair's cosine is z-scored against the impostor distribution of its (yaw bucket, yaw bucket) pair
(:mod:`lfa.face.identity.impostors`): ``z = (cos - mean_impostor) / std_impostor``. The score is the
mean z over the pairs used; the decision accepts when it reaches the z threshold that impostors of those
bucket pairs exceed with probability ``far`` (averaged over the pairs used, which is conservative: a
mean of several impostor pairs spreads less than one). ``n_pairs`` is the number of face pairs behind
the score, ``n_impostor_pairs`` the fewest impostor pairs behind any calibration it used and
``impostor_source`` the worst source used (``exact`` < ``mirrored`` < ``fallback`` < ``pooled``).
Per-frame scores against one reference set are calibrated, where the model's cohort allows, against
*that reference's* impostors in the frame's yaw bucket (``cohort``; ``n_impostor_pairs`` is then the
number of cohort faces), which also takes out how much a particular reference resembles people in
general; the set-vs-set forms use the bucket-pair statistics.

Forms: :meth:`IdentityScorer.compare` (set vs set: a face vs a reference set, two halves of a clip),
:meth:`IdentityScorer.score_frames` (each frame vs one reference set, frames without a face kept and
marked ``no_face``), :meth:`IdentityScorer.matrix` (clusters or tracks against each other, for average
linkage), :meth:`IdentityScorer.compare_split` (a track before and after a time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lfa.errors import ConfigError
from lfa.face.identity.faceset import Faces, FaceSet, as_face_set
from lfa.face.identity.impostors import (
    MIN_COHORT_FACES,
    MIN_IDENTITY_PAIRS,
    SOURCES,
    ImpostorModel,
    ImpostorStats,
    default_impostor_model,
    yaw_bucket,
)

POSE_MATCHED, CROSS_BUCKET, UNPOSED, NO_FACE = "pose_matched", "cross_bucket", "unposed", "no_face"
KINDS = (POSE_MATCHED, CROSS_BUCKET, UNPOSED, NO_FACE)
MAX_DYAW = 15.0
DEFAULT_FAR = 0.01


@dataclass(frozen=True)
class IdentityScore:
    z: float  # mean impostor z-score of the pairs used (NaN: nothing to compare)
    cosine: float  # mean raw cosine of the same pairs
    accept: bool  # same person at the stated false-accept rate
    threshold: float  # z the score had to reach
    far: float
    kind: str  # pose_matched | cross_bucket | unposed | no_face
    n_pairs: int  # face pairs the score rests on
    n_impostor_pairs: int  # fewest impostor pairs behind a calibration used
    impostor_source: str  # worst impostor source used: cohort | exact | mirrored | fallback | pooled


@dataclass(frozen=True)
class FrameScores:
    """One row per frame of :meth:`IdentityScorer.score_frames` (fields as in :class:`IdentityScore`)."""

    z: np.ndarray
    cosine: np.ndarray
    accept: np.ndarray
    threshold: np.ndarray
    kind: np.ndarray  # str
    n_pairs: np.ndarray
    n_impostor_pairs: np.ndarray
    impostor_source: np.ndarray  # str
    far: float

    def __len__(self) -> int:
        return len(self.z)

    def row(self, i: int) -> IdentityScore:
        return IdentityScore(float(self.z[i]), float(self.cosine[i]), bool(self.accept[i]), float(self.threshold[i]),
                             self.far, str(self.kind[i]), int(self.n_pairs[i]), int(self.n_impostor_pairs[i]),
                             str(self.impostor_source[i]))


@dataclass(frozen=True)
class SimilarityMatrix:
    """Set-vs-set scores of n sets (symmetric, diagonal NaN): the input of average-linkage clustering."""

    z: np.ndarray
    cosine: np.ndarray
    accept: np.ndarray
    kind: np.ndarray
    n_pairs: np.ndarray
    far: float


class IdentityScorer:
    """Pose-aware identity comparisons calibrated by one impostor model.

    >>> scorer = IdentityScorer()                                  # shipped dlib impostors
    >>> scorer.compare(faces_a, faces_b).z                        # lists of Faces or FaceSets
    """

    def __init__(self, model: ImpostorModel | None = None, *, far: float = DEFAULT_FAR,
                 max_dyaw: float = MAX_DYAW) -> None:
        self.model = model or default_impostor_model()
        self.far = far
        self.max_dyaw = max_dyaw
        self._tables = self.model.tables(far)  # checks far

    def _check(self, *sets: FaceSet) -> None:
        for s in sets:
            if s.backend is not None and s.backend != self.model.backend:
                raise ConfigError(f"faces embedded with {s.backend!r} scored against {self.model.backend!r} impostors",
                                  f"use an impostor model calibrated with --identity {s.backend}")

    def _pairs(self, a: FaceSet, b: FaceSet) -> dict[str, np.ndarray]:
        """Per pair (Na, Nb): cosine, z, threshold, impostor N and source, and the level it belongs to
        (0 pose-matched, 1 cross-bucket, 2 unposed, 3 a face missing)."""
        t = self._tables
        if a.n_faces and b.n_faces and a.embeddings.shape[1] != b.embeddings.shape[1]:
            raise ConfigError(f"embeddings of {a.embeddings.shape[1]} and {b.embeddings.shape[1]} dimensions compared",
                              "embed both sides with one identity backend")
        both = a.n_faces and b.n_faces
        cos = np.nan_to_num(a.embeddings) @ np.nan_to_num(b.embeddings).T if both else np.zeros((len(a), len(b)))
        ba, bb = yaw_bucket(a.yaw)[:, None], yaw_bucket(b.yaw)[None, :]
        z = (cos - t.mean[ba, bb]) / t.std[ba, bb]
        dyaw = np.abs(a.yaw[:, None] - b.yaw[None, :])
        posed = ~np.isnan(dyaw)
        level = np.where(posed, np.where(dyaw <= self.max_dyaw, 0, 1), 2)
        level = np.where(a.has_face[:, None] & b.has_face[None, :], level, 3)
        return {"cos": cos, "z": z, "thr": t.z_threshold[ba, bb], "n": t.n_pairs[ba, bb],
                "src": t.source[ba, bb], "level": level}

    def _reduce(self, p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Row-wise: keep each row's best level, then average over the pairs kept."""
        best = p["level"].min(axis=1, initial=3)
        use = (p["level"] == best[:, None]) & (best[:, None] < 3)
        n = use.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = {k: np.where(use, p[k], 0.0).sum(axis=1) / n for k in ("cos", "z", "thr")}
        n_imp = np.where(use, p["n"], np.iinfo(np.int64).max).min(axis=1, initial=np.iinfo(np.int64).max)
        src = np.where(use, p["src"], -1).max(axis=1, initial=-1)
        none = n == 0
        return {"z": np.where(none, np.nan, mean["z"]), "cos": np.where(none, np.nan, mean["cos"]),
                "thr": np.where(none, np.nan, mean["thr"]), "accept": ~none & (mean["z"] >= mean["thr"]),
                "kind": np.array(KINDS)[best], "n": n, "n_imp": np.where(none, 0, n_imp),
                "src": np.array([*SOURCES, ""], dtype=object)[src]}

    def compare(self, a: Faces, b: Faces) -> IdentityScore:
        """``a`` (one face or many) against ``b``, over every pair of faces of the best level."""
        a, b = as_face_set(a), as_face_set(b)
        self._check(a, b)
        p = {k: v.reshape(1, -1) for k, v in self._pairs(a, b).items()}
        r = self._reduce(p)
        return FrameScores(r["z"], r["cos"], r["accept"], r["thr"], r["kind"], r["n"], r["n_imp"], r["src"],
                           self.far).row(0)

    def score_frames(self, frames: Faces, reference: Faces, *, reference_identity: str | None = None
                     ) -> FrameScores:
        """Each frame's face (one row of ``frames``) against the whole reference set.

        Where the impostor model has a cohort with enough faces (``MIN_COHORT_FACES`` of
        ``MIN_IDENTITY_PAIRS`` people) in the frame's yaw bucket, the frame is calibrated against those
        cohort faces scored against *this reference* by the same pair rule (source ``cohort``; the
        cohort faces labelled ``reference_identity`` are left out); elsewhere against the bucket pairs."""
        frames, reference = as_face_set(frames), as_face_set(reference)
        self._check(frames, reference)
        r = self._reduce(self._pairs(frames, reference))
        self._cohort_calibrate(frames, reference, r, reference_identity)
        return FrameScores(r["z"], r["cos"], r["accept"], r["thr"], r["kind"], r["n"], r["n_imp"], r["src"],
                           self.far)

    def _cohort_calibrate(self, frames: FaceSet, reference: FaceSet, r: dict[str, np.ndarray],
                          exclude: str | None) -> None:
        buckets = yaw_bucket(frames.yaw)
        todo = frames.has_face & (r["n"] > 0)
        for cohort, ids in self.model.cohorts():
            keep = ids != exclude if exclude is not None else np.ones(len(ids), bool)
            cohort, ids = cohort.select(keep), ids[keep]
            c_cos = self._reduce(self._pairs(cohort, reference))["cos"]
            c_buckets = yaw_bucket(cohort.yaw)
            for b in np.unique(buckets[todo]):
                sel = c_buckets == b
                if sel.sum() < MIN_COHORT_FACES or len(set(ids[sel])) < MIN_IDENTITY_PAIRS:
                    continue
                stats = ImpostorStats.of(c_cos[sel], len(set(ids[sel])))
                rows = todo & (buckets == b)
                r["z"][rows] = (r["cos"][rows] - stats.mean) / stats.std
                r["thr"][rows] = stats.z_at_far[self.far]
                r["accept"][rows] = r["z"][rows] >= stats.z_at_far[self.far]
                r["n_imp"][rows] = stats.n_pairs
                r["src"][rows] = "cohort"
                todo &= ~rows

    def matrix(self, sets: Sequence[Faces]) -> SimilarityMatrix:
        """Every set against every other (clusters, tracks); symmetric."""
        sets = [as_face_set(s) for s in sets]
        n = len(sets)
        z, cos = np.full((n, n), np.nan), np.full((n, n), np.nan)
        accept, kind, pairs = np.zeros((n, n), bool), np.full((n, n), NO_FACE, object), np.zeros((n, n), np.int64)
        for i in range(n):
            for j in range(i + 1, n):
                s = self.compare(sets[i], sets[j])
                z[i, j] = z[j, i] = s.z
                cos[i, j] = cos[j, i] = s.cosine
                accept[i, j] = accept[j, i] = s.accept
                kind[i, j] = kind[j, i] = s.kind
                pairs[i, j] = pairs[j, i] = s.n_pairs
        return SimilarityMatrix(z, cos, accept, kind, pairs, self.far)

    def compare_split(self, track: Faces, times: Sequence[float] | np.ndarray, at: float) -> IdentityScore:
        """The faces of a track before ``at`` (seconds) against those from ``at`` on: the identity-switch check."""
        track = as_face_set(track)
        times = np.asarray(times, np.float64)
        if len(times) != len(track):
            raise ConfigError(f"{len(times)} times for {len(track)} faces", "pass one time per face")
        return self.compare(track.select(times < at), track.select(times >= at))
