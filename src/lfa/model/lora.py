"""Backbone LoRA through peft, targeted by regex so it can never match the adapter's own layers."""

from __future__ import annotations

import torch
from torch import nn

from lfa.errors import ModelLoadError

ADAPTER_NAME = "lfa_identity"

_TARGET_PATTERNS = {
    "attn1": r"attn1\.(to_q|to_k|to_v|to_out\.0)",
    "attn2": r"attn2\.(to_q|to_k|to_v|to_out\.0)",
    "ffn": r"ffn\.net\.(0\.proj|2)",
}


def target_regex(targets: tuple[str, ...]) -> str:
    """peft ``target_modules`` (full-match regex) over ``blocks.N.<target>`` of the Wan transformer."""
    return r"blocks\.\d+\.(" + "|".join(_TARGET_PATTERNS[t] for t in targets) + ")"


def add_lora(transformer: nn.Module, rank: int, alpha: float | None, targets: tuple[str, ...]) -> None:
    from peft import LoraConfig

    config = LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=target_regex(targets), init_lora_weights=True)
    transformer.add_adapter(config, adapter_name=ADAPTER_NAME)


def lora_parameters(transformer: nn.Module) -> list[nn.Parameter]:
    return [p for n, p in transformer.named_parameters() if f".{ADAPTER_NAME}." in n]


def lora_state_dict(transformer: nn.Module) -> dict[str, torch.Tensor]:
    from peft import get_peft_model_state_dict

    return get_peft_model_state_dict(transformer, adapter_name=ADAPTER_NAME)


def load_lora_state_dict(transformer: nn.Module, state: dict[str, torch.Tensor]) -> None:
    from peft import set_peft_model_state_dict

    expected = set(lora_state_dict(transformer))
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ModelLoadError(f"LoRA weights do not match the backbone "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})",
                             "load them with the adapter config they were saved with")
    set_peft_model_state_dict(transformer, state, adapter_name=ADAPTER_NAME)


def remove_lora(transformer: nn.Module) -> None:
    loaded = getattr(transformer, "_hf_peft_config_loaded", False)
    if loaded and ADAPTER_NAME in getattr(transformer, "peft_config", {}):
        transformer.delete_adapters(ADAPTER_NAME)
