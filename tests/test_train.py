"""lfa model init → curate → cache → train → generate, end to end on a tiny random Wan base (CPU).

Acceptance of the training issue: val_loss drops >= 10 % in 30 steps; SIGKILL after step 15 and
--resume latest give the uninterrupted losses; 2 DDP processes (gloo) = 1 process at the same global
batch; the LoRA loads into a diffusers WanPipeline; generate writes the expected mp4, reloads to the
same output, and --spec output scores with lfa bench.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lfa.errors import ConfigError, ModelLoadError
from lfa.train.config import load_config

SETTINGS = ["max_steps=30", "val_every=10", "checkpoint_every=15", "learning_rate=1e-3", "lora_rank=4",
            "ema_decay=0.9", "sample_every=15", "sample_steps=2"]
CLIP = "large_angle_astronaut.mp4"


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def scalars(out: Path) -> dict[str, dict[int, float]]:
    """TensorBoard scalars of a run, read back with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def lfa_env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def tiny_run(corpus, tmp_path_factory):
    from lfa.curate.run import curate

    run = tmp_path_factory.mktemp("run")
    curate([corpus / CLIP], run, executor="local", workers=1, report=False)
    return run


@pytest.fixture(scope="module")
def trained(tiny_base, tiny_run, tmp_path_factory, torch_one_thread):
    from lfa.wan.base import load_base
    from lfa.train.trainer import train

    out = tmp_path_factory.mktemp("train")
    config = load_config(load_base(tiny_base, parts=()).train_defaults, sets=SETTINGS)
    train(tiny_base, tiny_run, out, config)
    return out


def test_init_writes_a_loadable_wan_base_and_models_add_references_it(tiny_base, tmp_path):
    from lfa.registry import ModelStore
    from lfa.registry.directories import add_directory, directory_hash, resolve_directory, tree_hash
    from lfa.wan.base import load_base

    wan = load_base(tiny_base)
    assert type(wan.transformer).__name__ == "WanTransformer3DModel"
    assert wan.transformer.config.text_dim == wan.text_encoder.config.d_model
    store = ModelStore(tmp_path / "home")
    added = add_directory(store, "wan-tiny", tiny_base)
    assert added.kind == "diffusers:WanPipeline" and resolve_directory(store, "wan-tiny") == tiny_base.resolve()
    assert not list(store.model_dir("wan-tiny").glob("*.safetensors"))  # referenced, not copied
    read: list[Path] = []
    stamps = json.loads((store.model_dir("wan-tiny") / "directory.json").read_text())["files"]
    assert tree_hash(tiny_base.resolve(), stamps, read.append)[0] == added.sha256 and read == []
    (tiny_base / "lfa_base.json").touch()  # a changed mtime: only that file is read again
    assert tree_hash(tiny_base.resolve(), stamps, read.append)[0] == added.sha256
    assert read == [tiny_base.resolve() / "lfa_base.json"]
    assert directory_hash(tiny_base, store) == added.sha256
    with pytest.raises(ModelLoadError, match="not a diffusers model"):
        load_base(tmp_path)


def test_config_keys_and_bad_input(tiny_base, tmp_path):
    from lfa.train.data import build_samples

    config = load_config({"height": 32, "width": 32, "num_frames": 5}, sets=["lora_rank=4", "adapter.scale=0.5"])
    assert config.adapter_config().lora_rank == 4 and config.adapter_config().scale == 0.5
    with pytest.raises(ConfigError, match="unknown config key 'no_such_key'"):
        load_config(sets=["no_such_key=1"])
    with pytest.raises(ConfigError, match="4n\\+1"):
        load_config(sets=["num_frames=6"])
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("max_steps: 7\nadapter_preset: mofe\n")
    assert load_config(config_file=yaml_file).max_steps == 7
    with pytest.raises(ConfigError, match="no manifest.parquet"):
        build_samples(tmp_path, config)


