"""One training step (forward + backward + AdamW) of the identity adapter on a Wan transformer: time, peak
memory and MFU, bare backbone + LoRA vs backbone + adapter, with gradient checkpointing.

Random weights (nothing downloaded). The "bare" run trains a rank-``--lora-rank`` LoRA only (the
adapter's face path off) so that both runs have something to train; the "adapter" run adds the face
path of ``--adapter-preset`` (default mofe: no reference views). MFU = model FLOPs of forward +
backward (3x the counted forward FLOPs; recomputation by checkpointing not counted) / (step time x
``--peak-tflops``).

    python bench/train_step.py                                     # small config on the CPU
    python bench/train_step.py --device cuda --preset wan2.1-t2v-1.3b --frames 81 --height 480 \\
        --width 832 --dtype bf16 --peak-tflops 989                  # H100 SXM dense bf16
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_overhead import DTYPES, SMALL, build, count_flops, inputs_for, timed  # noqa: E402

from lfa.model import AdapterConfig, IdentityAdapter, IdentityTrainingModule, TrainingBatch  # noqa: E402
from lfa.model.toy import random_features  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default=SMALL)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="autocast dtype (masters fp32)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--adapter-preset", default="mofe")
    parser.add_argument("--lora-rank", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="the device's peak for --dtype (MFU)")
    parser.add_argument("--no-checkpointing", action="store_true")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


def measure(args: argparse.Namespace, face_path: bool) -> dict:
    torch.manual_seed(0)
    transformer = build(argparse.Namespace(**{**vars(args), "dtype": "fp32"}))
    inputs = inputs_for(transformer, args)
    # LoRA only: the mv2id preset has no face path, and no reference views are given
    preset = args.adapter_preset if face_path else "mv2id"
    config = AdapterConfig(adapter_preset=preset, lora_rank=args.lora_rank)
    adapter = IdentityAdapter.attach(transformer, config)
    module = IdentityTrainingModule(adapter).train()
    optimizer = torch.optim.AdamW(module.parameter_groups(), lr=1e-4)
    device = next(transformer.parameters()).device
    z = transformer.config.out_channels
    latents = inputs["hidden_states"].float()
    faces = None
    if face_path:
        faces = random_features(config, args.batch, detail_dim=z * config.detail_patch ** 2, semantic_tokens=257,
                                detail_tokens=(config.detail_size // 8 // config.detail_patch) ** 2).to(device)
    batch = TrainingBatch(latents, inputs["encoder_hidden_states"].float(), faces=faces)
    autocast = torch.autocast(device.type, dtype=DTYPES[args.dtype], enabled=args.dtype != "fp32")

    def step() -> None:
        with autocast:
            out = module(batch)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    with autocast:
        forward_flops = count_flops(lambda: module(batch))  # before checkpointing: model FLOPs only
    if not args.no_checkpointing:
        transformer.enable_gradient_checkpointing()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(args.warmup + args.repeats):
        elapsed = timed(step, device)
        if i >= args.warmup:
            times.append(elapsed)
    median = statistics.median(times)
    result = {"median_s": median, "model_tflop": 3 * forward_flops / 1e12,
              "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None}
    if args.peak_tflops:
        result["mfu"] = result["model_tflop"] / median / args.peak_tflops
    return result


def main() -> None:
    args = parse_args()
    runs = {"lora only": measure(args, False), f"lora + {args.adapter_preset}": measure(args, True)}
    names = list(runs)
    overhead = runs[names[1]]["median_s"] / runs[names[0]]["median_s"] - 1
    if args.json:
        print(json.dumps({"runs": runs, "adapter_overhead": overhead, "args": vars(args)}, indent=2))
        return
    print(f"{args.preset} on {args.device}, autocast {args.dtype}, {args.frames}x{args.height}x{args.width}, "
          f"batch {args.batch}, checkpointing {'off' if args.no_checkpointing else 'on'}, median of {args.repeats}")
    for name, r in runs.items():
        mfu = f"  MFU {100 * r['mfu']:.1f}%" if "mfu" in r else ""
        mem = f"  peak {r['peak_gib']:.1f} GiB" if r["peak_gib"] is not None else ""
        print(f"  {name:>16}: {r['median_s'] * 1000:9.1f} ms  {r['model_tflop']:.3f} TFLOP{mem}{mfu}")
    print(f"  adapter overhead: {100 * overhead:+.1f}%")


if __name__ == "__main__":
    main()
