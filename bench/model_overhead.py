"""Forward-pass overhead of the identity adapter over the bare Wan transformer, measured side by side.

Random weights (nothing downloaded). Each repetition times the bare backbone (adapter uninstalled),
then the backbone with the adapter conditioning on faces, then (``--references K``) also on K
reference views; the medians and their ratios are printed. Face encoders are not timed (they run
once per video). Each timed forward opens its own conditioning, so projectors and aligner run every
time, as in a training step; in sampling they run once per video and only the gate and the face
attention run at every step, so the figure is an upper bound for sampling.

    python bench/model_overhead.py                                   # small config on the CPU
    python bench/model_overhead.py --device cuda --preset wan2.1-t2v-1.3b --frames 81 \\
        --height 480 --width 832 --dtype bf16
    python bench/model_overhead.py --flops --preset wan2.1-t2v-1.3b --frames 81 --height 480 --width 832

``--flops`` counts floating-point operations on the meta device instead of timing (no weights, no
memory, any machine): a hardware-independent view of the same overhead, not a measurement of time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from lfa.model import AdapterConfig, IdentityAdapter
from lfa.model.config import parse_overrides
from lfa.model.presets import build_transformer, get_preset
from lfa.model.toy import random_features, toy_backbone_config

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
SMALL = "small"  # 4 blocks, 4 heads of 64, 16 latent channels: a CPU-sized stand-in


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default=SMALL, help=f"{SMALL} or a backbone preset (lfa model describe)")
    parser.add_argument("--frames", type=int, default=17, help="video frames in pixels (latent: (n - 1) / 4 + 1)")
    parser.add_argument("--height", type=int, default=256, help="pixels (latent: / 8)")
    parser.add_argument("--width", type=int, default=256, help="pixels (latent: / 8)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--references", type=int, default=2, help="K reference views for the third timing (0: skip)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="adapter config KEY=VALUE")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--flops", action="store_true", help="count FLOPs on the meta device instead of timing")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser.parse_args()


def build(args: argparse.Namespace):
    if args.preset == SMALL:
        config = toy_backbone_config(layers=4, heads=4, head_dim=64, latent_channels=16, text_dim=256, ffn_dim=1024)
    else:
        config = get_preset(args.preset).config
    torch.manual_seed(0)
    return build_transformer(config, torch.device(args.device), DTYPES[args.dtype]).eval()


def inputs_for(transformer, args: argparse.Namespace) -> dict:
    cfg = transformer.config
    if args.height % 16 or args.width % 16 or (args.frames - 1) % 4:
        raise SystemExit("height and width must be multiples of 16, frames of the form 4n + 1")
    f, h, w = (args.frames - 1) // 4 + 1, args.height // 8, args.width // 8
    param = next(transformer.parameters())
    kw = dict(device=param.device, dtype=param.dtype)
    inputs = {
        "hidden_states": torch.randn(args.batch, cfg.in_channels, f, h, w, **kw),
        "timestep": torch.full((args.batch,), 500.0, device=param.device),
        "encoder_hidden_states": torch.randn(args.batch, 512, cfg.text_dim, **kw),
        "return_dict": False,
    }
    if cfg.image_dim:
        inputs["encoder_hidden_states_image"] = torch.randn(args.batch, 257, cfg.image_dim, **kw)
    return inputs


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.flops:
        args.device = "meta"
    transformer = build(args)
    device = next(transformer.parameters()).device
    inputs = inputs_for(transformer, args)
    # the MoFE + aligner + references mix these timings were first taken with; --set changes it
    config = AdapterConfig(adapter_preset="mofe", aligner=True, references="mv2id")
    if args.overrides:
        config = config.replace(**parse_overrides(args.overrides))
    adapter = IdentityAdapter.attach(transformer, config).eval()
    adapter.requires_grad_(False)
    z = transformer.config.out_channels
    faces = random_features(config, args.batch, detail_dim=z * config.detail_patch**2, semantic_tokens=257,
                            detail_tokens=(config.detail_size // 8 // config.detail_patch) ** 2).to(device)
    f, h, w = inputs["hidden_states"].shape[2:]
    refs = torch.randn(args.batch, z, args.references, h, w, device=device) if args.references else None

    def bare() -> None:
        transformer(**inputs)

    def with_faces() -> None:
        with adapter.conditioning(faces=faces):
            transformer(**inputs)

    def with_references() -> None:
        with adapter.conditioning(faces=faces, references=refs):
            transformer(**inputs)

    runs = {"bare": bare, "adapter": with_faces}
    if refs is not None:
        runs[f"adapter+{args.references}refs"] = with_references
    times: dict[str, list[float]] = {name: [] for name in runs}
    if args.flops:
        report_flops(args, transformer, adapter, runs, inputs)
        return
    with torch.inference_mode():
        for i in range(args.warmup + args.repeats):
            for name, fn in runs.items():
                if name == "bare":
                    adapter.uninstall()
                elif not adapter.installed:
                    adapter.install(transformer)
                elapsed = timed(fn, device)
                if i >= args.warmup:
                    times[name].append(elapsed)

    p_t, p_h, p_w = transformer.config.patch_size
    result = {
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "host": platform.node(), "cpu_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "torch": torch.__version__, "preset": args.preset, "dtype": args.dtype, "batch": args.batch,
        "latent": [f, h, w], "video_tokens": (f // p_t) * (h // p_h) * (w // p_w),
        "face_blocks": len(adapter.face_blocks), "adapter_params": sum(adapter.parameter_counts().values()),
        "repeats": args.repeats, "load_average_1min": os.getloadavg()[0],
        "median_s": {name: statistics.median(t) for name, t in times.items()},
    }
    base = result["median_s"]["bare"]
    result["ratio"] = {name: t / base for name, t in result["median_s"].items()}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['preset']} on {result['device']} ({result['cpu_threads']} threads), {args.dtype}, "
          f"batch {args.batch}, latent {f}x{h}x{w} = {result['video_tokens']} tokens, "
          f"median of {args.repeats} (after {args.warmup} warm-up), load average {result['load_average_1min']:.2f}")
    for name, t in result["median_s"].items():
        print(f"  {name:>16}: {t * 1000:9.1f} ms   x{result['ratio'][name]:.3f}")


def report_flops(args, transformer, adapter, runs, inputs) -> None:
    flops = {}
    with torch.no_grad():
        for name, fn in runs.items():
            if name == "bare":
                adapter.uninstall()
            elif not adapter.installed:
                adapter.install(transformer)
            flops[name] = count_flops(fn)
    f, h, w = inputs["hidden_states"].shape[2:]
    result = {"preset": args.preset, "latent": [f, h, w], "flops": flops,
              "ratio": {name: n / flops["bare"] for name, n in flops.items()}}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.preset}: FLOPs per forward (meta device, counted, not timed), batch {args.batch}, latent {f}x{h}x{w}")
    for name, n in flops.items():
        print(f"  {name:>16}: {n / 1e12:10.3f} TFLOP   x{result['ratio'][name]:.4f}")


if __name__ == "__main__":
    main()
