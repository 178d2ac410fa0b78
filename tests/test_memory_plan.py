"""The memory plan (lfa.train.memory_plan, `lfa model plan`): its trends on real presets, and its exactness on a
tiny training module sharded by lfa.model.sharding over 2 gloo processes after one real AdamW step."""

from __future__ import annotations

import json
from pathlib import Path
import os
import socket

import pytest
import torch
from typer.testing import CliRunner

from lfa.cli import app
from lfa.errors import ConfigError
from lfa.model.toy import toy_backbone_config
from lfa.train.config import TrainConfig
from lfa.train.memory_plan import (GIB, MemoryPlan, _shapes, check_fits, format_plan, meta_batch, plan_training,
                                   training_module, training_step_forward)

PRESET = "wan2.1-t2v-1.3b"
TINY_ADAPTER = dict(lora_rank=4, identity_dim=8, semantic_dim=12, num_queries=4, projector_dim=16, projector_depth=1,
                    projector_heads=2, dictionary_size=32, pose_embed_dim=8, face_kv_rank=4, detail_size=32)


def _plan(*args: str) -> dict:
    result = CliRunner().invoke(app, ["model", "plan", "--preset", PRESET, "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_cli_json_and_trends():
    sizes = ("--height", "240", "--width", "416", "--num-frames", "21")  # small latents: fast meta counts
    plans = {n: _plan(*sizes, "--gpus", str(n), "--set", f"batch_size={n}") for n in (2, 4, 8)}
    for plan in plans.values():
        assert plan["ddp"]["per_gpu_gib"] > 0 and plan["fsdp"]["per_gpu_gib"] > 0
        assert set(plan["fsdp"]["breakdown_gib"]) == {"weights", "gradients", "optimizer", "activations", "gathered"}
    fsdp = [plans[n]["fsdp"]["per_gpu"] for n in (2, 4, 8)]
    assert fsdp[0] > fsdp[1] > fsdp[2], fsdp
    assert len({plans[n]["ddp"]["per_gpu"] for n in (2, 4, 8)}) == 1  # micro batch 1 each time
    ckpt = _plan(*sizes, "--gpus", "2", "--set", "batch_size=2", "--set", "gradient_checkpointing=true")
    assert ckpt["ddp"]["activations"] < plans[2]["ddp"]["activations"]
    offload = _plan(*sizes, "--gpus", "2", "--set", "batch_size=2", "--set", "parallel=fsdp",
                    "--set", "fsdp_cpu_offload=true")
    assert offload["fsdp"]["per_gpu"] < plans[2]["fsdp"]["per_gpu"] and offload["fsdp"]["cpu"] > 0
    assert offload["per_gpu_gib"] == offload["fsdp"]["per_gpu_gib"]  # parallel=fsdp: the run's own figure
    assert offload["cache_phase"]["per_gpu_gib"] > 20  # UMT5-XXL alone is 5.7 B parameters


def test_cli_errors_and_text():
    runner = CliRunner()
    bad = runner.invoke(app, ["model", "plan", "--preset", PRESET, "--gpus", "8"])
    assert isinstance(bad.exception, ConfigError) and "batch_size=8" in bad.exception.fix
    both = runner.invoke(app, ["model", "plan"])
    assert isinstance(both.exception, ConfigError)
    text = runner.invoke(app, ["model", "plan", "--preset", PRESET, "--height", "240", "--width", "416",
                               "--num-frames", "21"])
    assert text.exit_code == 0 and "total per GPU" in text.output
    assert max(len(line) for line in text.output.splitlines()) <= 80


def _tiny_config(**changes) -> TrainConfig:
    values = dict(height=32, width=48, num_frames=9, max_sequence_length=16, batch_size=2, aligner_batch_size=4,
                  adapter_preset="faithfulfaces", adapter=dict(TINY_ADAPTER))
    return TrainConfig(**{**values, **changes})


def test_check_fits_names_the_setting():
    plan = plan_training(toy_backbone_config(), _tiny_config(), 2)
    assert isinstance(plan, MemoryPlan)
    check_fits(plan, "ddp", plan.ddp.per_gpu)
    with pytest.raises(ConfigError) as info:
        check_fits(plan, "ddp", plan.ddp.per_gpu - 1)
    assert "--set parallel=fsdp" in info.value.fix and "memory_check=false" in info.value.fix
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        check_fits(plan, "fsdp", 1)
    assert "more GPUs" in info.value.fix
    assert all(len(line) <= 80 for line in format_plan(plan))


# ------------------------------------------------------------------ exactness on 2 gloo processes
def _storage_bytes(tensors) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        if t is None:
            continue
        local = t.to_local() if hasattr(t, "to_local") else t
        seen[local.untyped_storage().data_ptr()] = local.untyped_storage().nbytes()
    return sum(seen.values())


class _LiveSaved:
    """Live bytes of the real tensors autograd saves (weak references: freed ones stop counting), and
    their peak; parameter storages (sharded or all-gathered) are weights, not activations."""

    def __init__(self, module: torch.nn.Module) -> None:
        from torch.multiprocessing.reductions import StorageWeakRef

        self.module, self.ref, self.live, self.peak = module, StorageWeakRef, {}, 0

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        weights = {(p.to_local() if hasattr(p, "to_local") else p).untyped_storage().data_ptr()
                   for p in self.module.parameters()}
        storage = t.untyped_storage()
        self.live = {k: v for k, v in self.live.items() if not v[0].expired()}
        if storage.data_ptr() not in weights and storage.data_ptr() not in self.live:
            self.live[storage.data_ptr()] = (self.ref(storage), storage.nbytes())
        self.peak = max(self.peak, sum(n for _, n in self.live.values()))
        return t


def _fsdp_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from lfa.model.sharding import shard

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        config, backbone = _tiny_config(), toy_backbone_config()
        torch.manual_seed(0)
        module = training_module(backbone, config, device="cpu").train()
        for name, p in module.named_parameters():  # non-zero LoRA B and face values: every path has gradient
            if "lora_B" in name or "face_" in name:
                torch.nn.init.normal_(p, std=0.1)
        shard(module)
        optimizer = torch.optim.AdamW(module.parameter_groups(), lr=1e-3)
        torch.manual_seed(1 + rank)
        batch = meta_batch(backbone, config, _shapes(backbone, config, 1), device="cpu")
        tracker = _LiveSaved(module)
        with torch.autograd.graph.saved_tensors_hooks(tracker.pack, lambda t: t):
            loss = training_step_forward(module, batch)
        loss.backward()
        optimizer.step()
        params = list(module.parameters())
        states = [t for s in optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
        result = {"weights": _storage_bytes(params), "gradients": _storage_bytes(p.grad for p in params),
                  "optimizer": _storage_bytes(states), "activations": tracker.peak,
                  "sharded": sum(hasattr(p, "to_local") for p in params), "params": len(params)}
        with open(f"{out}.{rank}", "w") as f:
            json.dump(result, f)
    finally:
        dist.destroy_process_group()


def test_plan_equals_what_each_rank_holds_after_a_real_fsdp_step(tmp_path):
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "rank.json"
    mp.spawn(_fsdp_worker, args=(2, port, str(out)), nprocs=2, join=True)
    plan = plan_training(toy_backbone_config(), _tiny_config(), 2)
    fsdp = plan.fsdp
    for rank in range(2):  # parameters and gradients: ceil(d0 / N) rows on every rank; AdamW: each rank's own
        held = json.loads(Path(f"{out}.{rank}").read_text())
        assert 0 < held["sharded"] < held["params"]  # sharded units and replicated parts (the aligner) both present
        assert (fsdp.weights, fsdp.gradients, fsdp.optimizer_by_rank[rank]) == (held["weights"], held["gradients"],
                                                                                held["optimizer"]), (rank, held)
        assert abs(fsdp.activations - held["activations"]) <= 0.25 * held["activations"], (rank, fsdp.activations, held)
    assert fsdp.optimizer == fsdp.optimizer_by_rank[0] == max(fsdp.optimizer_by_rank)  # the busiest GPU's


def test_ddp_figures_equal_a_plain_module():
    config = _tiny_config(batch_size=1)
    module = training_module(toy_backbone_config(), config, device="cpu")
    plan = plan_training(toy_backbone_config(), config, 1)
    trainable = [p for p in module.parameters() if p.requires_grad]
    assert plan.ddp.weights == sum(p.numel() * p.element_size() for p in module.parameters())
    assert plan.ddp.gradients == sum(p.numel() * 4 for p in trainable)
    assert plan.ddp.optimizer == sum(2 * p.numel() * 4 + 4 for p in trainable)
    assert plan.ddp.per_gpu / GIB < 0.01


def test_cli_base_folder_counts_its_own_encoders(tiny_base):
    result = CliRunner().invoke(app, ["model", "plan", "--base", str(tiny_base), "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert set(plan["cache_phase"]["encoders"]) == {"text encoder", "VAE"}
    assert plan["latent"] == [2, 4, 4]  # the base's train_defaults: 5 frames at 32x32


def test_train_shows_its_plan_and_refuses_on_a_gpu_too_small(tiny_base, monkeypatch):
    """The trainer's check runs before anything loads: on a (pretended) 1 MiB GPU it names the fix."""
    from types import SimpleNamespace

    import torch

    from lfa.errors import ConfigError
    from lfa.train.config import load_config
    from lfa.train.trainer import _memory_plan

    shown: list[list[str]] = []
    config = load_config({"height": 32, "width": 32, "num_frames": 5, "max_sequence_length": 16})
    accelerator = SimpleNamespace(num_processes=1, device="cuda:0")
    _memory_plan(tiny_base, config, accelerator, shown.append)  # CPU: shown, not checked
    assert shown and shown[0][0].startswith("memory plan of wan-tiny") and all(len(x) <= 80 for x in shown[0])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(total_memory=2**20))
    with pytest.raises(ConfigError, match="GiB per GPU") as err:
        _memory_plan(tiny_base, config, accelerator, None)
    assert "memory_check=false" in err.value.fix
    _memory_plan(tiny_base, load_config(sets=["memory_check=false", "height=32", "width=32", "num_frames=5"]),
                 accelerator, None)
