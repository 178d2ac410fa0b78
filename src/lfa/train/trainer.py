"""``train``: caches, then flow-matching training of the identity adapter (and LoRA) with accelerate.

Outputs in ``out``: ``config.json``, ``metrics.jsonl`` (one line per optimizer step: ``step``, ``loss``,
each loss term, ``lr``; ``val_loss`` every ``val_every`` steps and at step 0 — the plain flow-matching
loss on a fixed validation batch with fixed noise and noise levels), the same as TensorBoard scalars in
``tensorboard/`` (``tensorboard`` on), ``samples/step-<N>.mp4`` (``sample_every``), ``checkpoint-<step>/``
and ``adapter/`` (final weights; ``adapter_ema/`` with EMA; ``adapter/pytorch_lora_weights.safetensors``
is the LoRA in the layout diffusers' ``WanPipeline.load_lora_weights`` reads).

One process, or several under ``accelerate launch`` / ``torchrun`` (gloo on CPU): DDP replicas, or with
``parallel=fsdp`` FSDP2 shards (:mod:`lfa.model.sharding`, :mod:`lfa.train.fsdp`; checkpoints then hold
every rank's shard under ``sharded/`` and the gathered adapter). The global batch is split evenly over
processes, and every random draw is keyed by (seed, step, global row), so the loss does not depend on
the split.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from lfa.errors import ConfigError
from lfa.train import fsdp
from lfa.train.aligner_data import FacePool, build_face_pool, draw_pairs
from lfa.train.cache import Encoders, build_cache, cache_id, load_shard
from lfa.train.checkpoints import checkpoint_to_resume, resume_from, save_checkpoint, save_final
from lfa.train.config import TrainConfig, check_batch_split
from lfa.train.data import Sample, build_samples
from lfa.train.experts import check_phase_saved, expert_phases, phase_of
from lfa.train.regions import loss_weights
from lfa.train.sampling import SampleVideos
from lfa.train.scalars import ScalarLog, group_learning_rates
from lfa.train.state import EMA, BatchOrder, row_generator
from lfa.train.validation import Validator, shuffled_faces, split_samples

METRICS = "metrics.jsonl"


@dataclass
class TrainResult:
    out: Path
    steps: int
    cache_dir: Path
    samples: int


def prepare_cache(base: Path, data: str | Path, out: Path, config: TrainConfig, *,
                  encoders_file: str | os.PathLike[str] | None = None,
                  on_sample: Callable[[Sample, bool], None] | None = None,
                  on_cache: Callable[[int, int], None] | None = None) -> tuple[list[Sample], Path, str, dict]:
    """Samples, the cache folder (every shard present afterwards), its id and the encoder spec;
    ``on_sample(sample, built)`` hears each shard, ``on_cache(done, total)`` counts them."""
    from lfa.registry.directories import directory_hash
    from lfa.wan.base import check_text_length, load_base
    from lfa.wan.encoders import encoder_spec

    wan = load_base(base, parts=())
    base = wan.path
    check_text_length(base, config.max_sequence_length)
    for height, width in config.bucket_list:
        wan.check_size(config.num_frames, height, width)
    samples = build_samples(data, config, extract_to=out / "cache" / "clips")
    spec, _ = encoder_spec(base, encoders_file)
    cid = cache_id(directory_hash(base), spec.to_json(), config)
    folder = out / "cache" / cid
    load = encoders_loader(base, encoders_file, config)

    meta = {"cache_id": cid, "base": str(base), "samples": len(samples)}
    done = 0

    def count(sample: Sample, built: bool) -> None:
        nonlocal done
        done += 1
        if on_sample:
            on_sample(sample, built)
        if on_cache:
            on_cache(done, len(samples))

    if on_cache:
        on_cache(0, len(samples))
    build_cache(samples, folder, load, meta=meta, on_sample=count)
    return samples, folder, cid, json.loads(spec.to_json())


def encoders_loader(base: Path, encoders_file: str | os.PathLike[str] | None,
                    config: TrainConfig) -> Callable[[], Encoders]:
    """Loads what the caches run (the base's VAE and text encoder, the face experts) when called."""
    from lfa.wan.base import load_base
    from lfa.wan.encoders import build_encoders, encoder_spec

    def load() -> Encoders:
        spec, root = encoder_spec(base, encoders_file)
        wan = load_base(base, parts=("vae", "text_encoder", "tokenizer", "image_encoder"))
        experts = tuple(name for name in ("identity", "semantic", "detail") if getattr(spec, name) is not None)
        return Encoders(wan.pipeline(), build_encoders(spec, root, wan.vae, experts), config)

    return load


def _widths(shard: dict[str, torch.Tensor], spec: dict[str, Any], experts: tuple[str, ...]) -> dict[str, Any]:
    widths: dict[str, Any] = {}
    for name in experts:
        if f"face.{name}" not in shard:
            raise ConfigError(f"the adapter needs the {name} expert and the cache has no {name} features",
                              f"add \"{name}\" to the base's lfa_encoders.json, or turn {name}_expert off")
    if "identity" in experts:
        widths["identity_dim"] = int(shard["face.identity"].shape[-1])
    if "semantic" in experts:
        widths["semantic_dim"] = int(shard["face.semantic"].shape[-1])
        widths["semantic_layers"] = list(spec["semantic"].get("layers", [-2]))
    if "detail" in experts:
        widths["detail_size"] = int(spec["detail"].get("size", 128))
        widths["detail_patch"] = int(spec["detail"].get("patch", 2))
    return widths


class _Data:
    """Cached shards in memory order of ``samples``; batches as :class:`TrainingBatch` inputs."""

    def __init__(self, paths: list[Path], cid: str, config: TrainConfig, adapter_config: Any,
                 first_frame_ratio: float = 0.0) -> None:
        """``first_frame_ratio``: a TI2V base's share of training rows whose clean first frame conditions."""
        self.paths, self.cid, self.config, self.adapter_config = paths, cid, config, adapter_config
        self.first_frame_ratio = first_frame_ratio
        self._memo: dict[int, dict[str, torch.Tensor]] = {}

    def shard(self, i: int) -> dict[str, torch.Tensor]:
        if i not in self._memo:
            self._memo[i] = load_shard(self.paths[i], self.cid)
        return self._memo[i]

    def batch(self, rows: list[int], *, step: int, first_row: int, seed: int, flow: Any, train: bool,
              face_rows: list[int] | None = None, alignment: tuple[Any, Any] | None = None,
              alignment_groups: torch.Tensor | None = None):
        """The batch of ``rows``; with ``face_rows``, each row's faces and reference views are those of the
        row at the same place there (another person's: the identity metrics and ``face_shuffle``)."""
        from lfa.model.encoders import FaceFeatures
        from lfa.model.flow import sample_sigmas
        from lfa.model.training import TrainingBatch

        shards = [self.shard(i) for i in rows]
        faces_of = shards if face_rows is None else [self.shard(i) for i in face_rows]
        latents = torch.stack([s["latents"] for s in shards])
        length = self.config.max_sequence_length
        text = torch.zeros(len(rows), length, shards[0]["text"].shape[-1])
        for j, s in enumerate(shards):
            text[j, : s["text"].shape[0]] = s["text"][:length]
        noise, sigmas, face_keep, ref_keep, first_frame = [], [], [], [], []
        cfg = self.adapter_config
        for j in range(len(rows)):
            gen = row_generator(seed, step, first_row + j)
            noise.append(torch.randn(latents.shape[1:], generator=gen))
            sigmas.append(sample_sigmas(1, flow, generator=gen)[0])
            face_keep.append(bool(torch.rand(1, generator=gen) >= cfg.face_dropout))
            ref_keep.append(bool(torch.rand(1, generator=gen) >= cfg.reference_dropout))
            if self.first_frame_ratio > 0:
                first_frame.append(bool(torch.rand(1, generator=gen) < self.first_frame_ratio))
        faces = references = None
        if cfg.experts:
            tokens = {name: torch.stack([s[f"face.{name}"][0] for s in faces_of]) for name in cfg.experts}
            faces = FaceFeatures(tokens, torch.stack([s["face_angles"][0] for s in faces_of]))
        if cfg.references != "none":
            references = torch.stack([s["references"] for s in faces_of])
        condition = torch.stack([s["condition"] for s in shards]) if "condition" in shards[0] else None
        image_embeds = torch.stack([s["image_embeds"] for s in shards]) if "image_embeds" in shards[0] else None
        weights = None
        if train and self.config.face_loss_weight != 1.0:
            weights = loss_weights(torch.stack([s["face_mask"] for s in shards])[:, None], self.config.face_loss_weight)
        return TrainingBatch(latents, text, faces=faces, references=references, alignment=alignment,
                             alignment_groups=alignment_groups,
                             noise=torch.stack(noise), sigmas=torch.stack(sigmas),
                             face_keep=torch.tensor(face_keep) if train else None,
                             reference_keep=torch.tensor(ref_keep) if train else None, loss_weights=weights,
                             condition=condition, image_embeds=image_embeds,
                             first_frame=torch.tensor(first_frame) if train and first_frame else None)


def check_latent_statistics(data: _Data, rows: list[int], notice: Callable[[str], None], most: int = 32) -> None:
    """Warn when the cached latents are far from normalised (per-channel mean 0, std 1 after the VAE config's
    ``latents_mean``/``latents_std``): the flow loss is then mostly noise and identity barely pays."""
    latents = torch.cat([data.shard(i)["latents"].flatten(1) for i in rows[:most]], dim=1)  # (z, n)
    mean, std = latents.mean(dim=1), latents.std(dim=1)
    if bool((mean.abs() > 1.0).any() or (std < 1 / 3).any() or (std > 3.0).any()):
        notice(f"the base's normalised latents have per-channel std {float(std.min()):.2f}–{float(std.max()):.2f} "
               f"and mean {float(mean.min()):+.2f}–{float(mean.max()):+.2f} on this data (expected about 1 and 0): "
               "set latents_mean/latents_std in BASE/vae/config.json")


def _accelerator(config: TrainConfig):
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    return Accelerator(mixed_precision=config.mixed_precision, cpu=not torch.cuda.is_available(),
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])


