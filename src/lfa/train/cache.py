"""Precomputed training tensors: one safetensors shard per sample (clip, window, bucket), keyed by the models.

``<out>/cache/<cache_id>/<sample key>.safetensors`` holds

- ``latents`` (z, F', h, w): the window's normalised Wan-VAE latents;
- ``text`` (n, D): the caption's text-encoder embeddings, real tokens only (zero-padded at load);
- ``face.<expert>`` (K, N, D) and ``face_angles`` (K, 3): the frozen experts' tokens of the K reference faces;
- ``references`` (z, K, h, w): the reference frames' latents at the video's size (Mv²ID);
- ``face_mask`` (F', h, w): the main track's face boxes on the latent grid (:mod:`lfa.train.regions`);
- image-to-video bases: ``condition`` (4 + z, F', h, w) and ``image_embeds`` (N, D) of the window's first
  frame (:mod:`lfa.wan.frames`).

``cache_id`` hashes the base directory, the encoder spec and every data setting a tensor depends on, so a
cache made with another model is never read. A shard is written atomically; a killed run redoes only the
missing shards. The trainer runs no VAE, text encoder or face encoder per step.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lfa.errors import ConfigError
from lfa.train.config import TrainConfig
from lfa.train.data import Sample
from lfa.wan.frames import fit_to_bucket, to_video_tensor

CACHE_FORMAT = "lfa-train-cache-v2"  # v2: face_mask
_DATA_KEYS = ("fps", "num_frames", "buckets", "height", "width", "window_stride", "max_sequence_length",
              "face_size", "reference_views", "yaw_bucket")


def cache_id(base_hash: str, encoder_spec: str, config: TrainConfig) -> str:
    data = {k: config.to_dict()[k] for k in _DATA_KEYS}
    text = json.dumps({"format": CACHE_FORMAT, "base": base_hash, "encoders": encoder_spec, "data": data},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Encoders:
    """What the cache runs once per sample: the base's VAE and text encoder, and the face experts."""

    def __init__(self, pipeline: Any, face_encoders: dict[str, Any], config: TrainConfig) -> None:
        self.pipeline, self.face, self.config = pipeline, face_encoders, config

    def text(self, caption: str):
        import torch

        with torch.no_grad():
            embeds, _ = self.pipeline.encode_prompt(caption, do_classifier_free_guidance=False,
                                                    max_sequence_length=self.config.max_sequence_length,
                                                    device=torch.device("cpu"))
        tokens = self.pipeline.tokenizer(caption, max_length=self.config.max_sequence_length, truncation=True,
                                         add_special_tokens=True)["input_ids"]
        return embeds[0, : max(1, len(tokens))].float().contiguous()

    def faces(self, images: list[np.ndarray], sample: Sample) -> dict[str, Any]:
        refs = sample.references
        return self.encode_faces(images, [r.landmarks5 for r in refs], [(r.yaw, r.pitch, r.roll) for r in refs])

    def encode_faces(self, images: list[np.ndarray], landmarks5: list[Any],
                     angles: list[tuple[float, float, float]]) -> dict[str, Any]:
        """``face_angles`` (K, 3) and ``face.<expert>`` (K, N, D): the frozen experts' tokens of one face per image."""
        import torch

        from lfa.model.encoders import prepare_faces

        identity = self.face.get("identity")
        registered = getattr(identity, "encoder", None)
        inputs = prepare_faces(images, [np.asarray(lm, np.float32).reshape(5, 2) for lm in landmarks5],
                               size=self.config.face_size, angles=angles, identity=registered)
        out = {"face_angles": inputs.angles.float()}
        with torch.no_grad():
            for name, encoder in self.face.items():
                out[f"face.{name}"] = encoder(inputs).float().cpu().contiguous()
        return out

    def sample(self, sample: Sample) -> dict[str, Any]:
        from lfa.model.vae import encode_images, encode_video
        from lfa.train.regions import face_mask

        h, w = sample.bucket
        frames = window_frames(sample)
        fitted = [fit_to_bucket(f, h, w) for f in frames]
        video = to_video_tensor(fitted)
        tensors = {"latents": encode_video(self.pipeline.vae, video[None])[0].float().contiguous()}
        if type(self.pipeline).__name__ == "WanImageToVideoPipeline":
            from lfa.wan.frames import first_frame_condition

            tensors.update(first_frame_condition(self.pipeline, fitted[0], sample.num_frames))
        tensors["face_mask"] = face_mask(sample.boxes, frames[0].shape[:2], sample.bucket,
                                         spatial=self.pipeline.vae_scale_factor_spatial,
                                         temporal=self.pipeline.vae_scale_factor_temporal).contiguous()
        tensors["text"] = self.text(sample.caption)
        by_time = reference_frames(sample)
        tensors.update(self.faces(by_time, sample))
        views = to_video_tensor([fit_to_bucket(img, h, w) for img in by_time]).permute(1, 0, 2, 3)  # (K, 3, H, W)
        tensors["references"] = encode_images(self.pipeline.vae, views[None])[0].float().contiguous()
        return tensors


def window_frames(sample: Sample) -> list[np.ndarray]:
    """The window's ``num_frames`` RGB frames at source size."""
    from lfa.media import read_frames

    frames = read_frames(sample.source, times=sample.file_times(sample.times))
    if len(frames) < sample.num_frames:
        raise ConfigError(f"{sample.source}: only {len(frames)} of {sample.num_frames} frames decode at "
                          f"{sample.start:.3f}s", "re-curate the run (the source changed?)")
    return [f.image for f in frames[: sample.num_frames]]


def reference_frames(sample: Sample) -> list[np.ndarray]:
    """The RGB frames of the sample's reference faces (source size)."""
    from lfa.media import read_frames

    times = sample.file_times([r.t for r in sample.references])
    found = read_frames(sample.source, times=times)
    return [min(found, key=lambda f: abs(f.t - t)).image for t in times]


def build_cache(samples: list[Sample], folder: Path, encoders: Callable[[], Encoders], *,
                meta: dict[str, Any], on_sample: Callable[[Sample, bool], None] | None = None) -> list[Path]:
    """Write every missing shard to ``folder``; ``encoders`` is called (models loaded) only if one is missing."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / "cache.json"
    if meta_path.is_file() and json.loads(meta_path.read_text()).get("cache_id") != meta["cache_id"]:
        raise ConfigError(f"{folder} is a cache of another model or data setting",
                          "delete it, or train with the base and settings it was built with")
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    paths, loaded = [], None
    for sample in samples:
        path = folder / f"{sample.key}.safetensors"
        paths.append(path)
        if path.is_file():
            if on_sample:
                on_sample(sample, False)
            continue
        loaded = loaded or encoders()
        tensors = loaded.sample(sample)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
        save_file(tensors, str(tmp), metadata={"format": CACHE_FORMAT, "cache_id": meta["cache_id"],
                                               "sample": json.dumps(sample.to_dict())})
        os.replace(tmp, path)
        if on_sample:
            on_sample(sample, True)
    return paths


def load_shard(path: Path, expected_id: str) -> dict[str, Any]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        got = (fh.metadata() or {}).get("cache_id")
        if got != expected_id:
            raise ConfigError(f"{path}: cache shard of another model or setting ({got}, expected {expected_id})",
                              "delete the cache folder and run `lfa train --cache-only` again")
        return {k: fh.get_tensor(k) for k in fh.keys()}
