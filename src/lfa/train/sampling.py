"""Sample videos during training (``sample_every``): ``OUT/samples/step-<N>.mp4`` plus its sidecar JSON.

Each sample runs the generation pipeline (:class:`lfa.generate.pipeline.IdentityGenerator`) over the
weights being trained (the EMA weights when EMA is on), with the first validation sample's cached face
features, reference latents, caption (and, on an I2V base, first-frame condition), at its bucket and the
training length, with the seed of the run: the videos of a run differ only by the weights. The training
RNG streams are left as they were.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from lfa.train.config import TrainConfig
from lfa.train.data import Sample

SAMPLES_DIR = "samples"


class SampleVideos:
    """Writes a sample video of the current weights; models beyond the transformer load on first use."""

    def __init__(self, base: Path, module: Any, shard: dict[str, torch.Tensor], sample: Sample,
                 config: TrainConfig, out: Path) -> None:
        self.base, self.module, self.shard, self.sample, self.config = base, module, shard, sample, config
        self.folder = out / SAMPLES_DIR
        self._generator = None

    def generator(self):
        if self._generator is None:
            from lfa.generate.pipeline import IdentityGenerator
            from lfa.wan.base import load_base

            wan = load_base(self.base, parts=("vae", "text_encoder", "tokenizer", "scheduler"))
            wan = replace(wan, transformer=self.module.transformer)
            self._generator = IdentityGenerator.from_parts(wan, self.module.adapter, self.config.generation_defaults())
        return self._generator

    def __call__(self, step: int, ema: Any = None) -> Path:
        from lfa.generate.pipeline import GenerateOptions, write_result
        from lfa.model.encoders import FaceFeatures

        config, shard, adapter = self.config, self.shard, self.module.adapter
        height, width = self.sample.bucket
        options = GenerateOptions(self.sample.caption, num_frames=config.num_frames, height=height, width=width,
                                  steps=config.sample_steps, guidance_scale=config.sample_guidance_scale,
                                  seed=config.seed, fps=config.fps)
        faces = FaceFeatures({name: shard[f"face.{name}"][:1] for name in adapter.config.experts},
                             shard["face_angles"][:1]) if adapter.config.experts else None
        references = shard["references"][None] if adapter.config.references != "none" else None
        condition = {k: shard[k] for k in ("condition", "image_embeds") if k in shard} or None  # I2V bases
        generator = self.generator()
        training = self.module.training
        self.module.eval()
        if ema is not None:
            ema.swap()
        try:
            with torch.random.fork_rng(devices=[]):
                frames = generator.sample(faces, references, options, condition=condition)
        finally:
            if ema is not None:
                ema.swap()
            self.module.train(training)
        return write_result(frames, self.folder / f"step-{step}.mp4", options,
                            {"step": step, "clip_id": self.sample.clip_id, "ema": ema is not None})
