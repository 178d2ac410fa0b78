"""Checkpoints and adapter files of a training run.

``checkpoint-<step>/`` holds the adapter files (gathered under FSDP, so ``lfa generate`` loads them; a
Wan2.2 expert's under ``adapter/<its component>/``), the RNG state of every rank, ``scheduler.pt``,
``state.json`` (step, data position, process count, ``parallel``, expert) and either the whole
optimiser and EMA (DDP: ``optimizer.pt``, ``ema.safetensors``, tensors only) or every rank's shard of
them (FSDP: ``sharded/``). It is written to a ``.partial`` folder and renamed, so a crash never leaves
half a checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from lfa.errors import ConfigError
from lfa.train import fsdp
from lfa.train.config import TrainConfig
from lfa.train.experts import adapter_folder
from lfa.train.state import EMA, BatchOrder, latest_checkpoint, prune_checkpoints, rng_state, set_rng_state, write_json

LORA_DIFFUSERS = "pytorch_lora_weights.safetensors"


def save_adapter(adapter: Any, folder: Path, config: TrainConfig, state: dict[str, torch.Tensor] | None = None) -> Path:
    """``save_pretrained`` plus, with LoRA, the diffusers ``load_lora_weights`` layout for Wan pipelines,
    plus the data settings generation defaults to (``lfa_training.json``). ``state``: the adapter's
    ``adapter_state_dict()`` gathered from FSDP's shards."""
    from diffusers import WanPipeline

    from lfa.generate.pipeline import TRAINING_META
    from lfa.model.lora import ADAPTER_NAME, lora_state_dict
    from lfa.model.persistence import LORA_PREFIX

    adapter.save_pretrained(folder, state)
    write_json(folder / TRAINING_META, config.generation_defaults())
    if adapter.config.lora_rank:
        lora = lora_state_dict(adapter.transformer) if state is None else \
            {k[len(LORA_PREFIX):]: v for k, v in state.items() if k.startswith(LORA_PREFIX)}
        state = {k: v.detach().cpu().contiguous() for k, v in lora.items()}
        peft_config = adapter.transformer.peft_config[ADAPTER_NAME].to_dict()
        metadata = {k: (sorted(v) if isinstance(v, set) else v) for k, v in peft_config.items()}
        WanPipeline.save_lora_weights(folder, transformer_lora_layers=state, weight_name=LORA_DIFFUSERS,
                                      transformer_lora_adapter_metadata=metadata)
    return folder


def save_final(adapter: Any, folder: Path, config: TrainConfig, main: bool, sharded: bool) -> None:
    state = fsdp.gathered(adapter.adapter_state_dict()) if sharded else None  # every rank gathers
    if main:
        save_adapter(adapter, folder, config, state)


def save_checkpoint(out: Path, step: int, order: BatchOrder, module: Any, optimizer: Any, scheduler: Any,
                ema: EMA | None, accelerator: Any, config: TrainConfig, cid: str, *, sharded: bool = False,
                expert: str | None = None) -> None:
    """``checkpoint-<step>/``: the adapter files (gathered under FSDP, so ``lfa generate`` loads them; a Wan2.2
    expert's under ``adapter/<its component>/``), RNG states per rank, and either the whole optimiser/EMA
    (DDP, main process) or every rank's shard of the trainable weights, optimiser and EMA (FSDP: ``sharded/``,
    torch.distributed.checkpoint); ``state.json`` says the step, data position and expert."""
    from safetensors.torch import save_file

    folder = out / f"checkpoint-{step}"
    tmp = out / f".checkpoint-{step}.partial"
    rank = accelerator.process_index
    adapter_dir = adapter_folder(tmp / "adapter", expert)
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(rng_state(), tmp / f"rng-{rank}.pt")
    adapter = module.adapter
    if sharded:
        fsdp.save_sharded(tmp, module, optimizer, ema)
        save_final(adapter, adapter_dir, config, accelerator.is_main_process, True)
    if accelerator.is_main_process:
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    if accelerator.is_main_process and not sharded:
        save_adapter(adapter, adapter_dir, config)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        if ema is not None:
            save_file(ema.state_dict(), str(tmp / "ema.safetensors"))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        epoch, index = order.position(step + 1)
        write_json(tmp / "state.json", {"step": step, "epoch": epoch, "next_batch": index, "cache_id": cid,
                                        "processes": accelerator.num_processes, "parallel": config.parallel,
                                        "expert": expert, "config": config.to_dict()})
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        prune_checkpoints(out, config.keep_checkpoints)
    accelerator.wait_for_everyone()


def checkpoint_to_resume(out: Path, resume: str | None) -> tuple[Path, dict[str, Any]] | None:
    """(folder, state) of the checkpoint ``--resume`` names, or None (nothing saved yet: start over)."""
    if not resume:
        return None
    folder = latest_checkpoint(out) if resume == "latest" else Path(resume)
    if folder is None:
        return None
    if not (folder / "state.json").is_file():
        raise ConfigError(f"{folder}: not a checkpoint (no state.json)", "pass --resume latest or a checkpoint-N folder")
    return folder, json.loads((folder / "state.json").read_text())


def resume_from(checkpoint: tuple[Path, dict[str, Any]], module: Any, optimizer: Any, scheduler: Any, ema: EMA | None,
            rank: int, *, sharded: bool = False, expert: str | None = None) -> int:
    from safetensors.torch import load_file

    from lfa.face.nets.weights import load_strict
    from lfa.model.lora import load_lora_state_dict
    from lfa.model.persistence import LORA_PREFIX, WEIGHTS_NAME

    folder, state = checkpoint
    written = state.get("parallel", "ddp")
    if written != ("fsdp" if sharded else "ddp"):
        raise ConfigError(f"{folder} was written with parallel={written}", f"resume with --set parallel={written}")
    adapter = module.adapter
    if sharded:
        fsdp.load_sharded(folder, module, optimizer, ema)
        scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
        rng = folder / f"rng-{rank}.pt"
        if rng.is_file():
            set_rng_state(torch.load(rng, weights_only=True))
        return int(state["step"])
    weights_file = adapter_folder(folder / "adapter", expert) / WEIGHTS_NAME
    weights = load_file(str(weights_file))
    load_strict(adapter, {k: v for k, v in weights.items() if not k.startswith(LORA_PREFIX)},
                weights_file, "lfa identity adapter")
    if adapter.config.lora_rank:
        load_lora_state_dict(adapter.transformer, {k[len(LORA_PREFIX):]: v for k, v in weights.items()
                                                   if k.startswith(LORA_PREFIX)})
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
    if ema is not None:
        ema.load_state_dict(load_file(str(folder / "ema.safetensors")))
    rng = folder / f"rng-{rank}.pt"
    if rng.is_file():
        set_rng_state(torch.load(rng, weights_only=True))
    return int(state["step"])
