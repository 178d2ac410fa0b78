"""Validation of a training run: windows it never trains on, fixed noise, and whether the adapter uses identity.

The split (:func:`split_samples`):
- ``val_split=clip`` (default): per identity cluster (``cluster_id``) with at least 2 clips,
  ``ceil(val_fraction x clips)`` of its clips are held out (known people, unseen clips);
- ``val_split=identity``: ``ceil(val_fraction x clusters)`` whole clusters are held out (unseen people);
- with no cluster of 2 clips (or, for ``identity``, fewer than 2 clusters) the last window of every clip is
  held out and the windows overlapping it are not trained on (``tail``).
``val_samples`` held-out windows are scored, each with ``val_noise_draws`` fixed noise/timestep draws.

The metrics (:class:`Validator`), at every validation step:
- ``val_loss``: the flow loss with each window's own faces;
- ``val_loss_other_face``: the same windows, noise and timesteps with the faces and reference views of
  another identity (another ``cluster_id``) at the closest yaw; ``val_id_gain`` = other − own, with a
  bootstrap 95% interval over validation *people* (``val_id_gain_lo``/``_hi``: windows of one clip are
  correlated, so an interval over windows would be too narrow), and per |yaw| bucket of the window
  (``val_id_gain_yaw<lo>_<hi>``, the benchmark's bucket edges);
- ``val_id_sensitivity``: mean |prediction(own) − prediction(other)| / mean |prediction(own)| — does the
  output respond to who the face is at all?
With a face path the face attention starts at zero, so ``val_id_gain`` is exactly 0 at step 0.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lfa.errors import ConfigError
from lfa.train.data import Sample

VAL_SPLITS = ("clip", "identity")
BOOTSTRAP = 1000


@dataclass(frozen=True)
class Split:
    train: list[int]  # indices into the samples
    val: list[int]  # the scored validation windows
    kind: str  # clip | identity | tail
    notes: list[str] = field(default_factory=list)  # one line each, for the terminal

    def describe(self) -> dict[str, Any]:
        return {"val_split": self.kind, "val_windows": len(self.val)}


def _rank(seed: int, key: str) -> str:
    return hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()


def split_samples(samples: Sequence[Sample], *, val_split: str = "clip", val_fraction: float = 0.1,
                  val_samples: int = 8, seed: int = 0) -> Split:
    """Training and validation windows (see the module docstring); deterministic in ``seed``."""
    if val_split not in VAL_SPLITS:
        raise ConfigError(f"unknown val_split {val_split!r}", f"use one of {', '.join(VAL_SPLITS)}")
    clips: dict[int, set[str]] = {}
    for s in samples:
        clips.setdefault(s.cluster_id, set()).add(s.clip_id)
    held: set[str] = set()
    kind, notes = val_split, []
    if val_split == "identity":
        if len(clips) >= 2:
            order = sorted(clips, key=lambda c: _rank(seed, f"cluster{c}"))
            for c in order[: min(len(order) - 1, math.ceil(val_fraction * len(order)))]:
                held |= clips[c]
        else:
            notes.append("val_split=identity needs 2 identity clusters; holding out clips instead")
            kind = "clip"
    if kind == "clip":
        for members in clips.values():
            if len(members) >= 2:
                order = sorted(members, key=lambda c: _rank(seed, c))
                held |= set(order[: min(len(order) - 1, math.ceil(val_fraction * len(order)))])
    if held:
        candidates = [i for i, s in enumerate(samples) if s.clip_id in held]
        train = [i for i, s in enumerate(samples) if s.clip_id not in held]
    else:
        kind = "tail"
        notes.append("no identity cluster has 2 clips: validating on the last window of every clip, "
                     "which is not trained on")
        last: dict[str, int] = {}
        for i, s in enumerate(samples):
            if s.clip_id not in last or s.start > samples[last[s.clip_id]].start:
                last[s.clip_id] = i
        candidates = sorted(last.values())
        train = [i for i, s in enumerate(samples) if i not in last.values()
                 and s.start + (s.num_frames - 1) / s.fps < samples[last[s.clip_id]].start]
    if not train:
        raise ConfigError("no training window left beside the validation windows",
                          "curate more or longer clips, or lower num_frames")
    return Split(train, _spread(samples, candidates, val_samples), kind, notes)


def _spread(samples: Sequence[Sample], candidates: list[int], count: int) -> list[int]:
    """Up to ``count`` windows, taken in turn from each clip (people and clips before more windows of one)."""
    by_clip: dict[str, list[int]] = {}
    for i in candidates:
        by_clip.setdefault(samples[i].clip_id, []).append(i)
    queues = [sorted(v, key=lambda i: samples[i].start) for _, v in sorted(by_clip.items())]
    chosen: list[int] = []
    while len(chosen) < count and any(queues):
        for q in queues:
            if q and len(chosen) < count:
                chosen.append(q.pop(len(q) // 2))
    return sorted(chosen)


def other_identity(samples: Sequence[Sample], row: int, pool: Sequence[int] | None = None) -> int | None:
    """The window of another identity whose first reference face is closest in yaw to ``row``'s."""
    me = samples[row]
    pool = range(len(samples)) if pool is None else pool
    others = [i for i in pool if samples[i].cluster_id != me.cluster_id]
    if not others:
        return None
    yaw = me.references[0].yaw
    return min(others, key=lambda i: (abs(samples[i].references[0].yaw - yaw), i))


