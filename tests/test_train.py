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
            "ema_decay=0.9"]
CLIP = "large_angle_astronaut.mp4"


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def lfa_env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    from lfa.train.base import init_tiny_base

    return init_tiny_base(tmp_path_factory.mktemp("base") / "wan-tiny")


@pytest.fixture(scope="module")
def tiny_run(corpus, tmp_path_factory):
    from lfa.curate.run import curate

    run = tmp_path_factory.mktemp("run")
    curate([corpus / CLIP], run, executor="local", workers=1, report=False)
    return run


@pytest.fixture(scope="module")
def trained(tiny_base, tiny_run, tmp_path_factory, torch_one_thread):
    from lfa.train.base import load_base
    from lfa.train.trainer import train

    out = tmp_path_factory.mktemp("train")
    config = load_config(load_base(tiny_base, parts=()).train_defaults, sets=SETTINGS)
    train(tiny_base, tiny_run, out, config)
    return out


def test_init_writes_a_loadable_wan_base_and_models_add_references_it(tiny_base, tmp_path):
    from lfa.registry import ModelStore
    from lfa.registry.directories import add_directory, directory_hash, resolve_directory, tree_hash
    from lfa.train.base import load_base

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


def test_samples_have_cross_pose_references_and_the_cache_resumes(tiny_base, tiny_run, trained):
    from safetensors.torch import load_file

    from lfa.train.base import load_base
    from lfa.train.trainer import prepare_cache

    config = load_config(load_base(tiny_base, parts=()).train_defaults, sets=SETTINGS)
    done: list[bool] = []
    samples, folder, _, _ = prepare_cache(tiny_base, tiny_run, trained, config, on_sample=lambda s, new: done.append(new))
    assert len(samples) >= 4 and not any(done)  # every shard already there
    for s in samples:
        assert (s.num_frames - 1) % 4 == 0 and s.bucket == (32, 32)
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


def test_sigkill_after_step_15_then_resume_gives_the_same_losses(tiny_base, tiny_run, trained, tmp_path,
                                                                 torch_one_thread):
    from lfa.train.base import load_base
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


def test_ddp_two_cpu_processes_equal_one_process(tiny_base, tiny_run, trained, tmp_path, torch_one_thread):
    from lfa.train.base import load_base
    from lfa.train.trainer import train

    settings = ["max_steps=2", "batch_size=2", "val_every=100", "checkpoint_every=100", "learning_rate=1e-3",
                "adapter_preset=mofe"]
    outs = {n: tmp_path / f"ddp{n}" for n in (1, 2)}
    for out in outs.values():
        out.mkdir()
        shutil.copytree(trained / "cache", out / "cache")
    cmd = [sys.executable, "-m", "lfa", "train", "--base", str(tiny_base), "--data", str(tiny_run),
           "--out", str(outs[2]), "--launch", "2", *[x for s in settings for x in ("--set", s)]]
    done = subprocess.run(cmd, env=lfa_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    train(tiny_base, tiny_run, outs[1], load_config(load_base(tiny_base, parts=()).train_defaults, sets=settings))
    losses = {n: [r["loss"] for r in metrics(out) if "loss" in r] for n, out in outs.items()}
    assert len(losses[1]) == 2
    assert np.allclose(losses[2], losses[1], rtol=1e-5, atol=0), losses


def test_lora_loads_into_a_diffusers_wan_pipeline(tiny_base, trained, torch_one_thread):
    from diffusers import WanPipeline

    from lfa.model.adapter import IdentityAdapter
    from lfa.train.base import load_base
    from lfa.train.trainer import LORA_DIFFUSERS

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
