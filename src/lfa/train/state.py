"""Deterministic data order, per-sample randomness, EMA and checkpoints of a training run.

Everything random in a step is drawn from generators seeded by (seed, step, global row), so a step
computes the same thing however the global batch is split over processes, and a resumed run continues
exactly (the checkpoint also keeps the RNG states, optimizer, scheduler, EMA and data position).
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lfa.errors import ConfigError

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


class BatchOrder:
    """Global batches of sample indices, one bucket per batch, reshuffled every epoch from the seed."""

    def __init__(self, buckets: Sequence[tuple[int, int]], batch_size: int, seed: int,
                 rows: Sequence[int] | None = None) -> None:
        """``buckets[i]`` is the bucket of sample ``rows[i]`` (default: of sample ``i``)."""
        self.groups: dict[tuple[int, int], list[int]] = {}
        for i, bucket in enumerate(buckets):
            self.groups.setdefault(tuple(bucket), []).append(i if rows is None else int(rows[i]))
        self.batch_size, self.seed = batch_size, seed
        self.per_epoch = sum(len(g) // batch_size for g in self.groups.values())
        if self.per_epoch == 0:
            biggest = max(len(g) for g in self.groups.values())
            raise ConfigError(f"batch_size {batch_size} is larger than the {biggest} samples of the largest bucket",
                              f"set batch_size to {biggest} or less, or add data")

    def epoch(self, epoch: int) -> list[list[int]]:
        gen = torch.Generator().manual_seed(_seed(self.seed, epoch, 1))
        batches: list[list[int]] = []
        for key in sorted(self.groups):
            group = self.groups[key]
            perm = [group[int(i)] for i in torch.randperm(len(group), generator=gen)]
            batches += [perm[j: j + self.batch_size] for j in range(0, len(perm) - self.batch_size + 1,
                                                                     self.batch_size)]
        return [batches[int(i)] for i in torch.randperm(len(batches), generator=gen)]

    def position(self, step: int) -> tuple[int, int]:
        """(epoch, index in epoch) of optimizer step ``step`` (1-based)."""
        return divmod(step - 1, self.per_epoch)

    def batch(self, step: int) -> list[int]:
        epoch, index = self.position(step)
        return self.epoch(epoch)[index]


def row_generator(seed: int, step: int, row: int) -> torch.Generator:
    """The generator of one row of one step's global batch (noise, noise level, dropout)."""
    return torch.Generator().manual_seed(_seed(seed, step, row, 7))


class EMA:
    """Exponential moving average of the trainable parameters (fp32 shadows)."""

    def __init__(self, named: list[tuple[str, torch.nn.Parameter]], decay: float) -> None:
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.decay = decay
        self.shadow = [p.detach().float().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        for s, p in zip(self.shadow, self.params):
            s.lerp_(p.detach().float(), 1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: s.contiguous() for n, s in zip(self.names, self.shadow)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = sorted(set(self.names) - set(state))
        if missing:
            raise ConfigError(f"EMA state lacks {missing[:3]}", "resume with the config the run was started with")
        self.shadow = [state[n].float().clone() for n in self.names]

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the live weights and the averages (call twice to restore)."""
        for s, p in zip(self.shadow, self.params):
            tmp = p.detach().float().clone()
            p.copy_(s.to(p.dtype))
            s.copy_(tmp)


def rng_state() -> dict[str, Any]:
    """Tensors only, so that ``torch.load(weights_only=True)`` reads it back."""
    return {"torch": torch.get_rng_state(), "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
            "python": torch.tensor(random.getstate()[1], dtype=torch.int64)}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = list(np.random.get_state())
    np_state[1] = state["numpy"].numpy().astype(np.uint32)
    np.random.set_state(tuple(np_state))
    py = random.getstate()
    random.setstate((py[0], tuple(int(v) for v in state["python"].tolist()), py[2]))


def checkpoints(out: Path) -> list[tuple[int, Path]]:
    found = [(int(m.group(1)), p) for p in out.glob("checkpoint-*") if (m := CHECKPOINT.match(p.name))
             and (p / "state.json").is_file()]
    return sorted(found)


def latest_checkpoint(out: Path) -> Path | None:
    found = checkpoints(out)
    return found[-1][1] if found else None


def prune_checkpoints(out: Path, keep: int) -> None:
    if keep > 0:
        for _, path in checkpoints(out)[:-keep]:
            shutil.rmtree(path, ignore_errors=True)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
