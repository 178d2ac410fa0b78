"""How lfa's training module is sharded under FSDP2 (``torch.distributed.fsdp.fully_shard``).

Every unit that runs through its own ``forward`` gets its own ``fully_shard``: each Wan block (with
its LoRA), the adapter's projectors, gates and face key/value projections, then the transformer for
what is left of it (patch embedding, condition embedder, output head). The adapter itself is not a
unit: lfa calls its parts directly (the face processors call ``face_k``/``face_v``, the trainer calls
the aligner's InfoNCE), so a hook on the adapter's ``forward`` would miss them. What no unit holds
(the aligner, trained encoders) stays whole on every rank; its gradients are averaged by the trainer.

FSDP2 shards each parameter on dim 0 as ``torch.chunk`` does: every rank keeps ``ceil(d0 / N)`` rows
of storage (the last ranks' padded), which is what :mod:`lfa.train.memory_plan` counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn


def sharding_units(module: nn.Module) -> list[nn.Module]:
    """The modules that get ``fully_shard``, innermost first (``module``: an ``IdentityTrainingModule``)."""
    adapter, transformer = module.adapter, module.transformer
    units: list[nn.Module] = list(transformer.blocks)
    units += list(adapter.projectors.values())
    if adapter.gates is not None:
        units += list(adapter.gates.values())
    for kv in adapter.face_attention.values():
        units += [kv.face_k, kv.face_v]
    units.append(transformer)
    return units


def sharded_parameters(module: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """(name, parameter) of every parameter a unit holds (the rest is replicated)."""
    inside = {id(p) for unit in sharding_units(module) for p in unit.parameters()}
    seen: set[int] = set()
    for name, p in module.named_parameters():
        if id(p) in inside and id(p) not in seen:
            seen.add(id(p))
            yield name, p


def shard_rows(shape: torch.Size | tuple[int, ...], world: int, rank: int | None = None) -> int:
    """Elements one rank stores of a parameter of ``shape`` sharded on dim 0 over ``world`` ranks: the padded
    ``ceil(d0 / N)`` rows FSDP keeps for the parameter and its gradient on every rank, or, with ``rank``, the
    rows that rank really owns (what ``zeros_like`` of its shard, an optimiser state, holds)."""
    if not shape:
        return 1
    rest, rows = math.prod(shape[1:]), math.ceil(shape[0] / world)
    if rank is not None:
        rows = max(0, min(rows, shape[0] - rank * rows))
    return rows * rest


def shard(module: nn.Module, *, cpu_offload: bool = False, mesh=None) -> list[nn.Module]:
    """``fully_shard`` every unit of ``module`` in place (over the default process group, or ``mesh``);
    returns the units. Call before building the optimiser: it must see the sharded parameters."""
    from torch.distributed.fsdp import CPUOffloadPolicy, OffloadPolicy, fully_shard

    units = sharding_units(module)
    offload = CPUOffloadPolicy(pin_memory=torch.cuda.is_available()) if cpu_offload else OffloadPolicy()
    for unit in units:
        fully_shard(unit, mesh=mesh, offload_policy=offload, reshard_after_forward=True)
    return units
