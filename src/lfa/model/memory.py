"""Activation memory a forward keeps for backward, counted with ``torch.autograd.graph.saved_tensors_hooks``.

Every tensor autograd saves is counted once per storage (views of one storage count once, at the
storage's size); parameters and buffers of the given modules are weights, not activations, and are
skipped. Works on the meta device, so real model sizes can be counted without memory. With
``flash_attention`` (for meta/CPU counts standing in for a GPU), ``scaled_dot_product_attention``
counts what a flash kernel saves — query, key, value, output and the fp32 log-sum-exp — instead of
the (B, H, S, S) matrices the math fallback would keep.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn


def saved_activation_bytes(fn: Callable[[], object], modules: Iterable[nn.Module] = (), *,
                           flash_attention: bool = False) -> int:
    """Bytes of the distinct storages autograd saves while ``fn()`` runs (weights of ``modules`` excluded)."""
    weights = {_key(t) for m in modules for t in (*m.parameters(), *m.buffers())}
    seen: dict[object, int] = {}
    keep: list[torch.Tensor] = []  # saved tensors stay alive, so storage keys stay unique while counting

    def count(t: torch.Tensor) -> torch.Tensor:
        key = _key(t)
        if key not in weights and key not in seen:
            seen[key] = t.untyped_storage().nbytes()
            keep.append(t)
        return t

    attention = _flash_counting(count) if flash_attention else contextlib.nullcontext()
    with attention, torch.autograd.graph.saved_tensors_hooks(count, lambda t: t):
        fn()
    return sum(seen.values())


@contextlib.contextmanager
def _flash_counting(count: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    original = F.scaled_dot_product_attention

    def sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        with torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):  # the math path's own: uncounted
            out = original(query, key, value, *args, **kwargs)
        if torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value)):
            for t in (query, key, value, out):
                count(t)
            count(torch.empty(query.shape[:-1], dtype=torch.float32, device=query.device))  # log-sum-exp
        return out

    torch.nn.functional.scaled_dot_product_attention = sdpa
    try:
        yield
    finally:
        torch.nn.functional.scaled_dot_product_attention = original


def _key(t: torch.Tensor) -> object:
    return t.untyped_storage()._cdata
