"""Stage 5: identity clusters across all accepted clips (FAISS range search on centroids, then
connected components), the basis for identity-disjoint train/test splits."""

from __future__ import annotations

import faiss
import numpy as np

from lfa.face.embedding import l2_normalize


def cluster_identities(centroids: np.ndarray, min_similarity: float) -> np.ndarray:
    """Cluster id per row: rows whose cosine similarity reaches ``min_similarity`` are linked, and
    linked rows share an id. Ids are numbered by first appearance, so they are deterministic."""
    n = len(centroids)
    if n == 0:
        return np.zeros(0, np.int64)
    x = np.ascontiguousarray(l2_normalize(centroids), dtype=np.float32)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    limits, _, neighbours = index.range_search(x, float(min_similarity))
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in neighbours[limits[i]: limits[i + 1]]:
            a, b = find(i), find(int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)
    roots = [find(i) for i in range(n)]
    ids: dict[int, int] = {}
    return np.array([ids.setdefault(r, len(ids)) for r in roots], np.int64)
