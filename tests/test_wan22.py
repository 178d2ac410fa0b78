"""Wan2.2 bases on tiny random weights: TI2V (per-token timesteps, a clean first frame) and the two-expert
A14B (each expert trained on its own noise range, sampled with both, its LoRA files loadable by diffusers),
plus the real configs' parameter counts, and the Wan2.1 paths' results recorded before the change."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lfa.cli import app
from lfa.errors import ConfigError
from tests.wan_reference import CASES, DATA, compute

FAST = ["max_steps=4", "checkpoint_every=2", "val_every=100", "tensorboard=false", "lora_rank=4", "val_samples=1",
        "val_noise_draws=1"]


def sets(*items: str) -> list[str]:
    return [x for s in (*FAST, *items) for x in ("--set", s)]


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("case", sorted(CASES))
def test_wan21_paths_give_the_results_recorded_before_wan22(case, torch_one_thread):
    want, got = json.loads(DATA.read_text())[case], compute(case)
    assert np.allclose(got["losses"], want["losses"], rtol=1e-5, atol=0), (got["losses"], want["losses"])
    assert np.allclose(got["latents"], want["latents"], rtol=0, atol=1e-4)
    assert got["frames_shape"] == want["frames_shape"] and abs(got["frames_mean"] - want["frames_mean"]) < 0.05


def init_base(preset: str, folder: Path) -> Path:
    """``lfa model init --preset PRESET`` into ``folder``/base."""
    done = CliRunner().invoke(app, ["model", "init", "--preset", preset, "--out", str(folder / "base")])
    assert done.exit_code == 0, done.output
    return folder / "base"


@pytest.fixture(scope="module")
def ti2v_base(tmp_path_factory) -> Path:
    return init_base("tiny-wan2.2-ti2v", tmp_path_factory.mktemp("ti2v"))


@pytest.fixture(scope="module")
def a14b_base(tmp_path_factory) -> Path:
    return init_base("tiny-wan2.2-a14b", tmp_path_factory.mktemp("a14b"))


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    from lfa.media import write_image
    from lfa.samples import sample_photo

    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    write_image(path, sample_photo("astronaut"))
    return path


def test_ti2v_first_frame_is_clean_and_out_of_the_loss(ti2v_base, torch_one_thread):
    from lfa.model.adapter import IdentityAdapter
    from lfa.model.toy import toy_adapter_config
    from lfa.model.training import IdentityTrainingModule, TrainingBatch
    from lfa.wan.base import load_base

    wan = load_base(ti2v_base, parts=("transformer",))
    assert wan.expand_timesteps and wan.vae_spatial == 16 and wan.size_multiple == 32
    module = IdentityTrainingModule(IdentityAdapter.attach(wan.transformer, toy_adapter_config(
        adapter_preset="mv2id", lora_rank=0, reference_dropout=0.0))).eval()
    g = torch.Generator().manual_seed(0)
    latents, text = torch.randn(2, 8, 2, 4, 4, generator=g), torch.randn(2, 16, 16, generator=g)
    refs, noise = torch.randn(2, 8, 1, 4, 4, generator=g), torch.randn(2, 8, 2, 4, 4, generator=g)
    other = noise.clone()
    other[:, :, 0] += 1.0  # another draw of the first frame's noise

    def loss(first: bool, n: torch.Tensor) -> float:
        batch = TrainingBatch(latents, text, references=refs, noise=n, sigmas=torch.tensor([0.5, 0.9]),
                              first_frame=torch.tensor([first, first]))
        return float(module(batch).loss)

    assert loss(True, noise) == loss(True, other)  # the clean frame ignores its noise and is not scored
    assert loss(False, noise) != loss(False, other)


def test_ti2v_base_trains_and_generates_from_text_and_from_a_first_frame(ti2v_base, two_people, photo, tmp_path,
                                                                           analyzer, torch_one_thread):
    from lfa.generate.pipeline import GenerateOptions, IdentityGenerator
    from lfa.media import read_frames, read_image
    from lfa.model.vae import encode_images
    from lfa.wan.frames import fit_to_bucket, to_video_tensor

    out = tmp_path / "out"
    done = CliRunner().invoke(app, ["train", "--base", str(ti2v_base), "--data", str(two_people), "--out", str(out),
                                    *sets("first_frame_ratio=1.0")])
    assert done.exit_code == 0, done.output
    assert len([r for r in metrics(out) if "loss" in r]) == 4 and (out / "adapter" / "lfa_adapter.safetensors").is_file()
    for image in (None, photo):
        video = tmp_path / f"video-{image is not None}.mp4"
        args = ["generate", "--base", str(ti2v_base), "--adapter", str(out / "adapter"), "--face", str(photo),
                "--prompt", "a person turns", "--out", str(video), "--steps", "3"]
        done = CliRunner().invoke(app, args + (["--image", str(image)] if image else []))
        assert done.exit_code == 0, done.output
        frames = read_frames(video)
        assert len(frames) == 5 and frames[0].image.shape == (64, 64, 3)
    generator = IdentityGenerator(ti2v_base, out / "adapter", analyzer=analyzer)
    picture = read_image(photo)
    generator([picture], GenerateOptions(prompt="a face", steps=2), first_frame=picture)
    first = encode_images(generator.wan.vae, to_video_tensor([fit_to_bucket(picture, 64, 64)])[:, 0][None])
    assert torch.allclose(generator.latents[:, :, :1], first[:, :, :1].cpu(), atol=1e-5)  # kept clean to the end
    with pytest.raises(ConfigError, match="multiples of 32"):
        generator([picture], GenerateOptions(prompt="a face", steps=1, height=48, width=64))


@pytest.fixture(scope="module")
def a14b_run(a14b_base, two_people, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("a14b-run")
    torch.set_num_threads(1)
    done = CliRunner().invoke(app, ["train", "--base", str(a14b_base), "--data", str(two_people), "--out", str(out),
                                    *sets()])
    assert done.exit_code == 0, done.output
    return out


def test_a14b_trains_each_expert_on_its_own_noise_range(a14b_base, a14b_run, two_people, tmp_path):
    steps = [r for r in metrics(a14b_run) if "loss" in r]
    assert [r["expert"] for r in steps] == ["high", "high", "low", "low"]
    assert all(r["sigma_min"] >= 0.875 for r in steps[:2]) and all(r["sigma_max"] < 0.875 for r in steps[2:])
    for name in ("transformer", "transformer_2"):
        assert (a14b_run / "adapter" / name / "pytorch_lora_weights.safetensors").is_file()
    assert json.loads((a14b_run / "checkpoint-2" / "state.json").read_text())["expert"] == "high"
    one = tmp_path / "low-only"
    done = CliRunner().invoke(app, ["train", "--base", str(a14b_base), "--data", str(two_people), "--out", str(one),
                                    *sets("wan_expert=low", "max_steps=1")])
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in (one / "adapter").iterdir()) == ["transformer_2"]
    assert all(r["sigma_max"] < 0.875 for r in metrics(one) if "loss" in r)


def test_a14b_samples_with_both_experts_and_their_own_guidance(a14b_base, a14b_run, photo, analyzer, tmp_path):
    from lfa.generate.pipeline import GenerateOptions, IdentityGenerator
    from lfa.media import read_image

    generator = IdentityGenerator(a14b_base, a14b_run / "adapter", analyzer=analyzer)
    assert sorted(generator.adapters) == ["transformer", "transformer_2"]
    order: list[str] = []
    for name in ("transformer", "transformer_2"):
        getattr(generator.wan, name).register_forward_hook(lambda *_, n=name: order.append(n))
    picture = read_image(photo)
    frames = generator([picture], GenerateOptions(prompt="a face", steps=4, seed=3))
    assert frames.shape == (5, 32, 32, 3)
    assert "transformer" in order and "transformer_2" in order
    assert order.index("transformer_2") > max(i for i, n in enumerate(order) if n == "transformer")  # high first
    base = generator.latents.clone()
    generator([picture], GenerateOptions(prompt="a face", steps=4, seed=3, guidance_scale_2=1.0))
    assert not torch.allclose(base, generator.latents)  # the low-noise stage's own guidance


def test_a14b_lora_files_load_into_diffusers_and_give_lfas_output(a14b_base, a14b_run, torch_one_thread):
    from diffusers import WanPipeline

    from lfa.model.adapter import IdentityAdapter
    from lfa.train.checkpoints import LORA_DIFFUSERS
    from lfa.wan.base import load_base

    pipe = WanPipeline.from_pretrained(a14b_base, local_files_only=True)
    assert pipe.transformer_2 is not None and pipe.config.boundary_ratio == 0.875
    folder = a14b_run / "adapter"
    pipe.load_lora_weights(folder / "transformer", weight_name=LORA_DIFFUSERS)
    pipe.load_lora_weights(folder / "transformer_2", weight_name=LORA_DIFFUSERS, load_into_transformer_2=True)
    wan = load_base(a14b_base, parts=("transformer", "transformer_2"))
    g = torch.Generator().manual_seed(0)
    x, text = torch.randn(1, 4, 2, 4, 4, generator=g), torch.randn(1, 16, 16, generator=g)
    t = torch.tensor([900.0])
    for name in ("transformer", "transformer_2"):
        IdentityAdapter.from_pretrained(folder / name, getattr(wan, name))  # no faces given: the LoRA alone acts
        with torch.no_grad():
            ours = getattr(wan, name)(x, t, text, return_dict=False)[0]
            theirs = getattr(pipe, name)(x, t, text, return_dict=False)[0]
            plain = getattr(load_base(a14b_base, parts=(name,)), name)(x, t, text, return_dict=False)[0]
        assert torch.allclose(ours, theirs, atol=1e-5), name
        assert not torch.allclose(ours, plain, atol=1e-5), name  # the trained LoRA changes the expert


def test_wan_expert_needs_a_two_expert_base(tiny_base, two_people, tmp_path):
    done = CliRunner().invoke(app, ["train", "--base", str(tiny_base), "--data", str(two_people), "--out",
                                    str(tmp_path / "x"), *sets("wan_expert=high")])
    assert isinstance(done.exception, ConfigError) and "two-expert base" in str(done.exception)
    assert not (tmp_path / "x" / "cache").exists()  # refused before any cache is built


def test_describe_counts_wan22_backbones():
    counts = {}
    for preset in ("wan2.2-ti2v-5b", "wan2.2-t2v-a14b", "wan2.2-i2v-a14b"):
        done = CliRunner().invoke(app, ["model", "describe", "--preset", preset, "--json"])
        assert done.exit_code == 0, done.output
        counts[preset] = json.loads(done.output)
    assert 4.5e9 < counts["wan2.2-ti2v-5b"]["backbone_params"] < 5.5e9
    for preset in ("wan2.2-t2v-a14b", "wan2.2-i2v-a14b"):
        result = counts[preset]
        assert result["experts"] == 2 and 13.5e9 < result["per_expert"]["backbone_params"] < 15e9
        assert result["backbone_params"] == 2 * result["per_expert"]["backbone_params"]
    assert counts["wan2.2-i2v-a14b"]["backbone"]["image_to_video"]
