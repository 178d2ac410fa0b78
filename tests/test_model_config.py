"""AdapterConfig validation and JSON round trip; presets and ``lfa model describe`` on the meta device."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lfa.cli import app
from lfa.errors import ConfigError
from lfa.model import PRESETS, AdapterConfig, describe
from lfa.model.config import parse_overrides


def test_defaults_round_trip_through_json(tmp_path):
    config = AdapterConfig()
    assert AdapterConfig.from_json(config.to_json()) == config
    custom = config.replace(gate_granularity="token", gate_per_block=True, references="standin",
                            semantic_layers=[-3, -2], lora_rank=128, lora_targets=["attn1"])
    custom.save(tmp_path / "adapter.json")
    loaded = AdapterConfig.load(tmp_path / "adapter.json")
    assert loaded == custom and loaded.semantic_layers == (-3, -2) and loaded.lora_targets == ("attn1",)
    assert json.loads((tmp_path / "adapter.json").read_text())["semantic_layers"] == [-3, -2]


@pytest.mark.parametrize("changes,message", [
    (dict(gate_granularity="expert"), "gate_granularity"),
    (dict(references="concat"), "references"),
    (dict(every_k_blocks=0), "every_k_blocks"),
    (dict(num_queries=2.5), "num_queries"),
    (dict(face_kv_rank=-1), "face_kv_rank"),
    (dict(projector_dim=100, projector_heads=8), "divisible"),
    (dict(mask_ratio=1.0), "mask_ratio"),
    (dict(temperature=0.0), "temperature"),
    (dict(identity_expert=False, aligner=True), "aligner"),
    (dict(aligner=True, aligner_input="image", semantic_expert=False), "semantic_expert"),
    (dict(aligner_input="clip"), "aligner_input"),
    (dict(adapter_preset="vace"), "adapter_preset"),
    (dict(face_dropout=1.0), "face_dropout"),
    (dict(identity_expert=False, semantic_expert=False, detail_expert=False, aligner=False), "every face expert"),
    (dict(gate=False, gate_granularity="token"), "needs the gate"),
    (dict(lora_targets=["to_q"]), "lora_targets"),
    (dict(semantic_layers=[]), "semantic_layers"),
    (dict(pose_embed_dim=7), "even"),
])
def test_bad_values_raise_config_error(changes, message):
    with pytest.raises(ConfigError, match=message) as info:
        AdapterConfig().replace(**changes)
    assert info.value.fix


def test_unknown_keys_and_bad_json():
    with pytest.raises(ConfigError, match="unknown adapter config key 'gating'"):
        AdapterConfig.from_dict({"gating": True})
    with pytest.raises(ConfigError, match="not valid JSON"):
        AdapterConfig.from_json("{every_k_blocks: 1}")
    assert parse_overrides(["every_k_blocks=1", "references=none", "scale=0.5"]) == {
        "every_k_blocks": 1, "references": "none", "scale": 0.5}
    with pytest.raises(ConfigError):
        parse_overrides(["every_k_blocks"])


def test_adapter_presets_resolve_and_switches_override():
    assert AdapterConfig() == AdapterConfig(adapter_preset="cofe")
    cofe, mofe = AdapterConfig(), AdapterConfig(adapter_preset="mofe")
    assert cofe.gate_per_block and cofe.every_k_blocks == 1 and not cofe.balance_loss
    assert not mofe.gate_per_block and mofe.gated
    faithful = AdapterConfig(adapter_preset="faithfulfaces")
    assert faithful.aligner and faithful.aligner_input == "image" and faithful.aligner_stop_gradient
    assert faithful.lora_rank == 128
    mv2id = AdapterConfig(adapter_preset="mv2id")
    assert mv2id.references == "mv2id" and not mv2id.has_face_path and mv2id.mask_ratio > 0
    # an explicit switch wins over the preset, and survives a JSON round trip and a preset change
    custom = AdapterConfig(adapter_preset="faithfulfaces", lora_rank=8)
    assert custom.lora_rank == 8 and AdapterConfig.from_json(custom.to_json()) == custom
    moved = custom.replace(adapter_preset="mofe")
    assert moved.lora_rank == 8 and not moved.aligner and moved.adapter_preset == "mofe"
    assert AdapterConfig.from_dict({"adapter_preset": "mofe", "every_k_blocks": 1}).every_k_blocks == 1


@pytest.mark.parametrize("preset", ["mofe", "cofe", "faithfulfaces", "mv2id"])
def test_each_adapter_preset_describes_on_a_real_backbone(preset):
    result = describe(PRESETS["wan2.1-t2v-1.3b"].config, AdapterConfig(adapter_preset=preset))
    assert result["adapter_config"]["adapter_preset"] == preset
    assert result["adapter_params"] > 0


def test_every_mechanism_switches_off():
    config = AdapterConfig(semantic_expert=False, detail_expert=False, gate=False, aligner=False, references="none")
    assert config.experts == ("identity",) and not config.gated
    assert AdapterConfig(every_k_blocks=3).face_blocks(10) == [0, 3, 6, 9]


@pytest.mark.parametrize("name,low,high", [("wan2.1-t2v-1.3b", 1.3e9, 1.5e9), ("wan2.1-i2v-14b", 1.6e10, 1.7e10)])
def test_presets_describe_on_meta_within_budget(name, low, high):
    result = describe(PRESETS[name].config)  # cofe: face attention and a gate in every block
    assert low < result["backbone_params"] < high
    assert 0 < result["adapter_params"] <= 0.05 * result["backbone_params"]
    mofe = describe(PRESETS[name].config, AdapterConfig(adapter_preset="mofe"))
    assert 0 < mofe["adapter_params"] <= 0.03 * mofe["backbone_params"]
    assert sum(result["adapter_parts"].values()) == result["adapter_params"]
    assert "convert_wan_to_diffusers" in PRESETS[name].source


def test_describe_counts_lora_and_ablations():
    base = describe(PRESETS["wan2.1-t2v-1.3b"].config)
    with_lora = describe(PRESETS["wan2.1-t2v-1.3b"].config, AdapterConfig(lora_rank=128))
    # rank 128 on q, k, v, o of attn1 and attn2: 8 * 2 * 1536 * 128 per block, 30 blocks
    assert with_lora["adapter_parts"]["lora"] == 30 * 8 * 2 * 1536 * 128
    assert with_lora["backbone_params"] == base["backbone_params"]
    minimal = describe(PRESETS["wan2.1-t2v-1.3b"].config,
                       AdapterConfig(semantic_expert=False, detail_expert=False, aligner=False, gate=False))
    assert set(minimal["adapter_parts"]) == {"projectors", "face_attention"}


def test_cli_describe_json_and_table(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["model", "describe", "--preset", "wan2.1-t2v-1.3b", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["adapter_config"]["adapter_preset"] == "cofe"
    result = runner.invoke(app, ["model", "describe", "--preset", "wan2.1-t2v-1.3b", "--adapter-preset", "mv2id",
                                 "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["adapter_config"]["references"] == "mv2id"
    assert data["backbone_params"] > 0 and data["adapter_params"] > 0 and data["adapter_percent"] <= 5.0

    (tmp_path / "transformer").mkdir()
    config = dict(PRESETS["wan2.1-i2v-14b"].config, _class_name="WanTransformer3DModel")
    (tmp_path / "transformer" / "config.json").write_text(json.dumps(config))
    result = runner.invoke(app, ["model", "describe", str(tmp_path), "--set", "every_k_blocks=4"])
    assert result.exit_code == 0, result.output
    assert "face cross-attention in 10 of 40 blocks" in result.output

    result = runner.invoke(app, ["model", "describe"])
    assert result.exit_code != 0 and isinstance(result.exception, ConfigError)


def test_a_whole_config_saved_before_the_identity_mlp_loads_as_a_perceiver():
    from lfa.model.config import AdapterConfig

    saved = AdapterConfig().to_dict()
    del saved["identity_projector"]  # what an adapter saved before the switch existed holds
    assert AdapterConfig.from_dict(saved).identity_projector == "perceiver"
    assert AdapterConfig.from_dict({"adapter_preset": "mofe"}).identity_projector == "mlp"  # a partial config
    assert AdapterConfig().replace(adapter_preset="mofe").identity_projector == "mlp"
