"""Training-readiness of lfa.model on toy Wan transformers: exact checkpointing, fp32 masters, state,
activation memory, the four adapter presets, dropout/padding/guidance, and the training module."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers import WanTransformer3DModel

from lfa.errors import ConfigError
from lfa.model import FaceFeatures, IdentityAdapter, IdentityTrainingModule, TrainingBatch
from lfa.model.flow import FlowMatchingConfig, add_noise, sample_sigmas, shift_sigmas, timesteps
from lfa.model.gate import UsageBalance
from lfa.model.memory import saved_activation_bytes
from lfa.model.toy import random_features, toy_adapter_config, toy_backbone_config

B, F, H, W, Z = 2, 3, 8, 8, 4
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def backbone(i2v: bool = False, seed: int = 0) -> WanTransformer3DModel:
    torch.manual_seed(seed)
    return WanTransformer3DModel(**toy_backbone_config(i2v=i2v)).eval()


def feats(config, seed: int = 2, batch: int = B) -> FaceFeatures:
    return random_features(config, batch, detail_dim=Z * config.detail_patch**2,
                           generator=torch.Generator().manual_seed(seed))


def refs(k: int = 2, seed: int = 3) -> torch.Tensor:
    return torch.randn(B, Z, k, H, W, generator=torch.Generator().manual_seed(seed))


def inputs(transformer, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    cfg = transformer.config
    return {"hidden_states": torch.randn(B, cfg.in_channels, F, H, W, generator=g),
            "timestep": torch.tensor([700.0, 250.0]),
            "encoder_hidden_states": torch.randn(B, 7, cfg.text_dim, generator=g)}


def trained_looking(adapter: IdentityAdapter, seed: int = 7, std: float = 0.1) -> None:
    """Non-zero face key/values and LoRA B (as after some training), so every path carries gradient."""
    torch.manual_seed(seed)
    for p in adapter.face_attention.parameters():
        torch.nn.init.normal_(p, std=std)
    for name, p in adapter.transformer.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=std)


def test_gradient_checkpointing_gives_the_same_adapter_gradients():
    """Two conditioned forwards (different faces, references) + a plain forward, then one backward."""
    config = toy_adapter_config(references="mv2id", aligner=True, lora_rank=2)
    grads = []
    for checkpointing in (False, True):
        transformer = backbone()
        if checkpointing:
            transformer.enable_gradient_checkpointing()
        torch.manual_seed(100)  # the same adapter and LoRA initialisation in both runs
        adapter = IdentityAdapter.attach(transformer, config).train()
        trained_looking(adapter)
        x = inputs(transformer)
        torch.manual_seed(5)  # the same region masks in both runs
        a = adapter(**x, faces=feats(config, seed=2), references=refs(2)).sample
        b = adapter(**x, faces=feats(config, seed=4), references=refs(1, seed=6)).sample
        c = transformer(**x).sample
        (a.square().mean() + (b - a.detach()).abs().mean() + c.square().mean()).backward()
        params = dict(adapter.named_parameters())
        params.update({n: p for n, p in transformer.named_parameters() if p.requires_grad})
        grads.append({n: p.grad.clone() for n, p in params.items() if p.grad is not None})
    plain, checkpointed = grads
    assert plain.keys() == checkpointed.keys() and len(plain) > 20
    for name, g in plain.items():
        rel = (checkpointed[name] - g).norm() / g.norm().clamp_min(1e-30)
        assert rel <= 1e-5, (name, float(rel))


def _bf16_like_from_pretrained(transformer: WanTransformer3DModel) -> WanTransformer3DModel:
    out = copy.deepcopy(transformer).to(torch.bfloat16)
    for name, module in out.named_modules():
        if set(name.split(".")) & set(out._keep_in_fp32_modules):
            module.float()
    return out


def test_bf16_backbone_keeps_fp32_masters_that_move_like_fp32():
    config = toy_adapter_config(lora_rank=4, face_dropout=0.0, reference_dropout=0.0)
    fp32 = backbone()
    bf16 = _bf16_like_from_pretrained(fp32)
    latents = torch.randn(B, Z, F, H, W, generator=torch.Generator().manual_seed(8))
    text = torch.randn(B, 7, 16, generator=torch.Generator().manual_seed(9))
    batch = TrainingBatch(latents, text, faces=feats(config), noise=torch.randn_like(latents),
                          sigmas=torch.tensor([0.7, 0.3]))
    moved = []
    for transformer in (fp32, bf16):
        torch.manual_seed(100)
        adapter = IdentityAdapter.attach(transformer, config)  # default attach: no dtype given
        trained_looking(adapter)
        module = IdentityTrainingModule(adapter).train()
        groups = module.parameter_groups()
        params = {id(p): p for g in groups for p in g["params"]}
        assert all(p.dtype == torch.float32 for p in params.values())
        before = {k: p.detach().clone() for k, p in params.items()}
        optimizer = torch.optim.AdamW(groups, lr=1e-4, weight_decay=0.0)
        module(batch).loss.backward()
        with_grad = [k for k, p in params.items() if p.grad is not None and p.grad.abs().sum() > 0]
        optimizer.step()
        names = {id(p): n for n, p in [*adapter.named_parameters(), *transformer.named_parameters()]}
        moved.append({names[k]: (params[k].detach() - before[k]).norm().item() for k in with_grad})
    reference, low = moved
    assert low.keys() == reference.keys() and len(low) > 20
    for name, step in low.items():
        assert step > 0, f"{name} did not move"
        assert abs(step - reference[name]) <= 0.01 * reference[name], (name, step, reference[name])


def test_state_dict_is_trainable_weights_only_and_round_trips(tmp_path):
    from lfa.model.encoders import EmbeddingIdentityEncoder

    config = toy_adapter_config(adapter_preset="faithfulfaces", semantic_dim=12, references="mv2id")
    transformer = backbone()
    encoder = EmbeddingIdentityEncoder(8)
    adapter = IdentityAdapter.attach(transformer, config, encoders={"identity": encoder})
    trained_looking(adapter)
    state = adapter.state_dict()
    trainable = {n for n, p in adapter.named_parameters() if p.requires_grad}
    assert set(state) == trainable  # no frozen encoder, no buffer
    assert not any("lora" in k for k in state)  # LoRA lives in the transformer, saved beside it
    x, f, r = inputs(transformer), feats(config), refs(2)
    with torch.no_grad():
        before = adapter.eval()(**x, faces=f, references=r).sample
    adapter.save_pretrained(tmp_path / "a")
    loaded = IdentityAdapter.from_pretrained(tmp_path / "a", backbone()).eval()
    for key, value in adapter.adapter_state_dict().items():
        assert torch.equal(loaded.adapter_state_dict()[key], value), key
    with torch.no_grad():
        assert torch.equal(loaded(**x, faces=f, references=r).sample, before)
    fresh = IdentityAdapter.attach(backbone(), config.replace(lora_rank=0))
    fresh.load_state_dict(state)  # a generic checkpointer's round trip
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in state.items())


def test_references_add_only_their_own_tokens_activation_memory():
    transformer = backbone().requires_grad_(False)
    k, per_frame = 2, (H // 2) * (W // 2)
    x, r = inputs(transformer), refs(k)
    t, text = x["timestep"], x["encoder_hidden_states"]
    joined = torch.cat([x["hidden_states"], r], dim=2)
    per_token = torch.cat([t[:, None].expand(B, F * per_frame), torch.zeros(B, k * per_frame)], dim=1)

    def bare(hidden, timestep):
        return lambda: transformer(hidden.clone().requires_grad_(), timestep, text)

    video = saved_activation_bytes(bare(x["hidden_states"], t), [transformer])
    as_tokens = saved_activation_bytes(bare(joined, t), [transformer])  # references cost their tokens
    old = saved_activation_bytes(bare(joined, per_token), [transformer])  # per-token timesteps (before)
    adapter = IdentityAdapter.attach(transformer, toy_adapter_config(adapter_preset="mv2id", lora_rank=0)).eval()
    new = saved_activation_bytes(
        lambda: adapter(x["hidden_states"].clone().requires_grad_(), t, text, references=r), [transformer, adapter])
    assert video < as_tokens
    assert new <= 1.02 * as_tokens, (new, as_tokens)  # per-segment: only the references' own tokens
    assert old >= as_tokens + 0.5 * (as_tokens - video), (old, as_tokens, video)  # per-token: far more


def _preset_batch(config, transformer, i2v: bool = False) -> TrainingBatch:
    g = torch.Generator().manual_seed(21)
    latents = torch.randn(B, Z, F, H, W, generator=g)
    batch = TrainingBatch(latents, torch.randn(B, 7, 16, generator=g), noise=torch.randn(B, Z, F, H, W, generator=g),
                          sigmas=torch.tensor([0.6, 0.4]))
    if config.has_face_path:
        batch.faces = feats(config)
    if config.references != "none":
        batch.references, batch.reference_mask = refs(2), torch.tensor([[True, True], [True, False]])
    if config.aligner:
        a, b = feats(config, seed=30, batch=4), feats(config, seed=31, batch=4)
        b.angles = a.angles + torch.tensor([40.0, 0.0, 0.0])
        batch.alignment = (a, b)
    return batch


@pytest.mark.parametrize("preset", ["mofe", "cofe", "faithfulfaces", "mv2id"])
def test_each_preset_builds_and_trains_on_a_fixed_batch(preset):
    config = toy_adapter_config(adapter_preset=preset, face_dropout=0.0, reference_dropout=0.0, mask_ratio=0.0)
    transformer = backbone()
    torch.manual_seed(0)
    module = IdentityTrainingModule(IdentityAdapter.attach(transformer, config)).train()
    batch = _preset_batch(config, transformer)
    optimizer = torch.optim.AdamW(module.parameter_groups(), lr=3e-3, weight_decay=0.01)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        out = module(batch)
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    assert set(out.losses) == ({"flow", "alignment"} if config.aligner else {"flow"})
    assert losses[-1] <= 0.9 * losses[0], losses
