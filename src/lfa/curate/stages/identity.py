"""Stage 4, identity consistency: embed K frames spread over time and yaw, compare with the centroid,
find an identity switch."""

from __future__ import annotations

import numpy as np

from lfa.curate.config import IdentityConfig
from lfa.curate.records import Decision, SampledFace
from lfa.face.embedding import l2_normalize
from lfa.face.identity import IdentityEncoder

STAGE = "identity"


def choose_frames(faces: list[tuple[float, SampledFace]], k: int) -> list[int]:
    """Indices of ``k`` faces: half evenly spaced in time, half spread over the yaw range."""
    n = len(faces)
    if n <= k:
        return list(range(n))
    by_time = np.linspace(0, n - 1, (k + 1) // 2).round().astype(int).tolist()
    yaws = np.array([f.yaw if f.has_pose else 0.0 for _, f in faces])
    order = np.argsort(yaws, kind="stable")
    by_yaw = order[np.linspace(0, n - 1, k).round().astype(int)].tolist()
    chosen: list[int] = []
    for i in by_time + by_yaw:
        if i not in chosen:
            chosen.append(int(i))
        if len(chosen) == k:
            break
    return sorted(chosen)


def best_split(times: np.ndarray, embeddings: np.ndarray) -> tuple[float, float]:
    """Time split of the embedded frames that maximises the lower of the two segments' self-similarity;
    returns (split time, the similarity between the two segments' centroids)."""
    best = (float(times[len(times) // 2]), 1.0)
    best_score = -np.inf
    for i in range(1, len(times)):
        a, b = l2_normalize(embeddings[:i].mean(0)), l2_normalize(embeddings[i:].mean(0))
        within = min(float((embeddings[:i] @ a).min()), float((embeddings[i:] @ b).min()))
        score = within - float(a @ b)
        if score > best_score:
            best_score, best = score, (float((times[i - 1] + times[i]) / 2), float(a @ b))
    return best


def check_identity(faces: list[tuple[float, SampledFace]], encoder: IdentityEncoder,
                   config: IdentityConfig) -> tuple[Decision, np.ndarray | None]:
    """``faces``: (time, face) of the main track. Returns the decision and the L2-normalised centroid."""
    chosen = choose_frames(faces, config.frames)
    chips = np.stack([faces[i][1].chip for i in chosen])
    emb = encoder.embed_aligned(chips)
    centroid = l2_normalize(emb.mean(0))
    sims = emb @ centroid
    split_t, between = best_split(np.array([faces[i][0] for i in chosen]), emb)
    stats = {"identity_min_similarity": float(sims.min()), "identity_frames": len(chosen),
             "switch_at": split_t, "between_similarity": between}
    if sims.min() < config.min_similarity:
        return Decision.reject(STAGE, "identity_inconsistent", float(sims.min()), config.min_similarity,
                               **stats), centroid
    if between < config.switch_similarity:
        return Decision.reject(STAGE, "identity_switch", between, config.switch_similarity, **stats), centroid
    return Decision.accept(**stats), centroid
