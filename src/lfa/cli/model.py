"""``lfa model describe``: parameter counts of a Wan backbone and the identity adapter (meta device)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from lfa.errors import ConfigError

app = typer.Typer(help="The generation core: identity-conditioning modules on a Wan transformer.",
                  no_args_is_help=True)
out = Console()


@app.command()
def describe(
    config: Path = typer.Argument(None, help="A Wan transformer config.json (or a diffusers model folder)."),
    preset: str = typer.Option(None, help="A built-in backbone: wan2.1-t2v-1.3b, wan2.1-t2v-14b, wan2.1-i2v-14b, "
                                           "wan2.2-ti2v-5b, wan2.2-t2v-a14b or wan2.2-i2v-a14b."),
    adapter_config: Path = typer.Option(None, "--adapter-config", metavar="FILE",
                                        help="Adapter config file, JSON or YAML (default: the preset's)."),
    adapter_preset: str = typer.Option(None, "--adapter-preset",
                                       help="mofe, cofe (default), faithfulfaces or mv2id; --set overrides it."),
    set_: list[str] = typer.Option(None, "--set", metavar="KEY=VALUE",
                                   help="Adapter config override KEY=VALUE (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (keys backbone_params, adapter_params, ...)."),
) -> None:
    """Count backbone and adapter parameters without loading any weights."""
    from lfa.model.config import AdapterConfig, parse_overrides
    from lfa.model.presets import describe as describe_model
    from lfa.model.presets import get_preset, load_backbone_config

    if (config is None) == (preset is None):
        raise ConfigError("give exactly one of CONFIG or --preset", "e.g. lfa model describe --preset wan2.1-t2v-1.3b")
    experts = 1
    if preset is not None:
        chosen = get_preset(preset)
        backbone, source, experts = chosen.config, f"preset {chosen.name}: {chosen.source}", chosen.experts
    else:
        backbone, source = load_backbone_config(config), str(config)
        folder = config if config.is_dir() else config.parent.parent
        experts = 2 if (folder / "transformer_2" / "config.json").is_file() else 1
    adapter = AdapterConfig.load(adapter_config) if adapter_config else AdapterConfig()
    if adapter_preset:
        adapter = adapter.replace(adapter_preset=adapter_preset)
    if set_:
        adapter = adapter.replace(**parse_overrides(set_))
    result = describe_model(backbone, adapter, experts=experts)
    result["source"] = source
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    table = Table(title=f"lfa identity adapter on {preset or config}")
    table.add_column("part")
    table.add_column("parameters", justify="right")
    table.add_column("% of backbone", justify="right")
    total = result["backbone_params"]
    table.add_row("backbone" if experts == 1 else f"backbone ({experts} experts)", f"{total:,}", "100")
    if experts > 1:
        table.add_row("  per expert", f"{result['per_expert']['backbone_params']:,}", f"{100 / experts:.1f}")
    per = result["per_expert"]["backbone_params"]
    for name, count in result["adapter_parts"].items():  # per expert, as a share of its expert
        table.add_row(f"  adapter: {name}", f"{count:,}", f"{100 * count / per:.3f}")
    table.add_row("adapter (total)", f"{result['adapter_params']:,}", f"{result['adapter_percent']:.3f}")
    out.print(table)
    blocks = result["face_blocks"]
    out.print(f"face cross-attention in {len(blocks)} of {result['backbone']['num_layers']} blocks; "
              f"adapter preset: {adapter.adapter_preset}; references: {adapter.references}; "
              f"source: {source}", highlight=False)
    out.print(f"[dim]{result['note']}[/]")


@app.command("init")
def init(
    preset: str = typer.Option("tiny", help="What to write: tiny (Wan2.1 T2V), tiny-i2v (image-to-video), "
                                             "tiny-wan2.2-ti2v or tiny-wan2.2-a14b (two experts); random weights, "
                                             "for tests and laptops."),
    out_dir: Path = typer.Option(..., "--out", metavar="DIR", help="A new folder for the diffusers-format Wan base."),
    seed: int = typer.Option(0, help="Seed of the random weights."),
) -> None:
    """Write a complete diffusers-format Wan base (Wan2.1 T2V/I2V, Wan2.2 TI2V or A14B) with random weights and tiny
    face encoders."""
    from lfa.wan.base import BASE_PRESETS, init_tiny_base

    if preset not in BASE_PRESETS:
        raise ConfigError(f"unknown base preset {preset!r}", f"use one of: {', '.join(BASE_PRESETS)}")
    folder = init_tiny_base(out_dir, seed=seed, preset=preset)
    out.print(f"[green]wrote[/] {preset} Wan base (random weights) → {folder}", highlight=False)


@app.command("plan")
def plan(
    preset: str = typer.Option(None, help="A built-in backbone: wan2.1-t2v-1.3b, wan2.1-t2v-14b, wan2.1-i2v-14b, "
                                           "wan2.2-ti2v-5b, wan2.2-t2v-a14b or wan2.2-i2v-a14b (one expert: "
                                           "A14B trains one at a time)."),
    base: Path = typer.Option(None, metavar="PATH", help="A diffusers Wan folder (reads transformer/config.json)."),
    height: int = typer.Option(None, help="Frame height (default: the training config's)."),
    width: int = typer.Option(None, help="Frame width (default: the training config's)."),
    num_frames: int = typer.Option(None, "--num-frames", help="Frames per window, 4n+1 (default: the config's)."),
    gpus: int = typer.Option(1, help="GPUs, one training process each."),
    set_: list[str] = typer.Option(None, "--set", metavar="KEY=VALUE",
                                   help="Training config override KEY=VALUE, as lfa train (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (keys ddp, fsdp: per_gpu_gib and breakdown)."),
) -> None:
    """Per-GPU memory of a training run under DDP and FSDP, counted on the meta device (no weights)."""
    from lfa.model.presets import get_preset, load_backbone_config
    from lfa.train.config import apply_changes, load_config
    from lfa.train.memory_plan import format_plan, plan_training

    if (base is None) == (preset is None):
        raise ConfigError("give exactly one of --preset or --base", "e.g. lfa model plan --preset wan2.1-t2v-14b")
    defaults: dict = {}
    vae_spatial = None
    if preset is not None:
        chosen = get_preset(preset)
        backbone, name, vae_spatial = chosen.config, preset, chosen.vae_spatial
    else:
        backbone, name = load_backbone_config(base), str(base)
        lfa_base = Path(base) / "lfa_base.json"
        if lfa_base.is_file():
            defaults = json.loads(lfa_base.read_text()).get("train_defaults", {})
    config = load_config(defaults, None, set_)
    sizes = {k: v for k, v in (("height", height), ("width", width), ("num_frames", num_frames)) if v is not None}
    config = apply_changes(config, sizes, "the command line")
    result = plan_training(backbone, config, gpus, name=name, base=base, vae_spatial=vae_spatial)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    for line in format_plan(result):
        out.print(line, highlight=False, markup=False)
