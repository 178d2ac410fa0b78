"""The trainer's FSDP2 side (``--set parallel=fsdp``): what DDP did for it and FSDP does not.

:func:`lfa.model.sharding.shard` shards the training module; here: averaging the gradients of what
stays replicated (the aligner), clipping by the norm over every shard, sharded checkpoints through
``torch.distributed.checkpoint`` (one file per rank, written in parallel) and full tensors gathered
for the adapter files ``lfa generate`` loads.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.tensor import DTensor

SHARDED = "sharded"


def replicated_trainable(module: nn.Module) -> list[nn.Parameter]:
    """Trainable parameters no FSDP unit holds: every rank has all of them."""
    return [p for p in module.parameters() if p.requires_grad and not isinstance(p, DTensor)]


def average_replicated_gradients(params: Iterable[nn.Parameter]) -> None:
    """All-reduce (mean) the gradients of replicated parameters, as DDP would; a missing gradient counts as 0."""
    world = dist.get_world_size()
    grads = []
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        grads.append(p.grad)
    if not grads or world == 1:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset: offset + g.numel()].view_as(g))
        offset += g.numel()


def clip_grad_norm_(params: Iterable[nn.Parameter], max_norm: float) -> float:
    """``torch.nn.utils.clip_grad_norm_`` over sharded and replicated gradients: the total 2-norm of the whole
    (unsharded) gradient, every rank scaling its part by the same factor. Returns the norm."""
    sharded, replicated = [], []
    for p in params:
        if p.grad is not None:
            (sharded if isinstance(p.grad, DTensor) else replicated).append(p.grad)
    squares = torch.zeros((), dtype=torch.float64)
    for g in sharded:
        squares += g.to_local().detach().double().pow(2).sum().cpu()
    dist.all_reduce(squares)
    for g in replicated:
        squares += g.detach().double().pow(2).sum().cpu()
    norm = float(squares.sqrt())
    coef = min(1.0, max_norm / (norm + 1e-6))
    if coef < 1.0:
        for g in sharded + replicated:
            g.mul_(coef)
    return norm


def set_gradient_sync(units: Iterable[nn.Module], sync: bool) -> None:
    """Off for the micro-steps of gradient accumulation but the last (what ``no_sync`` is under DDP)."""
    for unit in units:
        unit.set_requires_gradient_sync(sync)


def full(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor on every rank (a collective for a DTensor: call on every rank, in the same order)."""
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def gathered(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with every DTensor gathered, in key order (a collective)."""
    return {k: full(v).detach().cpu() for k, v in state.items()}


def _state(module: nn.Module, optimizer: torch.optim.Optimizer, ema: Any) -> dict[str, Any]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    options = StateDictOptions(ignore_frozen_params=True)
    state = {"model": get_model_state_dict(module, options=options),
             "optimizer": get_optimizer_state_dict(module, optimizer, options=options)}
    if ema is not None:
        state["ema"] = ema.state_dict()
    return state


def save_sharded(folder: Path, module: nn.Module, optimizer: torch.optim.Optimizer, ema: Any) -> None:
    """Trainable weights, optimiser states and EMA shadows: each rank writes its own shard file."""
    import torch.distributed.checkpoint as dcp

    dcp.save(_state(module, optimizer, ema), checkpoint_id=str(folder / SHARDED))


def load_sharded(folder: Path, module: nn.Module, optimizer: torch.optim.Optimizer, ema: Any) -> None:
    """Read :func:`save_sharded`'s files back into the sharded module, optimiser and EMA (any process count:
    DCP reshards)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

    state = _state(module, optimizer, ema)
    dcp.load(state, checkpoint_id=str(folder / SHARDED))
    options = StateDictOptions(ignore_frozen_params=True, strict=False)
    set_model_state_dict(module, state["model"], options=options)
    set_optimizer_state_dict(module, optimizer, state["optimizer"], options=options)
    # the EMA's shadows were loaded in place
