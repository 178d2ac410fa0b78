"""IdentityAdapter on toy Wan transformers built here (random weights, no downloads)."""

from __future__ import annotations

import pytest
import torch
from diffusers import WanTransformer3DModel
from diffusers.models.transformers.transformer_wan import WanAttnProcessor, WanRotaryPosEmbed

from lfa.errors import ConfigError
from lfa.model import ConditionedRope, FaceCrossAttnProcessor, IdentityAdapter
from lfa.model.lora import target_regex
from lfa.model.toy import TOY_TEXT_LEN, random_features, toy_adapter_config, toy_backbone_config

B, F, H, W = 2, 3, 8, 8  # latent video: frames, height, width (patch 2 -> 4x4 tokens per frame)
Z = 4  # latent channels


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def full_config(**changes):
    """Every mechanism on at toy widths: experts + gate + aligner + Mv²ID references."""
    return toy_adapter_config(**{"aligner": True, "references": "mv2id", "gate_per_block": False, **changes})


def make_backbone(i2v: bool = False, seed: int = 0) -> WanTransformer3DModel:
    torch.manual_seed(seed)
    return WanTransformer3DModel(**toy_backbone_config(i2v=i2v)).eval()


def make_inputs(transformer: WanTransformer3DModel, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    cfg = transformer.config
    inputs = {
        "hidden_states": torch.randn(B, cfg.in_channels, F, H, W, generator=g),
        "timestep": torch.tensor([700.0, 250.0]),
        "encoder_hidden_states": torch.randn(B, TOY_TEXT_LEN if cfg.image_dim else 7, cfg.text_dim, generator=g),
    }
    if cfg.image_dim:
        inputs["encoder_hidden_states_image"] = torch.randn(B, 4, cfg.image_dim, generator=g)
    return inputs


def features(config, seed: int = 2):
    generator = torch.Generator().manual_seed(seed)
    return random_features(config, B, detail_dim=Z * config.detail_patch**2, generator=generator)


def record_input(module: torch.nn.Module, seen: dict) -> None:
    """Keep a copy of the first positional input of every call of ``module``."""
    module.register_forward_pre_hook(lambda m, args: seen.__setitem__("x", args[0].clone()))


def references(k: int = 2, seed: int = 3) -> torch.Tensor:
    return torch.randn(B, Z, k, H, W, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("i2v", [False, True], ids=["t2v", "i2v"])
@pytest.mark.parametrize("gate", [dict(), dict(gate_granularity="token"), dict(gate_per_block=True, every_k_blocks=2),
                                  dict(gate=False, aligner=False), dict(lora_rank=4)],
                         ids=["sample", "token", "per-block", "no-gate", "lora"])
def test_backbone_output_unchanged_at_init(i2v, gate):
    transformer = make_backbone(i2v)
    inputs = make_inputs(transformer)
    with torch.no_grad():
        bare = transformer(**inputs).sample
        config = full_config(**gate)
        adapter = IdentityAdapter.attach(transformer, config)
        out = adapter(**inputs, faces=features(config))
        plain_call = transformer(**inputs).sample  # no conditioning active: the backbone as it was
    assert torch.equal(out.sample, bare)
    assert torch.equal(plain_call, bare)
    if config.gated:
        assert out.gate_weights is not None
    assert isinstance(transformer.blocks[0].attn2.processor, FaceCrossAttnProcessor)


@pytest.mark.parametrize("granularity,per_block",
                         [("sample", False), ("token", False), ("sample", True), ("token", True)])
def test_gate_weights_sum_to_one_with_granularity_shape(granularity, per_block):
    transformer = make_backbone()
    config = full_config(gate_granularity=granularity, gate_per_block=per_block)
    adapter = IdentityAdapter.attach(transformer, config)
    with torch.no_grad():
        out = adapter(**make_inputs(transformer), faces=features(config))
    weights = out.gate_weights
    if per_block:
        assert isinstance(weights, dict) and sorted(weights) == adapter.face_blocks
    else:
        weights = {"shared": weights}
    expected = (B, 3) if granularity == "sample" else (B, config.num_queries, 3)
    for w in weights.values():
        assert tuple(w.shape) == expected
        torch.testing.assert_close(w.sum(-1), torch.ones(expected[:-1]))
        assert (w > 0).all()
    assert out.balance_loss is None  # off by default: one batch's usage says nothing about balance
    assert adapter.last_report.gate_weights is out.gate_weights


def test_gate_depends_on_timestep_when_configured():
    transformer = make_backbone()
    config = full_config()
    adapter = IdentityAdapter.attach(transformer, config)
    for gate in adapter.gates.values():  # a non-trivial gate, as after training
        torch.nn.init.normal_(gate.net[2].weight, std=1.0)
    inputs, feats = make_inputs(transformer), features(config)
    with torch.no_grad():
        early = adapter(**{**inputs, "timestep": torch.tensor([900.0, 900.0])}, faces=feats).gate_weights
        late = adapter(**{**inputs, "timestep": torch.tensor([50.0, 50.0])}, faces=feats).gate_weights
    assert not torch.allclose(early, late)


def test_gradients_reach_every_trainable_module_and_no_frozen_one():
    transformer = make_backbone(i2v=True)
    config = full_config(lora_rank=4, every_k_blocks=1, min_pose_difference=0.0)
    adapter = IdentityAdapter.attach(transformer, config).train()
    groups = adapter.parameter_groups()
    assert {g["name"].split(".")[0] for g in groups} == {"projectors", "gates", "face_attention", "aligner", "lora"}
    trainable = {id(p) for g in groups for p in g["params"]}
    optimizer = torch.optim.Adam(groups, lr=1e-2)
    inputs, feats, refs = make_inputs(transformer), features(config), references()
    target = torch.randn(B, Z, F, H, W)
    # Zero-initialised face keys/values (and LoRA B) pass gradients on one optimiser step at a time:
    # by the third step every trainable tensor must see a gradient.
    for _ in range(3):
        optimizer.zero_grad()
        out = adapter(**inputs, faces=feats, references=refs)
        loss = torch.nn.functional.mse_loss(out.sample, target)
        loss = loss + adapter.identity_alignment_loss(feats, features(config, seed=5))
        loss.backward()
        optimizer.step()
    named = dict(adapter.named_parameters())
    named.update({f"transformer.{n}": p for n, p in transformer.named_parameters()})
    no_grad = [n for n, p in named.items() if id(p) in trainable and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not no_grad, f"trainable parameters without gradient: {no_grad}"
    leaked = [n for n, p in named.items() if id(p) not in trainable and (p.requires_grad or p.grad is not None)]
    assert not leaked, f"frozen parameters with gradient: {leaked}"


def test_frozen_encoders_get_no_gradient():
    from lfa.model import FaceInputs
    from lfa.model.encoders import EmbeddingIdentityEncoder, VaeDetailEncoder, VisionTowerEncoder
    from tests.test_model_encoders import tiny_clip, tiny_vae

    transformer = make_backbone()
    config = full_config(semantic_dim=32)
    encoders = [EmbeddingIdentityEncoder(8), VisionTowerEncoder(tiny_clip(hidden=32)),
                VaeDetailEncoder(tiny_vae(), patch=2, size=32)]
    adapter = IdentityAdapter.attach(transformer, config, encoders=encoders).train()
    for module in adapter.face_attention.values():  # as after some training: face keys/values non-zero
        for p in module.parameters():
            torch.nn.init.normal_(p, std=0.1)
    faces = FaceInputs(torch.rand(B, 3, 48, 48), torch.zeros(B, 3), torch.randn(B, 8))
    out = adapter(**make_inputs(transformer), faces=faces)
    out.sample.square().mean().backward()
    bound = list(adapter.encoders.values())
    assert all(p.grad is None and not p.requires_grad for e in bound for p in e.parameters())
    assert not any(m.training for e in bound for m in e.modules())
    # frozen encoders are not the adapter's state, nor cast with it
    assert not any(k.startswith(("encoders.", "_encoders.")) for k in adapter.state_dict())
    adapter.to(torch.float64)
    assert all(p.dtype == torch.float32 for e in bound for p in e.parameters())
    assert all(p.grad is not None for p in adapter.projectors.parameters())


def test_references_cropped_from_output_and_modulated_at_timestep_zero():
    transformer = make_backbone()
    config = full_config()
    adapter = IdentityAdapter.attach(transformer, config).eval()
    seen = {}
    record_input(transformer.condition_embedder, seen)
    inputs, k = make_inputs(transformer), 2
    with torch.no_grad():
        without = adapter(**inputs).sample
        out = adapter(**inputs, faces=features(config), references=references(k)).sample
        other = adapter(**inputs, faces=features(config), references=references(k, seed=9)).sample
    assert out.shape == without.shape == (B, Z, F, H, W)  # a loss on the output never sees reference tokens
    assert not torch.allclose(out, other)  # the references are attended to
    assert seen["x"].shape == (B,)  # per-sample timesteps reach the backbone: no (B, S, 6, D) modulation
    # Per-segment modulation computes what per-token timesteps (video t, references 0) compute.
    tokens_per_frame = (H // 2) * (W // 2)
    per_token = inputs["timestep"][:, None].expand(B, F * tokens_per_frame)
    with torch.no_grad():
        reference = adapter(**{**inputs, "timestep": per_token}, faces=features(config),
                            references=references(k)).sample
    assert seen["x"].shape == (B * (F + k) * tokens_per_frame,)
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5)
    assert isinstance(transformer.rope, ConditionedRope)


def test_i2v_reference_frames_fill_condition_channels():
    transformer = make_backbone(i2v=True)
    adapter = IdentityAdapter.attach(transformer, full_config()).eval()
    seen = {}
    record_input(transformer.patch_embedding, seen)
    refs = references(1)
    with torch.no_grad():
        adapter(**make_inputs(transformer), references=refs)
    ref_frame = seen["x"][:, :, F:]
    assert ref_frame.shape[1] == transformer.config.in_channels
    torch.testing.assert_close(ref_frame[:, :Z], refs)
    assert (ref_frame[:, Z:-Z] == 1).all()
    torch.testing.assert_close(ref_frame[:, -Z:], refs)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_region_masking_only_in_training(training):
    transformer = make_backbone()
    adapter = IdentityAdapter.attach(transformer, full_config(mask_ratio=0.5, mask_region=1))
    adapter.train(training)
    seen = {}
    record_input(transformer.patch_embedding, seen)
    refs = references(3) + 5.0  # no exact zeros of its own
    torch.manual_seed(0)
    with torch.no_grad():
        adapter(**make_inputs(transformer), references=refs)
    got = seen["x"][:, :, F:]
    if training:
        zero = got == 0
        assert 0.2 < zero.float().mean() < 0.8
        # whole 2x2-latent-pixel squares (one patch) are masked, across all channels
        squares = zero.reshape(B, Z, 3, H // 2, 2, W // 2, 2)
        assert (squares.all(dim=(1, 4, 6)) == squares.any(dim=(1, 4, 6))).all()
        torch.testing.assert_close(got[~zero], refs[~zero])
    else:
        torch.testing.assert_close(got, refs)


def _rope_table(rope: WanRotaryPosEmbed, t: int, h: int, w: int) -> torch.Tensor:
    parts = rope.freqs_cos.split([rope.t_dim, rope.h_dim, rope.w_dim], dim=1)
    return torch.cat([parts[0][t], parts[1][h], parts[2][w]])


@pytest.mark.parametrize("layout", ["mv2id", "standin", "vanilla"])
def test_rope_places_references_without_overlap(layout):
    from lfa.model.references import reference_positions, video_positions

    k, f, h, w = 3, F, H // 2, W // 2
    video, refs = video_positions(f, h, w), reference_positions(layout, f, h, w, k)
    everything = torch.cat([video, refs])
    assert len({tuple(p) for p in everything.tolist()}) == len(everything)  # no two tokens share a position
    per_ref = refs.reshape(k, h * w, 3)
    for i in range(k):
        t, hh, ww = per_ref[i, :, 0], per_ref[i, :, 1], per_ref[i, :, 2]
        if layout == "mv2id":  # one step past the last frame, offset by (kH, kW)
            assert (t == f).all() and hh.min() == (i + 1) * h and ww.min() == (i + 1) * w
        elif layout == "standin":  # one step before the first frame, offset by (kH, kW)
            assert (t == -1).all() and hh.min() == (i + 1) * h and ww.min() == (i + 1) * w
        else:  # extra frames on the same grid
            assert (t == f + i).all() and hh.min() == 0 and ww.min() == 0
        assert hh.max() - hh.min() == h - 1 and ww.max() - ww.min() == w - 1

    transformer = make_backbone()
    IdentityAdapter.attach(transformer, full_config(references=layout))
    rope = transformer.rope
    base = rope.base
    cos, sin = rope.rotary(refs)
    assert cos.dtype == base.freqs_cos.dtype  # the base rope's own precision, nothing forced
    # the rotation of a reference token is the rotation of its (t, h, w) position
    for index in (0, h * w + 5, 2 * h * w + h * w - 1):
        t, hh, ww = refs[index].tolist()
        torch.testing.assert_close(cos[0, index, 0], _rope_table(base, abs(t), hh, ww))
        if t < 0:  # sin(-x) = -sin(x) on the time channels
            assert torch.equal(sin[0, index, 0, : base.t_dim], -base.freqs_sin[1, : base.t_dim])
    torch.testing.assert_close(cos.square() + sin.square(), torch.ones_like(cos))
    base.freqs_cos, base.freqs_sin = base.freqs_cos.float(), base.freqs_sin.float()  # as Wan builds it on MPS
    assert rope.rotary(refs)[0].dtype == torch.float32


def test_info_nce_falls_on_toy_pairs():
    from lfa.model import FaceFeatures

    torch.manual_seed(0)
    transformer = make_backbone()
    config = full_config(gate=False, semantic_expert=False, detail_expert=False, min_pose_difference=0.0)
    adapter = IdentityAdapter.attach(transformer, config).train()
    people = torch.nn.functional.normalize(torch.randn(16, 8), dim=-1)

    def view() -> FaceFeatures:  # the same 16 people in another pose: embedding drifts, angles differ
        tokens = torch.nn.functional.normalize(people + 0.1 * torch.randn(16, 8), dim=-1)[:, None]
        return FaceFeatures({"identity": tokens}, (torch.rand(16, 3) - 0.5) * torch.tensor([160.0, 60.0, 40.0]))

    held_out = [(view(), view()) for _ in range(4)]

    def held_out_loss() -> float:
        with torch.no_grad():
            return sum(adapter.identity_alignment_loss(a, b).item() for a, b in held_out) / len(held_out)

    before = held_out_loss()
    params = [p for g in adapter.parameter_groups() if g["name"].split(".")[0] in ("projectors", "aligner")
              for p in g["params"]]
    optimizer = torch.optim.Adam(params, lr=3e-3)
    for _ in range(60):
        optimizer.zero_grad()
        adapter.identity_alignment_loss(view(), view()).backward()
        optimizer.step()
    after = held_out_loss()
    assert after < 0.5 * before, (before, after)
    assert adapter.aligner.temperature != pytest.approx(0.07)  # the temperature is learnt


def test_aligner_initial_temperature_and_dictionary_size():
    transformer = make_backbone()
    adapter = IdentityAdapter.attach(transformer, full_config(dictionary_size=4096))
    assert adapter.aligner.dictionary.shape == (4096, transformer.config.num_attention_heads * 16)
    assert abs(adapter.aligner.temperature - 0.07) < 1e-6


def test_lora_and_adapter_save_load_identical_outputs(tmp_path):
    config = full_config(lora_rank=4, gate_per_block=True, gate_granularity="token")
    transformer = make_backbone(i2v=True, seed=0)
    adapter = IdentityAdapter.attach(transformer, config).eval()
    torch.manual_seed(7)
    for group in adapter.parameter_groups():  # a trained-looking state: nothing left at its init value
        for p in group["params"]:
            p.data.normal_(0.0, 0.2)
    inputs, feats, refs = make_inputs(transformer), features(config), references(2)
    with torch.no_grad():
        before = adapter(**inputs, faces=feats, references=refs).sample
    adapter.save_pretrained(tmp_path / "adapter")

    fresh = make_backbone(i2v=True, seed=0)
    loaded = IdentityAdapter.from_pretrained(tmp_path / "adapter", fresh).eval()
    assert loaded.config == config
    with torch.no_grad():
        after = loaded(**inputs, faces=feats, references=refs).sample
    assert torch.equal(before, after)

    from safetensors import safe_open

    with safe_open(str(tmp_path / "adapter" / "lfa_adapter.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert any(k.startswith("lora.") for k in keys) and any(k.startswith("face_attention.") for k in keys)
    assert not any(k.startswith("encoders.") for k in keys)


def test_lora_targets_only_backbone_attention():
    import re

    transformer = make_backbone()
    IdentityAdapter.attach(transformer, full_config(lora_rank=2))
    wrapped = sorted({n.rsplit(".lora_", 1)[0] for n, _ in transformer.named_parameters() if ".lora_" in n})
    assert wrapped == [f"blocks.{i}.{a}.{m}" for i in range(2) for a in ("attn1", "attn2")
                       for m in ("to_k", "to_out.0", "to_q", "to_v")]
    pattern = target_regex(("attn1", "attn2", "ffn"))
    adapter_layers = ("face_attention.0.face_k.up", "blocks.0.attn2.processor.face_v",
                      "projectors.identity.layers.0.0.q_proj")
    for name in adapter_layers:
        assert not re.fullmatch(pattern, name)


def test_detach_restores_the_backbone():
    transformer = make_backbone()
    inputs = make_inputs(transformer)
    with torch.no_grad():
        bare = transformer(**inputs).sample
    adapter = IdentityAdapter.attach(transformer, full_config(lora_rank=2))
    adapter.detach()
    assert all(isinstance(b.attn2.processor, WanAttnProcessor) for b in transformer.blocks)
    assert isinstance(transformer.rope, WanRotaryPosEmbed)
    assert not any("forward" in b.__dict__ for b in transformer.blocks)
    assert not any(".lora_" in n for n, _ in transformer.named_parameters())
    with torch.no_grad():
        assert torch.equal(transformer(**inputs).sample, bare)
    IdentityAdapter.attach(transformer, full_config())  # attachable again


def test_errors_are_config_errors():
    transformer = make_backbone()
    config = full_config()
    adapter = IdentityAdapter.attach(transformer, config)
    with pytest.raises(ConfigError, match="already has"):
        IdentityAdapter.attach(transformer, config)
    inputs = make_inputs(transformer)
    bad = features(config)
    bad.tokens["semantic"] = torch.randn(B, 3, 5)
    with pytest.raises(ConfigError, match="semantic features"):
        adapter(**inputs, faces=bad)
    with pytest.raises(ConfigError, match="reference latents are"):
        adapter(**inputs, references=torch.randn(B, Z, 1, H * 2, W))
    with pytest.raises(ConfigError, match="no encoder bound"):
        from lfa.model import FaceInputs

        adapter(**inputs, faces=FaceInputs(torch.rand(B, 3, 32, 32)))
    other = make_backbone()
    no_refs = IdentityAdapter.attach(other, full_config(references="none"))
    with pytest.raises(ConfigError, match="references='none'"):
        no_refs(**make_inputs(other), references=references(1))


def test_sampling_projects_faces_once_per_conditioning():
    transformer = make_backbone()
    config = full_config()
    adapter = IdentityAdapter.attach(transformer, config).eval()
    calls = []
    adapter.projectors["identity"].register_forward_hook(lambda m, a, o: calls.append(1))
    inputs, feats = make_inputs(transformer), features(config)
    with torch.no_grad(), adapter.conditioning(faces=feats):
        first = transformer(**inputs).sample
        second = transformer(**{**inputs, "timestep": torch.tensor([600.0, 200.0])}).sample
        again = transformer(**inputs).sample
    assert len(calls) == 1 and torch.equal(first, again) and not torch.equal(first, second)
    adapter(**inputs, faces=feats)  # with autograd: projected at every forward
    adapter(**inputs, faces=feats)
    assert len(calls) == 3
