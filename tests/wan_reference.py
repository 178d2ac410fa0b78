"""Reference losses and generated latents of the tiny Wan2.1 bases, recorded before Wan2.2 support.

``tests/data/wan21_reference.json`` was written by ``python -m tests.wan_reference`` at the commit before
the Wan2.2 change; tests/test_wan22.py checks that the Wan2.1 paths still give these numbers. Each case
builds a tiny base (seed 0), attaches an adapter, takes 3 AdamW steps on a fixed synthetic batch (the
training forward: noising, dropout, face path, references, I2V condition) and samples 3 denoising steps
through lfa's generator with fixed face features.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parent / "data" / "wan21_reference.json"
CASES = {"t2v-cofe": ("tiny", "cofe"), "t2v-mv2id": ("tiny", "mv2id"), "i2v-cofe": ("tiny-i2v", "cofe")}


def compute(case: str) -> dict[str, list[float]]:
    from lfa.generate.pipeline import GenerateOptions, IdentityGenerator
    from lfa.model.adapter import IdentityAdapter
    from lfa.model.toy import random_features, toy_adapter_config
    from lfa.model.training import IdentityTrainingModule, TrainingBatch
    from lfa.wan.base import init_tiny_base, load_base
    from lfa.wan.frames import first_frame_condition

    preset, adapter_preset = CASES[case]
    i2v = preset == "tiny-i2v"
    with tempfile.TemporaryDirectory() as tmp:
        wan = load_base(init_tiny_base(Path(tmp) / "base", i2v=i2v))
        torch.manual_seed(0)
        config = toy_adapter_config(adapter_preset=adapter_preset, lora_rank=4, face_dropout=0.0,
                                    reference_dropout=0.0)
        adapter = IdentityAdapter.attach(wan.transformer, config)
        module = IdentityTrainingModule(adapter)
        optimizer = torch.optim.AdamW(module.parameter_groups(), lr=1e-2)
        g = torch.Generator().manual_seed(1)
        z, cfg = wan.vae.config.z_dim, wan.transformer.config
        latents = torch.randn(2, z, 2, 4, 4, generator=g)  # 5 frames of 32x32
        text_len = 512 if i2v else 16
        text = torch.randn(2, text_len, cfg.text_dim, generator=g)
        faces = random_features(config, 2, detail_dim=z * 4, generator=g) if config.has_face_path else None
        references = torch.randn(2, z, 2, 4, 4, generator=g) if config.references != "none" else None
        condition = torch.randn(2, cfg.in_channels - z, 2, 4, 4, generator=g) if i2v else None
        image = torch.randn(2, 3, cfg.image_dim, generator=g) if i2v else None
        noise, sigmas = torch.randn(latents.shape, generator=g), torch.tensor([0.3, 0.8])
        losses = []
        for _ in range(3):
            out = module(TrainingBatch(latents, text, faces=faces, references=references, condition=condition,
                                       image_embeds=image, noise=noise, sigmas=sigmas))
            out.loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(float(out.loss.detach()))
        module.eval()
        generator = IdentityGenerator.from_parts(wan, adapter, {"num_frames": 5, "height": 32, "width": 32,
                                                                "max_sequence_length": text_len})
        first = None
        if i2v:
            ramp = np.linspace(0, 255, 32 * 32 * 3).reshape(32, 32, 3).astype(np.uint8)
            first = first_frame_condition(generator.pipe, ramp, 5)
        one = None if faces is None else type(faces)({k: v[:1] for k, v in faces.tokens.items()}, faces.angles[:1])
        frames = generator.sample(one, None if references is None else references[:1],
                                  GenerateOptions(prompt="a person turns left", steps=3, seed=0), condition=first)
        return {"losses": losses, "latents": generator.latents.flatten().tolist(),
                "frames_shape": list(frames.shape), "frames_mean": float(frames.mean())}


def main() -> None:
    DATA.parent.mkdir(exist_ok=True)
    DATA.write_text(json.dumps({case: compute(case) for case in CASES}, indent=1) + "\n")
    print(f"wrote {DATA}")


if __name__ == "__main__":
    main()