def shuffled_faces(samples: Sequence[Sample], rows: Sequence[int], seed: int, step: int) -> list[int]:
    """``face_shuffle``: for each row, the window of a random other identity (drawn from seed, step, row)."""
    out = []
    for j, row in enumerate(rows):
        others = [i for i, s in enumerate(samples) if s.cluster_id != samples[row].cluster_id]
        if not others:
            raise ConfigError("face_shuffle needs at least 2 identities", "curate clips of 2 or more people")
        out.append(random.Random(f"{seed}:{step}:{j}:{row}").choice(others))
    return out


def bootstrap_interval(values_by_group: dict[Any, list[float]], *, seed: int = 0,
                       resamples: int = BOOTSTRAP) -> tuple[float, float]:
    """95% interval of the mean of group means, groups resampled with replacement."""
    means = np.array([np.mean(v) for v in values_by_group.values()], np.float64)
    if len(means) == 1:
        return float(means[0]), float(means[0])
    rng = np.random.default_rng(seed)
    draws = means[rng.integers(0, len(means), size=(resamples, len(means)))].mean(axis=1)
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


class Validator:
    """The validation metrics of a module on the held-out windows (see the module docstring)."""

    def __init__(self, samples: Sequence[Sample], split: Split, batch: Callable[..., Any], *, draws: int,
                 seed: int, flow: Any, identity_metrics: bool = True) -> None:
        from lfa.bench.metrics import YAW_EDGES, bucket_labels, bucket_of

        self.samples, self.rows, self.batch, self.draws = samples, split.val, batch, draws
        self.seed, self.flow = seed + 1, flow
        self.other = [other_identity(samples, r) for r in self.rows] if identity_metrics else None
        if self.other is not None and any(o is None for o in self.other):
            self.other = None
        labels = bucket_labels(YAW_EDGES)  # the benchmark's |yaw| buckets, by the window's mean yaw
        self.buckets = [f"yaw{labels[b]}" for b in bucket_of([samples[r].window_yaw for r in self.rows], YAW_EDGES)]

    @property
    def identity_metrics(self) -> bool:
        return self.other is not None

    @torch.no_grad()
    def __call__(self, module: torch.nn.Module) -> dict[str, float]:
        was_training = module.training
        module.eval()
        own_losses, other_losses, sensitivity = [], [], []
        by_person: dict[int, list[float]] = {}
        by_bucket: dict[str, list[float]] = {}
        for j, row in enumerate(self.rows):
            for draw in range(self.draws):
                kwargs = dict(step=draw, first_row=row, seed=self.seed, flow=self.flow, train=False)
                own = module(self.batch([row], **kwargs))
                own_losses.append(float(own.losses["flow"]))
                if self.other is None:
                    continue
                other = module(self.batch([row], face_rows=[self.other[j]], **kwargs))
                other_losses.append(float(other.losses["flow"]))
                gain = other_losses[-1] - own_losses[-1]
                by_person.setdefault(self.samples[row].cluster_id, []).append(gain)
                by_bucket.setdefault(self.buckets[j], []).append(gain)
                diff = (own.prediction.float() - other.prediction.float()).abs().mean()
                sensitivity.append(float(diff / own.prediction.float().abs().mean().clamp_min(1e-12)))
        module.train(was_training)
        record: dict[str, float] = {"val_loss": float(np.mean(own_losses))}
        if self.other is not None:
            all_gains = [g for v in by_person.values() for g in v]
            lo, hi = bootstrap_interval(by_person, seed=self.seed)
            record.update(val_loss_other_face=float(np.mean(other_losses)), val_id_gain=float(np.mean(all_gains)),
                          val_id_gain_lo=lo, val_id_gain_hi=hi, val_id_sensitivity=float(np.mean(sensitivity)),
                          val_people=float(len(by_person)))
            record.update({f"val_id_gain_{b}": float(np.mean(v)) for b, v in sorted(by_bucket.items())})
        return record
