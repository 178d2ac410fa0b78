"""Stage 5: identity clusters across all accepted clips, the basis for identity-disjoint train/test splits.

Average linkage on the pose-aware identity score (:mod:`lfa.face.identity.score`) between clips' embedded
faces: two clusters join while the mean z over every pair of their clips reaches ``min_z``. Unlike
linking any two clips above a threshold (connected components), one close pair cannot chain two people
together. Only each clip's nearest neighbours by centroid (FAISS) are scored; pairs not scored count as
impostors (z = 0), which keeps a large run near-linear."""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from lfa.face.embedding import l2_normalize
from lfa.face.identity.score import FaceSet, IdentityScorer

NEIGHBOURS = 30


@dataclass
class Clusters:
    ids: np.ndarray  # cluster id per clip, numbered by first appearance
    tightness_z: np.ndarray  # per cluster: mean pair z inside it (NaN for one clip)
    nearest_cluster: np.ndarray  # per cluster: the other cluster it resembles most (-1: none)
    nearest_z: np.ndarray  # ... and the mean pair z between them

    def rows(self) -> list[dict]:
        sizes = np.bincount(self.ids, minlength=len(self.tightness_z))
        return [{"cluster_id": k, "clips": int(sizes[k]), "tightness_z": _num(self.tightness_z[k]),
                 "nearest_cluster": int(self.nearest_cluster[k]), "nearest_z": _num(self.nearest_z[k])}
                for k in range(len(self.tightness_z))]


def _num(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def pair_scores(sets: list[FaceSet], scorer: IdentityScorer, neighbours: int = NEIGHBOURS) -> dict[tuple[int, int], float]:
    """z of each clip against its nearest clips by centroid: {(i, j): z} with i < j."""
    n = len(sets)
    centroids = np.stack([l2_normalize(np.nanmean(s.embeddings, axis=0)) for s in sets]).astype(np.float32)
    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids))
    _, near = index.search(np.ascontiguousarray(centroids), min(n, neighbours + 1))
    scores: dict[tuple[int, int], float] = {}
    for i in range(n):
        for j in near[i]:
            a, b = sorted((i, int(j)))
            if a != b and (a, b) not in scores:
                z = scorer.compare(sets[a], sets[b]).z
                scores[(a, b)] = float(z) if np.isfinite(z) else 0.0
    return scores


def average_linkage(n: int, scores: dict[tuple[int, int], float], min_z: float) -> Clusters:
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    total: dict[int, dict[int, float]] = {i: {} for i in range(n)}  # sum of z between clusters
    for (a, b), z in scores.items():
        total[a][b] = total[b][a] = z

    def mean(a: int, b: int) -> float:
        return total[a].get(b, 0.0) / (len(members[a]) * len(members[b]))

    while True:
        best, pair = min_z, None
        for a in members:
            for b, _ in total[a].items():
                if a < b and (m := mean(a, b)) >= best:
                    best, pair = m, (a, b)
        if pair is None:
            break
        a, b = pair  # b joins a
        for c, z in total.pop(b).items():
            total[c].pop(b, None)
            if c != a:
                total[a][c] = total[a].get(c, 0.0) + z
                total[c][a] = total[a][c]
        total[a].pop(b, None)
        members[a] += members.pop(b)
    order = sorted(members, key=lambda k: min(members[k]))
    ids = np.zeros(n, np.int64)
    for k, root in enumerate(order):
        ids[members[root]] = k
    tight, near_c, near_z = np.full(len(order), np.nan), np.full(len(order), -1), np.full(len(order), np.nan)
    for k, root in enumerate(order):
        inside = [scores[(a, b)] for a in members[root] for b in members[root] if a < b and (a, b) in scores]
        m = len(members[root])
        if m > 1:
            tight[k] = sum(inside) / (m * (m - 1) / 2)
        others = [(mean(root, other), j) for j, other in enumerate(order) if other != root]
        if others:
            near_z[k], near_c[k] = max(others)
    return Clusters(ids, tight, near_c, near_z)


def cluster_identities(sets: list[FaceSet], scorer: IdentityScorer, min_z: float) -> Clusters:
    """Cluster clips (each a set of embedded faces with their yaw) into identities."""
    if not sets:
        return Clusters(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), np.zeros(0))
    return average_linkage(len(sets), pair_scores(sets, scorer), min_z)
