"""Safe loading of state dicts from ``.safetensors`` and PyTorch checkpoint files.

PyTorch files are only ever opened with ``torch.load(..., weights_only=True)``: a checkpoint
that needs arbitrary unpickling (custom classes, functions) is refused rather than executed.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from lfa.errors import ModelLoadError

TORCH_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
# Keys under which training scripts commonly nest the weights.
CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "backbone")
_SHOW = 5  # how many offending keys an error message lists


def _first(keys: list[str]) -> str:
    more = f" (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
    return ", ".join(keys[:_SHOW]) + more


def _read_raw(path: Path) -> object:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own error types
            raise ModelLoadError(
                f"{path}: not a readable safetensors file ({exc})",
                "re-download the file; it is truncated or corrupt",
            ) from exc
    if suffix in TORCH_SUFFIXES:
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
            what = f" ({found.group(1)})" if found else ""
            raise ModelLoadError(
                f"{path}: contains pickled objects that are not tensors{what}; refused by "
                "weights_only loading",
                "use a plain state dict of tensors (or a .safetensors file) from the official release",
            ) from exc
        except Exception as exc:
            raise ModelLoadError(
                f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})",
                "re-download the file; it is truncated or corrupt",
            ) from exc
    raise ModelLoadError(
        f"{path}: unsupported weights file type {suffix!r}",
        f"use a .safetensors or one of {', '.join(TORCH_SUFFIXES)} file",
    )


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a flat ``{name: tensor}`` dict from ``path`` on the CPU.

    Nested containers (``state_dict``, ``model_state_dict``, ``model``, ``backbone``) are
    unwrapped and leading ``module.`` prefixes (DataParallel) are stripped.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"{p}: weights file not found", "download the model or fix the path")
    obj = _read_raw(p)
    while isinstance(obj, Mapping):
        inner = next((obj[k] for k in CONTAINER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise ModelLoadError(
            f"{p}: holds a {type(obj).__name__}, not a state dict",
            "use a file that stores a state dict (name -> tensor)",
        )
    out: dict[str, torch.Tensor] = {}
    bad: list[str] = []
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            bad.append(str(key))
            continue
        name = str(key)
        while name.startswith("module."):
            name = name[len("module.") :]
        out[name] = value
    if bad:
        raise ModelLoadError(
            f"{p}: state dict has non-tensor entries: {_first(bad)}",
            "use a plain state dict of tensors from the official release",
        )
    if not out:
        raise ModelLoadError(f"{p}: state dict is empty", "re-download the file")
    return out


def load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], path: str | os.PathLike[str],
                what: str) -> None:
    """``model.load_state_dict(state, strict=True)`` with a readable :class:`ModelLoadError`.

    Missing ``num_batches_tracked`` buffers (absent from some old or converted checkpoints,
    and unused at inference) are filled with zero; every other key must match exactly.
    """
    expected = model.state_dict()
    state = dict(state)
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    problems = []
    if missing:
        problems.append(f"missing keys: {_first(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_first(unexpected)}")
    mismatched = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if mismatched:
        problems.append(f"shape mismatch: {_first(mismatched)}")
    if problems:
        raise ModelLoadError(
            f"{path}: does not match {what}; " + "; ".join(problems),
            f"use the official {what} weights",
        )
    model.load_state_dict(state, strict=True)
