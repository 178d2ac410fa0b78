"""Activation memory of reference frames: per-token timesteps vs per-segment modulation, counted on meta.

Counts the bytes autograd saves for backward (``lfa.model.memory.saved_activation_bytes``, attention
counted as a flash kernel saves it) for one Wan transformer block at real size, in bf16 with
``_keep_in_fp32_modules`` in fp32, input requiring grad (as when LoRA or face layers train):

- ``video``: the video alone;
- ``+refs as tokens``: the reference frames appended as plain tokens at the video's timestep —
  what their own tokens cost;
- ``+refs per-token t``: references at timestep 0 through per-token timesteps (B, S), the earlier
  implementation: every modulation tensor becomes (B, S, 6, D);
- ``+refs per-segment``: the adapter's per-segment modulation (video t, references 0).

Per block = (2 blocks) - (1 block), so embeddings and the output head cancel out. No weights, no
memory, any machine:

    python bench/model_memory.py --preset wan2.1-t2v-1.3b --frames 81 --height 480 --width 832 --references 2
"""

from __future__ import annotations

import argparse
import json

import torch

from lfa.model import AdapterConfig, IdentityAdapter
from lfa.model.memory import saved_activation_bytes
from lfa.model.presets import build_transformer, get_preset

GIB = 1024**3


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="wan2.1-t2v-1.3b")
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--references", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


def count(preset: str, layers: int, f: int, h: int, w: int, k: int) -> dict[str, int]:
    config = dict(get_preset(preset).config, num_layers=layers)
    transformer = build_transformer(config, "meta", torch.bfloat16).requires_grad_(False)
    cfg = transformer.config
    meta = dict(device="meta", dtype=torch.bfloat16)
    video = torch.randn(1, cfg.in_channels, f, h, w, **meta)
    refs = torch.randn(1, cfg.out_channels, k, h, w, **meta)
    text = torch.randn(1, 512, cfg.text_dim, **meta)
    image = torch.randn(1, 257, cfg.image_dim, **meta) if cfg.image_dim else None
    t = torch.full((1,), 500.0, device="meta")
    per_frame = (h // 2) * (w // 2)
    ref_frames = torch.cat([refs, torch.ones(1, cfg.in_channels - 2 * cfg.out_channels, k, h, w, **meta), refs], 1) \
        if cfg.in_channels != cfg.out_channels else refs
    with_refs = torch.cat([video, ref_frames], dim=2)
    per_token = torch.cat([t[:, None].expand(1, f * per_frame), torch.zeros(1, k * per_frame, device="meta")], 1)

    def bare(x: torch.Tensor, timestep: torch.Tensor):
        return lambda: transformer(x.detach().requires_grad_(), timestep, text, encoder_hidden_states_image=image)

    out = {"video": saved_activation_bytes(bare(video, t), [transformer], flash_attention=True),
           "+refs as tokens": saved_activation_bytes(bare(with_refs, t), [transformer], flash_attention=True),
           "+refs per-token t": saved_activation_bytes(bare(with_refs, per_token), [transformer],
                                                      flash_attention=True)}
    adapter = IdentityAdapter.attach(transformer, AdapterConfig(adapter_preset="mv2id", lora_rank=0)).eval()
    out["+refs per-segment"] = saved_activation_bytes(
        lambda: adapter(video.detach().requires_grad_(), t, text, references=refs, encoder_hidden_states_image=image),
        [transformer, adapter], flash_attention=True)
    return out


def main() -> None:
    args = parse_args()
    f, h, w = (args.frames - 1) // 4 + 1, args.height // 8, args.width // 8
    one, two = (count(args.preset, n, f, h, w, args.references) for n in (1, 2))
    per_block = {name: two[name] - one[name] for name in one}
    result = {"preset": args.preset, "latent": [f, h, w], "references": args.references,
              "tokens": {"video": f * (h // 2) * (w // 2), "references": args.references * (h // 2) * (w // 2)},
              "per_block_bytes": per_block}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    base = per_block["video"]
    print(f"{args.preset}, latent {f}x{h}x{w}, {args.references} references: saved activations per block "
          f"(meta device, bf16, flash-attention accounting)")
    for name, n in per_block.items():
        print(f"  {name:>18}: {n / GIB:7.3f} GiB   refs add {(n - base) / GIB:+7.3f} GiB")


if __name__ == "__main__":
    main()