def test_shipped_accelerate_config_is_valid():
    """docs/accelerate/ddp.yaml read by this accelerate's `accelerate launch` (FSDP is --set parallel=fsdp over it)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser, prepare_multi_gpu_env

    folder = Path(__file__).resolve().parents[1] / "docs" / "accelerate"
    assert sorted(p.name for p in folder.glob("*.yaml")) == ["ddp.yaml"]
    args = launch_command_parser().parse_args(["--config_file", str(folder / "ddp.yaml"), "-m", "lfa", "train"])
    args, _, _ = _validate_launch_command(args)
    env = prepare_multi_gpu_env(args)
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16" and "ACCELERATE_USE_FSDP" not in env


def test_samples_have_cross_pose_references_and_the_cache_resumes(tiny_base, tiny_run, trained):
    from safetensors.torch import load_file

    from lfa.wan.base import load_base
    from lfa.train.trainer import prepare_cache

    config = load_config(load_base(tiny_base, parts=()).train_defaults, sets=SETTINGS)
    done: list[bool] = []
    samples, folder, _, _ = prepare_cache(tiny_base, tiny_run, trained, config, on_sample=lambda s, new: done.append(new))
    assert len(samples) >= 4 and not any(done)  # every shard already there
    for s in samples:
        assert (s.num_frames - 1) % 4 == 0 and s.bucket == (32, 32)
        assert len(s.boxes) == s.num_frames and all(b is not None for b in s.boxes)
        assert s.pose_gap == pytest.approx(abs(s.references[0].yaw - s.window_yaw))
        assert s.pose_gap >= config.yaw_bucket / 2  # the reference sits in another yaw bucket
    victim = folder / f"{samples[1].key}.safetensors"
    before = load_file(victim)
    victim.unlink()
    done.clear()
    prepare_cache(tiny_base, tiny_run, trained, config, on_sample=lambda s, new: done.append(new))
    after = load_file(victim)
    assert done.count(True) == 1 and sorted(after) == sorted(before)
    assert all(torch.equal(after[k], before[k]) for k in before)  # the same tensors again
    mask = after["face_mask"]
    assert mask.shape == (2, 4, 4) and 0 < float(mask.mean()) < 0.5 < float(mask.max())  # a face, not everywhere


def test_face_region_weights_on_the_latent_grid():
    from lfa.model.training import weighted_mse
    from lfa.train.regions import face_mask, loss_weights

    # 64x64 source -> 32x32 bucket: a latent cell is 16 source pixels; x0 = 20 covers 3/4 of cell 1
    mask = face_mask([(20, 0, 48, 32), None, None, None, None], (64, 64), (32, 32))
    want = torch.zeros(2, 4, 4)
    want[0, :2, 1], want[0, :2, 2] = 0.75, 1.0
    assert torch.equal(mask, want)
    # 64x128 source: centre crop x 32..96; a box on frame 3 lands on latent frame 1 (frames 1-4)
    wide = face_mask([None, None, None, (48, 0, 80, 32), None], (64, 128), (32, 32))
    assert float(wide[0].sum()) == 0 and torch.equal(wide[1], (want[0] > 0).float())
    weights = loss_weights(mask, 3.0)
    assert float(weights[0, 0, 1]) == 2.5 and float(weights[0, 0, 2]) == 3.0 and float(weights[1].max()) == 1.0
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 4, 2, 4, 4, generator=gen), torch.randn(2, 4, 2, 4, 4, generator=gen)
    ones = torch.ones(2, 1, 2, 4, 4)
    assert torch.allclose(weighted_mse(pred, target, ones), weighted_mse(pred, target, None))
    w = torch.stack([weights, torch.ones_like(weights)])[:, None]
    per = [((w[i] * (pred[i] - target[i]) ** 2).sum() / w[i].expand_as(pred[i]).sum()) for i in range(2)]
    assert torch.allclose(weighted_mse(pred, target, w), (per[0] + per[1]) / 2)


def test_training_data_from_the_export_shards_equals_the_run(tiny_base, tiny_run, tmp_path):
    from dataclasses import replace

    from lfa.curate.export import export_webdataset
    from lfa.wan.base import load_base
    from lfa.train.cache import reference_frames, window_frames
    from lfa.train.data import build_samples

    export = tmp_path / "export"
    export_webdataset(tiny_run, export)
    meta = json.loads((export / "export.json").read_text())
    (export / "export.json").write_text(json.dumps({**meta, "run": str(tmp_path / "gone")}))  # shards only
    config = load_config(load_base(tiny_base, parts=()).train_defaults, sets=SETTINGS)
    ours = build_samples(export, config, extract_to=tmp_path / "clips")
    theirs = build_samples(tiny_run, config)
    assert len(ours) == len(theirs) >= 4 and all(s.source.startswith(str(tmp_path / "clips")) for s in ours)
    assert [replace(s, source="", offset=0.0) for s in ours] == [replace(s, source="", offset=0.0) for s in theirs]
    for a, b in ((ours[0], theirs[0]), (ours[-1], theirs[-1])):  # the same frames, re-encoded once:
        pairs = list(zip(window_frames(a) + reference_frames(a), window_frames(b) + reference_frames(b), strict=True))
        assert all(x.shape == y.shape for x, y in pairs)
        error = np.mean([np.abs(x.astype(int) - y).mean() for x, y in pairs])
        assert error < 1.5, error  # ~0.8 here; a window one source frame off is ~3


def test_thirty_steps_lower_the_validation_loss(trained):
    rows = metrics(trained)
    val = [r for r in rows if "val_loss" in r]
    assert val[0]["step"] == 0 and val[-1]["step"] == 30
    assert val[-1]["val_loss"] <= 0.9 * val[0]["val_loss"], val
    assert [r["step"] for r in rows[1:]] == list(range(1, 31)) and all(np.isfinite(r["loss"]) for r in rows[1:])
    for name in ("checkpoint-15", "checkpoint-30", "adapter", "adapter_ema"):
        assert (trained / name).is_dir(), name
    for name in ("optimizer.pt", "scheduler.pt", "ema.safetensors", "rng-0.pt", "state.json"):
        assert (trained / "checkpoint-15" / name).is_file(), name
    board = scalars(trained)
    assert sorted(board["loss"]) == list(range(1, 31))
    assert all(board["loss"][r["step"]] == pytest.approx(r["loss"], rel=1e-6) for r in rows[1:])
    want_val = {r["step"]: r["val_loss"] for r in val}
    assert {s: pytest.approx(v, rel=1e-6) for s, v in board["val_loss"].items()} == want_val
    assert board["lr/lora"][30] == pytest.approx(1e-3) and len(board["steps_per_s"]) == 30


def test_sample_videos_every_k_steps(trained):
    from lfa.media import read_frames

    videos = {step: read_frames(trained / "samples" / f"step-{step}.mp4") for step in (15, 30)}
    assert sorted(p.name for p in (trained / "samples").glob("*.mp4")) == ["step-15.mp4", "step-30.mp4"]
    for step, frames in videos.items():
        assert len(frames) == 5 and frames[0].image.shape == (32, 32, 3)
        sidecar = json.loads((trained / "samples" / f"step-{step}.json").read_text())
        assert sidecar["step"] == step and sidecar["ema"] is True and sidecar["seed"] == 0
    assert not np.array_equal(videos[15][2].image, videos[30][2].image)  # other weights, same seed and face


def test_sigkill_after_step_15_then_resume_gives_the_same_losses(tiny_base, tiny_run, trained, tmp_path,
                                                                 torch_one_thread):
    from lfa.wan.base import load_base
    from lfa.train.trainer import train

    out = tmp_path / "killed"
    out.mkdir()
    shutil.copytree(trained / "cache", out / "cache")  # same cache id: nothing to encode again
    cmd = [sys.executable, "-m", "lfa", "train", "--base", str(tiny_base), "--data", str(tiny_run),
           "--out", str(out), *[x for s in SETTINGS for x in ("--set", s)]]
    proc = subprocess.Popen(cmd, env=lfa_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not (out / "checkpoint-15" / "state.json").is_file():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "adapter").exists()
    config = load_config(load_base(tiny_base, parts=()).train_defaults, sets=SETTINGS)
    train(tiny_base, tiny_run, out, config, resume="latest")  # one thread, as the uninterrupted run
    want = {r["step"]: r for r in metrics(trained)}
    got = {r["step"]: r for r in metrics(out)}
    assert sorted(got) == list(range(31))
    for step in range(16, 31):
        assert got[step]["loss"] == want[step]["loss"], step  # bitwise on CPU
    assert got[30]["val_loss"] == want[30]["val_loss"]
    board = scalars(out)["loss"]  # TensorBoard drops what the killed run logged after its checkpoint
    assert sorted(board) == list(range(1, 31)) and board[30] == pytest.approx(want[30]["loss"], rel=1e-6)


# faithfulfaces: LoRA, the aligner's own pair batch (replicated under FSDP), face-weighted flow loss
PARALLEL_SETTINGS = ["max_steps=2", "batch_size=2", "val_every=100", "checkpoint_every=1", "learning_rate=1e-3",
                     "adapter_preset=faithfulfaces", "lora_rank=4", "aligner_batch_size=16", "face_loss_weight=3",
                     "val_samples=1", "val_noise_draws=1", "tensorboard=false", "ema_decay=0.5"]


@pytest.fixture(scope="module")
def one_process(tiny_base, two_people, tmp_path_factory, torch_one_thread):
    from lfa.train.trainer import train
    from lfa.wan.base import load_base

    out = tmp_path_factory.mktemp("one-process")
    train(tiny_base, two_people, out, load_config(load_base(tiny_base, parts=()).train_defaults, sets=PARALLEL_SETTINGS))
    return out


def launch_two(tiny_base, data, out: Path, *extra: str, like: Path) -> None:
    """``lfa train --launch 2`` with the parallel tests' settings, on the cache of run ``like``."""
    if not (out / "cache").exists():
        out.mkdir(exist_ok=True)
        shutil.copytree(like / "cache", out / "cache")
    cmd = [sys.executable, "-m", "lfa", "train", "--base", str(tiny_base), "--data", str(data), "--out", str(out),
           "--launch", "2", *[x for s in PARALLEL_SETTINGS for x in ("--set", s)], *extra]
    done = subprocess.run(cmd, env=lfa_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def losses(out: Path, key: str = "loss") -> list[float]:
    return [r[key] for r in metrics(out) if "loss" in r]


@pytest.fixture(scope="module")
def ddp_two(tiny_base, two_people, one_process, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "ddp2"
    launch_two(tiny_base, two_people, out, like=one_process)
    return out


def test_ddp_two_cpu_processes_equal_one_process(one_process, ddp_two):
    records = {n: [r for r in metrics(o) if "loss" in r] for n, o in ((1, one_process), (2, ddp_two))}
    assert len(records[1]) == 2 and not (one_process / "tensorboard").exists()
    assert all(r["alignment_pairs"] == 16 for r in records[1] + records[2])
    for key in ("loss", "alignment"):
        one, two = ([r[key] for r in records[n]] for n in (1, 2))
        assert np.allclose(two, one, rtol=1e-5, atol=0), (key, one, two)


def test_fsdp_two_cpu_processes_shard_checkpoints_and_resume(tiny_base, two_people, one_process, ddp_two, tmp_path):
    """FSDP2 over 2 gloo processes: the losses of DDP over 2 processes (1e-4), one shard file per rank in each
    checkpoint, gathered adapter files equal to one process's, and --resume latest continues exactly, with 2
    processes or with 1."""
    from safetensors.torch import load_file

    from lfa.model.persistence import WEIGHTS_NAME
    from lfa.train.checkpoints import LORA_DIFFUSERS

    out = tmp_path / "fsdp"
    launch_two(tiny_base, two_people, out, "--set", "parallel=fsdp", like=one_process)
    for key in ("loss", "flow", "alignment"):
        assert np.allclose(losses(out, key), losses(ddp_two, key), rtol=1e-4, atol=0), key
    shards = sorted(p.name for p in (out / "checkpoint-1" / "sharded").glob("*.distcp"))
    assert len(shards) >= 2 and (out / "checkpoint-1" / "sharded" / ".metadata").is_file()
    assert json.loads((out / "checkpoint-1" / "state.json").read_text())["parallel"] == "fsdp"
    for folder in ("adapter", "adapter_ema", "checkpoint-2/adapter"):
        for name in (WEIGHTS_NAME, LORA_DIFFUSERS):
            ours, one = load_file(out / folder / name), load_file(one_process / folder.split("/")[-1] / name)
            assert sorted(ours) == sorted(one) and len(ours) > 0, (folder, name)
            assert all(torch.allclose(ours[k], one[k], rtol=1e-3, atol=1e-6) for k in one), (folder, name)

    resumed = tmp_path / "resumed"  # the run killed after checkpoint-1: --resume latest gives the same step 2
    shutil.copytree(out, resumed, ignore=shutil.ignore_patterns("checkpoint-2", "adapter", "adapter_ema"))
    launch_two(tiny_base, two_people, resumed, "--set", "parallel=fsdp", "--resume", "latest", like=out)
    assert [r["step"] for r in metrics(resumed)] == [0, 1, 2]
    assert np.allclose(losses(resumed), losses(out), rtol=1e-6, atol=0)
    one = tmp_path / "one"  # another process count: DCP reshards the 2 ranks' files for 1 process
    shutil.copytree(out, one, ignore=shutil.ignore_patterns("checkpoint-2", "adapter", "adapter_ema"))
    alone = subprocess.run([sys.executable, "-m", "lfa", "train", "--base", str(tiny_base), "--data", str(two_people),
                            "--out", str(one), "--resume", "latest", "--set", "parallel=fsdp",
                            *[x for s in PARALLEL_SETTINGS for x in ("--set", s)]], env=lfa_env(), capture_output=True,
                           text=True)
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert np.allclose(losses(one), losses(out), rtol=1e-6, atol=0)
    ddp = subprocess.run([sys.executable, "-m", "lfa", "train", "--base", str(tiny_base), "--data", str(two_people),
                          "--out", str(resumed), "--resume", "latest", *[x for s in PARALLEL_SETTINGS
                                                                         for x in ("--set", s)]],
                         env=lfa_env(), capture_output=True, text=True)
    assert ddp.returncode == 2 and "parallel=fsdp" in ddp.stderr


def test_lora_loads_into_a_diffusers_wan_pipeline(tiny_base, trained, torch_one_thread):
    from diffusers import WanPipeline

    from lfa.model.adapter import IdentityAdapter
    from lfa.wan.base import load_base
    from lfa.train.checkpoints import LORA_DIFFUSERS

    pipe = WanPipeline.from_pretrained(tiny_base, local_files_only=True)
    pipe.load_lora_weights(trained / "adapter", weight_name=LORA_DIFFUSERS)
    theirs = {n.replace(".default_0", ""): p for n, p in pipe.transformer.named_parameters() if "lora_" in n}
    ours_model = load_base(tiny_base, parts=("transformer",)).transformer
    IdentityAdapter.from_pretrained(trained / "adapter", ours_model)
    ours = {n.replace(".lfa_identity", ""): p for n, p in ours_model.named_parameters() if "lora_" in n}
    assert sorted(theirs) == sorted(ours) and len(ours) > 0
    assert all(torch.equal(theirs[k], ours[k]) for k in ours)
    assert any(float(p.detach().abs().max()) > 0 for k, p in ours.items() if "lora_B" in k)  # trained, not the zero init
    gen = torch.Generator().manual_seed(0)
    x, text = torch.randn(1, 4, 2, 4, 4, generator=gen), torch.randn(1, 8, 16, generator=gen)
    t = torch.tensor([500.0])
    with torch.no_grad():
        want = ours_model(x, t, text, return_dict=False)[0]  # no conditioning: backbone + LoRA only
        got = pipe.transformer(x, t, text, return_dict=False)[0]
    assert torch.allclose(got, want, atol=1e-6)


@pytest.fixture(scope="module")
def face_photo(tmp_path_factory):
    from lfa.media import write_image
    from lfa.samples import sample_photo

    path = tmp_path_factory.mktemp("faces") / "astronaut.png"
    write_image(path, sample_photo("astronaut"))
    return path


def test_generate_writes_the_video_and_reloading_gives_the_same_frames(tiny_base, trained, face_photo, analyzer,
                                                                      tmp_path, torch_one_thread):
    from lfa.generate.pipeline import GenerateOptions, IdentityGenerator, write_result
    from lfa.media import probe, read_frames, read_image

    image = read_image(face_photo)
    options = dict(prompt="a woman turns her head", steps=2, guidance_scale=4.0, id_guidance_scale=6.0, seed=3)
    first = IdentityGenerator(tiny_base, trained / "adapter", analyzer=analyzer)
    frames = first([image], GenerateOptions(**options))
    assert frames.shape == (5, 32, 32, 3) and frames.dtype == np.uint8
    assert first.latents.shape == (1, 4, 2, 4, 4)  # what the frames were decoded from (bench/identity_flow.py)
    assert np.array_equal(first._decode(first.latents), frames)
    out = write_result(frames, tmp_path / "v.mp4", first.resolve(GenerateOptions(**options)), {"x": 1})
    info = probe(out)
    assert (info.n_frames, info.width, info.height) == (5, 32, 32) and len(read_frames(out)) == 5
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["seed"] == 3 and sidecar["arguments"]["id_guidance_scale"] == 6.0
    again = IdentityGenerator(tiny_base, trained / "adapter", analyzer=analyzer)([image], GenerateOptions(**options))
    assert np.array_equal(frames, again)
    other = first([image], GenerateOptions(**{**options, "seed": 4}))
    assert not np.array_equal(frames, other)
    with pytest.raises(ConfigError, match="no face found"):
        first([np.zeros((64, 64, 3), np.uint8)], GenerateOptions(**options))


def test_the_face_projectors_run_once_per_video_and_id_scale_scales_the_lora(tiny_base, trained, face_photo,
                                                                             analyzer, torch_one_thread):
    from lfa.generate.pipeline import GenerateOptions, IdentityGenerator
    from lfa.media import read_image

    generator = IdentityGenerator(tiny_base, trained / "adapter", analyzer=analyzer)
    calls = {name: 0 for name in generator.adapter.projectors}
    for name, projector in generator.adapter.projectors.items():
        projector.register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    image = read_image(face_photo)
    generator([image], GenerateOptions(prompt="a face", steps=3, guidance_scale=4.0, id_guidance_scale=6.0, seed=1))
    assert len(calls) == 3 and all(n == 1 for n in calls.values()), calls  # not once per step and branch
    lora = [m for m in generator.wan.transformer.modules() if hasattr(m, "scaling") and m.scaling]
    assert lora
    generator.adapter.scale = 0.5
    assert all(abs(v * m.r[k] / m.lora_alpha[k] - 0.5) < 1e-9 for m in lora for k, v in m.scaling.items())
    generator.adapter.scale = 1.0


def test_generate_spec_then_bench(tiny_base, trained, face_photo, tmp_path):
    from typer.testing import CliRunner

    from lfa.cli import app

    spec = tmp_path / "spec.jsonl"
    spec.write_text(json.dumps({"id": "astro_1", "reference": str(face_photo), "prompt": "a woman"}) + "\n")
    videos = tmp_path / "videos"
    runner = CliRunner()
    done = runner.invoke(app, ["generate", "--base", str(tiny_base), "--adapter", str(trained / "adapter"),
                               "--spec", str(spec), "--out", str(videos), "--steps", "1"])
    assert done.exit_code == 0, done.output
    assert (videos / "astro_1.mp4").is_file() and (videos / "astro_1.json").is_file()
    scored = runner.invoke(app, ["bench", "--spec", str(spec), "--videos", f"tiny={videos}", "--out",
                                 str(tmp_path / "bench")])
    assert scored.exit_code == 0, scored.output


def test_i2v_base_trains_and_generates(tiny_base, tiny_run, trained, face_photo, analyzer, tmp_path, torch_one_thread):
    from safetensors.torch import load_file
    from typer.testing import CliRunner

    from lfa.cli import app
    from lfa.generate.pipeline import GenerateOptions, IdentityGenerator
    from lfa.media import read_image
    from lfa.wan.base import load_base
    from lfa.train.trainer import train

    base = tmp_path / "wan-i2v"
    done = CliRunner().invoke(app, ["model", "init", "--preset", "tiny-i2v", "--out", str(base)])
    assert done.exit_code == 0, done.output
    wan = load_base(base)
    assert wan.i2v and type(wan.pipeline()).__name__ == "WanImageToVideoPipeline"
    assert wan.transformer.config.in_channels == 2 * 4 + 4 and wan.image_encoder is not None
    with pytest.raises(ConfigError, match="512 text tokens"):
        train(base, tiny_run, tmp_path / "bad", load_config(wan.train_defaults, sets=["max_sequence_length=16"]))
    out = tmp_path / "train"
    config = load_config(wan.train_defaults, sets=["max_steps=2", "val_every=1", "checkpoint_every=100",
                                                   "lora_rank=4", "sample_every=2", "sample_steps=1"])
    train(base, tiny_run, out, config)
    shard = load_file(next((out / "cache").glob("*/*.safetensors")))
    condition = shard["condition"]  # frame mask (4) + first-frame latents (z = 4), 2 latent frames of 4x4
    assert condition.shape == (8, 2, 4, 4) and shard["image_embeds"].shape == (17, 8)
    assert bool((condition[:4, 0] == 1).all()) and bool((condition[:4, 1] == 0).all())
    rows = metrics(out)
    assert [r["step"] for r in rows] == [0, 1, 2] and all(np.isfinite(r["val_loss"]) for r in rows)
    assert (out / "samples" / "step-2.mp4").is_file()
    image = read_image(face_photo)
    options = dict(prompt="a woman turns her head", steps=2, seed=1)
    generator = IdentityGenerator(base, out / "adapter", analyzer=analyzer)
    frames = generator([image], GenerateOptions(**options))
    assert frames.shape == (5, 32, 32, 3)
    other = generator([image], GenerateOptions(**options), first_frame=np.full_like(image, 255))
    assert not np.array_equal(frames, other)  # the first frame conditions the video
    t2v = IdentityGenerator(tiny_base, trained / "adapter", analyzer=analyzer)
    with pytest.raises(ConfigError, match="needs an image-to-video or Wan2.2 TI2V base"):
        t2v([image], GenerateOptions(**options), first_frame=image)


def test_every_window_decodes_even_where_a_clip_ends_with_its_video(curated_corpus, tiny_base):
    """The README's recipe on the standard corpus stopped at `scene_cut.mp4: only 4 of 5 frames decode at
    5.500s`: a window whose last frame fell on the end of a clip that ends where its video ends."""
    from lfa.wan.base import load_base
    from lfa.train.cache import window_frames
    from lfa.train.data import build_samples

    config = load_config(load_base(tiny_base, parts=()).train_defaults)
    samples = build_samples(curated_corpus, config)
    last: dict[str, object] = {}
    for s in samples:
        last[s.clip_id] = max(last.get(s.clip_id, s), s, key=lambda x: x.start)
    assert any(s.clip_id.startswith("scene_cut") and s.start > 3 for s in last.values())  # the clip that failed
    for s in last.values():
        assert len(window_frames(s)) == s.num_frames, s.key


def test_launch_checks_the_batch_split_first_and_relays_a_process_error_once(tiny_base, tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lfa", "train", "--base", str(tiny_base), "--out",
                               str(tmp_path / "out"), "--launch", "2", *args], capture_output=True, text=True,
                              env={**lfa_env(), "LFA_HOME": str(tmp_path / "home")}, timeout=300)

    split = run("--data", str(tmp_path), "--set", "max_steps=1")  # batch_size 1 over 2 processes
    assert split.returncode == 2 and split.stderr.count("error:") == 1, split.stderr
    assert "batch_size 1 does not split over 2 process(es)" in split.stderr and "--set batch_size=2" in split.stderr
    child = run("--data", str(tmp_path / "nowhere"), "--set", "max_steps=1", "--set", "batch_size=2")
    assert child.returncode == 2, child.stderr
    assert child.stderr.count("error:") == 1 and "no manifest.parquet" in child.stderr, child.stderr
    assert "Traceback" not in child.stderr and "torch" not in child.stderr