def _optimizer(module: Any, config: TrainConfig, steps: int | None = None):
    """AdamW over the module's groups and the learning-rate schedule over ``steps`` (default ``max_steps``)."""
    from diffusers.optimization import get_scheduler

    groups = module.parameter_groups()
    for group in groups:
        if group["name"] == "lora" and config.lora_learning_rate:
            group["lr"] = config.lora_learning_rate
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=config.warmup_steps,
                              num_training_steps=steps or config.max_steps)
    return optimizer, scheduler


def train(base: str | os.PathLike[str], data: str | os.PathLike[str], out: str | os.PathLike[str],
          config: TrainConfig, *, resume: str | None = None, cache_only: bool = False,
          encoders_file: str | os.PathLike[str] | None = None,
          progress: Callable[[int, int, dict[str, float]], None] | None = None,
          on_cache: Callable[[int, int], None] | None = None,
          on_notice: Callable[[str], None] | None = None,
          on_plan: Callable[[list[str]], None] | None = None) -> TrainResult:
    """Build missing caches, then train ``config.max_steps`` optimizer steps (continuing a checkpoint with ``resume``).

    ``progress(step, total, record)`` follows the steps (first with the step a resumed run starts from and an
    empty record); ``on_cache(done, total)`` follows the cache; ``on_notice(line)`` hears what the run
    decided on its own (the validation split's fallbacks, skipped metrics, a base's unnormalised latents);
    ``on_plan(lines)`` gets the run's memory plan (:mod:`lfa.train.memory_plan`) before anything loads. On
    GPUs a run whose plan exceeds the GPU stops there with one line naming the setting to change
    (``memory_check=false`` starts it anyway)."""
    from lfa.model.adapter import IdentityAdapter
    from lfa.model.training import IdentityTrainingModule
    from lfa.wan.base import load_base

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    accelerator = _accelerator(config)
    main = accelerator.is_main_process
    if accelerator.distributed_type.name in ("FSDP", "DEEPSPEED"):
        raise ConfigError(f"lfa train does not use accelerate's {accelerator.distributed_type.name} wrapping",
                          "launch with docs/accelerate/ddp.yaml (or --launch N) and add --set parallel=fsdp to shard")
    check_batch_split(config, accelerator.num_processes)
    _memory_plan(Path(base), config, accelerator, on_plan if main else None)
    wan = load_base(base, parts=())
    phases = expert_phases(wan, config)
    if wan.two_experts and config.sample_every:
        raise ConfigError("sample_every does not run on a two-expert base (a sample needs both experts)",
                          "set sample_every=0 and run `lfa generate --adapter OUT/checkpoint-N/adapter`")
    if main:
        samples, folder, cid, spec = prepare_cache(Path(base), data, out, config, encoders_file=encoders_file,
                                                   on_cache=on_cache)
    accelerator.wait_for_everyone()
    if not main:
        samples, folder, cid, spec = prepare_cache(Path(base), data, out, config, encoders_file=encoders_file)
    if cache_only:
        return TrainResult(out, 0, folder, len(samples))
    paths = [folder / f"{s.key}.safetensors" for s in samples]
    notice = on_notice if on_notice and main else (lambda line: None)
    split = split_samples(samples, val_split=config.val_split, val_fraction=config.val_fraction,
                          val_samples=config.val_samples, seed=config.seed)
    for line in split.notes:
        notice(line)
    identities = len({s.cluster_id for s in samples})
    if identities < 2:
        if config.face_shuffle:
            raise ConfigError("face_shuffle needs at least 2 identities and the run has 1",
                              "curate clips of 2 or more people, or leave face_shuffle off")
        notice("1 identity in the run: the identity metrics (val_id_gain ...) are skipped")

    adapter_config = config.adapter_config()
    first = load_shard(paths[0], cid)
    adapter_config = config.adapter_config(**_widths(first, spec, adapter_config.experts))
    data_ = _Data(paths, cid, config, adapter_config, config.first_frame_ratio if wan.expand_timesteps else 0.0)
    if main:
        check_latent_statistics(data_, split.train, notice)
    pool = None
    if adapter_config.aligner:
        pool_dir = folder / "aligner"

        def build() -> FacePool:
            return build_face_pool(data, samples, split.train, pool_dir,
                                   encoders_loader(Path(base), encoders_file, config), adapter_config.experts,
                                   adapter_config.min_pose_difference, extract_to=out / "cache" / "clips")

        if main:
            pool = build()
        accelerator.wait_for_everyone()
        if not main:
            pool = build()
        if pool.identities < 2:
            notice(f"alignment loss off: the aligner's pose pairs come from {pool.identities} identity cluster(s), "
                   "and InfoNCE needs another person's faces as negatives")
            pool = None
    order = BatchOrder([samples[i].bucket for i in split.train], config.batch_size, config.seed, rows=split.train)
    val_rows = split.val
    checkpoint = checkpoint_to_resume(out, resume)
    resumed_phase = phases.index(phase_of(phases, checkpoint)) if checkpoint else 0
    if main:
        config.save(out / "config.json")
        _trim_metrics(out / METRICS, int(checkpoint[1]["step"]) if checkpoint else 0)
    scalars = ScalarLog(out, enabled=config.tensorboard and main,
                        resumed_at=int(checkpoint[1]["step"]) if checkpoint else 0)
    if progress and main:
        progress(int(checkpoint[1]["step"]) if checkpoint else 0, config.max_steps, {})
    world, rank = accelerator.num_processes, accelerator.process_index
    local = config.batch_size // world
    micro = local // config.gradient_accumulation

    for index, phase in enumerate(phases):
        if index < resumed_phase:  # finished before the checkpoint: its adapter is on disk
            check_phase_saved(out, phase)
            continue
        torch.manual_seed(config.seed)
        transformer = getattr(load_base(base, parts=(phase.component,), dtype=config.base_torch_dtype),
                              phase.component)
        adapter = IdentityAdapter.attach(transformer, adapter_config)
        if config.gradient_checkpointing:
            transformer.enable_gradient_checkpointing()
        module = IdentityTrainingModule(adapter, replace(config.flow_config(), sigma_range=phase.sigma_range),
                                        alignment_weight=config.alignment_weight, balance_weight=config.balance_weight)
        units = _shard(module, config, out) if config.parallel == "fsdp" else None
        optimizer, scheduler = _optimizer(module, config, phase.last - phase.first + 1)
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        ema = EMA(named, config.ema_decay) if config.ema_decay else None
        validator = Validator(samples, split, data_.batch, draws=config.val_noise_draws, seed=config.seed,
                              flow=module.flow, identity_metrics=identities >= 2)
        start = phase.first - 1
        if checkpoint and index == resumed_phase:
            start = resume_from(checkpoint, module, optimizer, scheduler, ema, accelerator.process_index,
                            sharded=units is not None, expert=phase.expert)
        if units is None:
            wrapped, optimizer = accelerator.prepare(module, optimizer)
        else:  # FSDP placed its shards; what it does not hold follows the device
            wrapped, replicated = module, fsdp.replicated_trainable(module)
            adapter.follow(accelerator.device)
        videos = SampleVideos(Path(base), module, data_.shard(val_rows[0]), samples[val_rows[0]], config, out) \
            if config.sample_every and main else None

        def validate() -> dict[str, float]:
            with accelerator.autocast():
                return validator(accelerator.unwrap_model(wrapped))

        if start == 0 and (main or units is not None):  # FSDP: every rank takes part in every forward
            record0 = {"step": 0, **split.describe(), **validate()}
            if main:
                _append(out / METRICS, record0)
                scalars.write(record0)
        wrapped.train()
        for step in range(start + 1, phase.last + 1):
            t0 = time.perf_counter()
            rows = order.batch(step)
            # the aligner's own batch: the same on every process, whatever the split of the diffusion rows
            pairs = draw_pairs(pool, config.aligner_batch_size, config.seed, step) if pool is not None else None
            torch.manual_seed(config.seed * 1_000_003 + step * 101 + rank)  # anything the model draws itself
            totals: dict[str, float] = {}
            drawn: list[float] = []  # the noise levels of this process's rows
            for m in range(config.gradient_accumulation):
                first_row = rank * local + m * micro
                mine = rows[first_row: first_row + micro]
                face_rows = shuffled_faces(samples, mine, config.seed, step) if config.face_shuffle else None
                batch = data_.batch(mine, step=step, first_row=first_row, seed=config.seed, flow=module.flow,
                                    train=True, face_rows=face_rows, alignment=None if pairs is None else pairs[:2],
                                    alignment_groups=None if pairs is None else pairs[2])
                drawn += batch.sigmas.tolist()  # drawn on the CPU: no device sync
                batch = to_device(batch, accelerator.device)
                sync = m == config.gradient_accumulation - 1
                if units is not None:
                    fsdp.set_gradient_sync(units, sync)
                with contextlib.nullcontext() if sync or units is not None else accelerator.no_sync(wrapped):
                    with accelerator.autocast():
                        result = wrapped(batch)
                    accelerator.backward(result.loss / config.gradient_accumulation)
                for name, value in {"loss": result.loss, **result.losses}.items():
                    totals[name] = totals.get(name, 0.0) + float(value.detach()) / config.gradient_accumulation
            if units is not None:
                fsdp.average_replicated_gradients(replicated)
            if config.max_grad_norm > 0 and units is not None:
                fsdp.clip_grad_norm_([p for _, p in named], config.max_grad_norm)
            elif config.max_grad_norm > 0:
                accelerator.clip_grad_norm_([p for _, p in named], config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update()
            keys = sorted(totals)
            reduced = accelerator.reduce(torch.tensor([totals[k] for k in keys], dtype=torch.float64), "mean")
            record: dict[str, Any] = {"step": step, **{k: float(v) for k, v in zip(keys, reduced)},
                                      "lr": scheduler.get_last_lr()[0], "step_s": round(time.perf_counter() - t0, 4)}
            if phase.expert is not None:
                record.update(expert=phase.expert, sigma_min=min(drawn), sigma_max=max(drawn))
            if adapter.aligner is not None:
                record.update(alignment_pairs=config.aligner_batch_size if pairs else 0,
                              aligner_temperature=adapter.aligner.temperature)
            if step % config.val_every == 0 or step == phase.last:
                record.update(validate())
            if main:
                _append(out / METRICS, record)
                scalars.write(record, group_learning_rates(optimizer))
            if videos is not None and step % config.sample_every == 0:
                with accelerator.autocast():
                    videos(step, ema)
            if step % config.checkpoint_every == 0 or step == phase.last:
                save_checkpoint(out, step, order, module, optimizer, scheduler, ema, accelerator, config, cid,
                            sharded=units is not None, expert=phase.expert)
            if progress and main:
                progress(step, config.max_steps, record)
        save_final(adapter, phase.folder(out / "adapter"), config, main, units is not None)
        if ema is not None:
            ema.swap()
            save_final(adapter, phase.folder(out / "adapter_ema"), config, main, units is not None)
            ema.swap()
        accelerator.wait_for_everyone()
        accelerator.free_memory()
        del module, adapter, transformer, wrapped, optimizer, scheduler, ema
    scalars.close()
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(out, config.max_steps, folder, len(samples))


def _memory_plan(base: Path, config: TrainConfig, accelerator: Any,
                 on_plan: Callable[[list[str]], None] | None) -> None:
    """Show the run's plan; on GPUs, refuse a run that cannot fit (every rank decides the same)."""
    gpu = torch.cuda.is_available() and config.memory_check
    if on_plan is None and not gpu:
        return
    from lfa.model.presets import load_backbone_config
    from lfa.train.memory_plan import check_fits, format_plan, plan_training
    from lfa.wan.base import check_base

    folder = check_base(base)
    plan = plan_training(load_backbone_config(folder / "transformer"), config, accelerator.num_processes,
                         name=folder.name, base=folder)
    if on_plan is not None:
        on_plan(format_plan(plan))
    if gpu:
        check_fits(plan, config.parallel, torch.cuda.get_device_properties(accelerator.device).total_memory)


def _shard(module: Any, config: TrainConfig, out: Path) -> list[Any]:
    """FSDP2 over every process of the run (a one-process group when run alone: CPU offload still pays)."""
    import torch.distributed as dist

    from lfa.model.sharding import shard

    if config.mixed_precision == "fp16":
        raise ConfigError("parallel=fsdp does not scale fp16 losses", "use --set mixed_precision=bf16")
    if not dist.is_initialized():
        store = out / ".fsdp-store"
        store.unlink(missing_ok=True)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", init_method=f"file://{store}",
                                rank=0, world_size=1)
    return shard(module, cpu_offload=config.fsdp_cpu_offload)


def to_device(value: Any, device: torch.device) -> Any:
    """Tensors anywhere in ``value`` (dataclasses, dicts, lists, tuples) on ``device``."""
    import dataclasses

    if isinstance(value, torch.Tensor):
        return value.to(device)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: to_device(getattr(value, f.name), device)
                                             for f in dataclasses.fields(value) if f.init})
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    return value


def _append(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _trim_metrics(path: Path, step: int) -> None:
    """Keep the lines up to ``step`` (a resumed run rewrites what came after its checkpoint)."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    path.write_text("".join(ln + "\n" for ln in lines))


