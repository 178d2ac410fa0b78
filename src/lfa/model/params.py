"""Optimiser parameter groups: by module family, with the parameters that take no weight decay apart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

NO_DECAY_NAMES = ("dictionary", "logit_scale")  # the aligner's pose-shared dictionary and temperature
NORMS = (nn.LayerNorm, nn.RMSNorm, nn.GroupNorm)


def no_decay_ids(module: nn.Module) -> set[int]:
    """Parameters that take no weight decay: biases, norms, the aligner's dictionary and temperature."""
    ids = set()
    for _, sub in module.named_modules():
        if isinstance(sub, NORMS):
            ids.update(id(p) for p in sub.parameters(recurse=False))
    for name, p in module.named_parameters():
        if name.endswith("bias") or name.rsplit(".", 1)[-1] in NO_DECAY_NAMES:
            ids.add(id(p))
    return ids


def parameter_groups(families: Mapping[str, nn.Module], lora: list[nn.Parameter]) -> list[dict[str, Any]]:
    """``[{"name": family, "params": [...]}, {"name": family + ".no_decay", ..., "weight_decay": 0.0}, ...]``.

    Decay groups carry no ``weight_decay`` key, so the optimiser's own value applies to them.
    """
    groups: list[dict[str, Any]] = []
    for name, module in families.items():
        skip = no_decay_ids(module)
        params = [p for p in module.parameters() if p.requires_grad]
        groups.append({"name": name, "params": [p for p in params if id(p) not in skip]})
        groups.append({"name": f"{name}.no_decay", "params": [p for p in params if id(p) in skip],
                       "weight_decay": 0.0})
    groups.append({"name": "lora", "params": list(lora)})
    return [g for g in groups if g["params"]]
