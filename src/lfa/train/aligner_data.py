"""The pose-shared aligner's own data, as FaithfulFaces trains it (arXiv 2605.04702): its own batch of face
pairs at every step, independent of the diffusion batch.

- :func:`build_face_pool`: every embedded face of the main track of every training clip (not only a
  window's reference views), with its Euler angles, through the frozen experts the aligner reads; cached per
  clip in fp16 (``CACHE/aligner/<clip>.safetensors``), built once;
- :func:`draw_pairs`: ``aligner_batch_size`` pairs per step, each two faces of one clip at least
  ``min_pose_difference`` apart, redrawn every step from (seed, step) alone, so every process of a DDP run
  draws the same batch whatever the split of the diffusion batch; a clip's pose pairs are listed once, so
  a pair that fails the pose rule is never drawn (nothing is dropped); each pair carries its identity
  (``cluster_id``), and pairs of one identity are not each other's negatives.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lfa.train.data import Sample, read_clips

POOL_FORMAT = "lfa-aligner-pool-v1"


@dataclass
class ClipFaces:
    clip_id: str
    cluster_id: int
    tokens: dict[str, torch.Tensor]  # expert -> (M, N, D) fp16
    angles: torch.Tensor  # (M, 3) yaw, pitch, roll in degrees
    pairs: np.ndarray  # (P, 2) face indices at least min_pose_difference apart


@dataclass
class FacePool:
    clips: list[ClipFaces]
    bytes_per_face: int

    @property
    def identities(self) -> int:
        return len({c.cluster_id for c in self.clips})

    @property
    def faces(self) -> int:
        return sum(len(c.angles) for c in self.clips)


def _key(clip_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", clip_id)


def build_face_pool(data: str | Path, samples: Sequence[Sample], train_rows: Sequence[int], folder: Path,
                    encoders: Callable[[], Any], experts: tuple[str, ...], min_pose_difference: float,
                    *, extract_to: Path | None = None) -> FacePool:
    """The pool of the clips behind ``train_rows`` (see the module docstring); ``encoders`` loads the models
    (:class:`lfa.train.cache.Encoders`), called only when a clip is not cached yet."""
    from safetensors.torch import load_file, save_file

    from lfa.media import read_frames

    _, _, tracks, sources = read_clips(data, extract_to)
    clusters = {samples[i].clip_id: samples[i].cluster_id for i in train_rows}
    folder.mkdir(parents=True, exist_ok=True)
    loaded, clips = None, []
    for clip_id in sorted(clusters):
        path = folder / f"{_key(clip_id)}.safetensors"
        if not path.is_file():
            rows = [r for r in tracks.get(clip_id, []) if r.get("landmarks5") and r.get("yaw") is not None
                    and not np.isnan(r["yaw"])]
            if len(rows) < 2:
                continue
            source = sources[clip_id]
            frames = read_frames(source.path, times=[r["t"] - source.offset for r in rows])
            images = [min(frames, key=lambda f: abs(f.t - (r["t"] - source.offset))).image for r in rows]
            loaded = loaded or encoders()
            out = loaded.encode_faces(images, [r["landmarks5"] for r in rows],
                                      [(r["yaw"], r["pitch"] or 0.0, r["roll"] or 0.0) for r in rows])
            tensors = {k: v.half().contiguous() if k.startswith("face.") else v.float() for k, v in out.items()}
            tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
            save_file(tensors, str(tmp), metadata={"format": POOL_FORMAT, "clip_id": clip_id})
            os.replace(tmp, path)
        shard = load_file(path)
        angles = shard["face_angles"]
        tokens = {name: shard[f"face.{name}"] for name in experts if f"face.{name}" in shard}
        clips.append(ClipFaces(clip_id, clusters[clip_id], tokens, angles,
                               pose_pairs(angles, min_pose_difference)))
    usable = [c for c in clips if len(c.pairs)]
    per_face = sum(int(t[0].numel()) * t.element_size() for t in usable[0].tokens.values()) + 12 if usable else 0
    pool = FacePool(usable, per_face)
    (folder / "pool.json").write_text(json.dumps(describe(pool), indent=2) + "\n")
    return pool


def pose_pairs(angles: torch.Tensor, minimum: float) -> np.ndarray:
    """(P, 2) index pairs i < j whose largest Euler-angle difference reaches ``minimum`` degrees."""
    from lfa.model.losses import pose_difference

    m = len(angles)
    i, j = np.triu_indices(m, k=1)
    if not len(i):
        return np.zeros((0, 2), np.int64)
    gap = pose_difference(angles[torch.from_numpy(i)], angles[torch.from_numpy(j)]).numpy()
    keep = gap >= minimum
    return np.stack([i[keep], j[keep]], axis=1)


def draw_pairs(pool: FacePool, count: int, seed: int, step: int):
    """(view_a, view_b, groups) for one step: ``count`` pose pairs, clips drawn uniformly, then a pair of the
    clip, its order at random; from (seed, step) only."""
    from lfa.model.encoders import FaceFeatures

    rng = np.random.default_rng([seed & 0xFFFFFFFF, step, 13])
    which = rng.integers(0, len(pool.clips), size=count)
    sides: list[list[tuple[int, int]]] = [[], []]
    for c in which:
        pair = pool.clips[c].pairs[rng.integers(0, len(pool.clips[c].pairs))]
        first = int(rng.integers(0, 2))
        sides[0].append((int(c), int(pair[first])))
        sides[1].append((int(c), int(pair[1 - first])))
    experts = list(pool.clips[0].tokens)

    def view(side: list[tuple[int, int]]) -> FaceFeatures:
        tokens = {n: torch.stack([pool.clips[c].tokens[n][f] for c, f in side]).float() for n in experts}
        return FaceFeatures(tokens, torch.stack([pool.clips[c].angles[f] for c, f in side]).float())

    groups = torch.tensor([pool.clips[c].cluster_id for c in which], dtype=torch.long)
    return view(sides[0]), view(sides[1]), groups


def describe(pool: FacePool) -> dict[str, Any]:
    return {"aligner_clips": len(pool.clips), "aligner_faces": pool.faces, "aligner_identities": pool.identities,
            "aligner_bytes_per_face": pool.bytes_per_face}
