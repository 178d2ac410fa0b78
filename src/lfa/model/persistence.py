"""Saving and loading an identity adapter: one config JSON and one safetensors file (adapter + LoRA)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from lfa.errors import ModelLoadError
from lfa.model.config import AdapterConfig, backbone_dims
from lfa.model.lora import load_lora_state_dict, lora_state_dict

if TYPE_CHECKING:
    from lfa.model.encoders import FaceEncoder

CONFIG_NAME = "lfa_adapter_config.json"
WEIGHTS_NAME = "lfa_adapter.safetensors"
FORMAT = "lfa-identity-adapter"
FORMAT_VERSION = 2
LORA_PREFIX = "lora."


def full_state_dict(adapter: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter's ``state_dict()`` (its trainable weights only) plus the backbone LoRA under ``lora.``."""
    state = dict(adapter.state_dict())
    if adapter.config.lora_rank:
        state.update({LORA_PREFIX + k: v for k, v in lora_state_dict(adapter.transformer).items()})
    return state


def save_pretrained(adapter: nn.Module, path: str | os.PathLike[str],
                    state: Mapping[str, torch.Tensor] | None = None) -> Path:
    """``state``: :func:`full_state_dict` gathered elsewhere (a sharded adapter's); default: the adapter's own."""
    from safetensors.torch import save_file

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "backbone": backbone_dims(adapter.transformer.config),
            "config": adapter.config.to_dict()}
    (out / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    state = full_state_dict(adapter) if state is None else state
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    save_file(tensors, str(out / WEIGHTS_NAME), metadata={"format": FORMAT})
    return out


def from_pretrained(cls: type[nn.Module], path: str | os.PathLike[str], transformer: nn.Module, *,
                    encoders: Sequence[FaceEncoder] | Mapping[str, FaceEncoder] | None = None,
                    dtype: torch.dtype = torch.float32) -> nn.Module:
    from lfa.face.nets.weights import load_state_dict_file, load_strict

    folder = Path(path)
    meta_path = folder / CONFIG_NAME
    if not meta_path.is_file():
        raise ModelLoadError(f"{folder}: no {CONFIG_NAME}", "pass a folder written by IdentityAdapter.save_pretrained")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{meta_path}: not valid JSON ({exc})", "re-save the adapter") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
        raise ModelLoadError(f"{meta_path}: not an lfa identity adapter (format {FORMAT} v{FORMAT_VERSION})",
                             "pass a folder written by IdentityAdapter.save_pretrained (this version)")
    config = AdapterConfig.from_dict(meta["config"])
    if meta.get("backbone") != backbone_dims(transformer.config):
        raise ModelLoadError(f"{folder}: adapter was trained for backbone {meta.get('backbone')}, "
                             f"this transformer is {backbone_dims(transformer.config)}",
                             "load it onto the Wan transformer it was trained with")
    adapter = cls.attach(transformer, config, encoders=encoders, dtype=dtype)
    state = load_state_dict_file(folder / WEIGHTS_NAME)
    lora = {k[len(LORA_PREFIX):]: v for k, v in state.items() if k.startswith(LORA_PREFIX)}
    own = {k: v for k, v in state.items() if not k.startswith(LORA_PREFIX)}
    load_strict(adapter, own, folder / WEIGHTS_NAME, "lfa identity adapter")
    if config.lora_rank:
        load_lora_state_dict(transformer, lora)
    elif lora:
        raise ModelLoadError(f"{folder}: holds LoRA weights but its config has lora_rank=0", "re-save the adapter")
    return adapter
