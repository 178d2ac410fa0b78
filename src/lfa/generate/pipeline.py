"""Identity-conditioned Wan text-to-video sampling with identity guidance.

Three branches per denoising step, as Lynx does: unconditional (negative prompt, no face), text
(prompt, no face) and text + identity (prompt, faces through the adapter)::

    v = v_uncond + guidance_scale * (v_text - v_uncond) + id_guidance_scale * (v_text_id - v_text)

With ``id_guidance_scale == guidance_scale`` this is ordinary classifier-free guidance on the text +
identity branch (two branches, the text-only one is skipped). Faces are detected, aligned and their
angles measured with lfa's own perception (:class:`lfa.face.FaceAnalyzer`).

An image-to-video base (Wan2.1 I2V) also takes a first frame (``first_frame``, default: the first face
photo), fitted to the video's size (centre crop + resize) and turned into Wan's first-frame condition
and CLIP image tokens (:mod:`lfa.wan.frames`), which every branch sees.

Wan2.2: a TI2V base generates from text alone, or with ``first_frame`` kept clean as the video's first
latent frame (timestep 0 on its tokens, as diffusers' TI2V path). A two-expert (A14B) base denoises with
``transformer`` at timesteps at or above ``boundary_ratio * 1000`` and ``transformer_2`` below, each with
its own adapter (``ADAPTER/transformer/``, ``ADAPTER/transformer_2/``; an expert without one runs plain)
and its own guidance scale (``guidance_scale_2``, default ``guidance_scale``); with ``cpu_offload`` only
the active expert is on the GPU.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lfa.errors import ConfigError, LfaError

if TYPE_CHECKING:
    from lfa.bench.spec import Box
    from lfa.face.types import Face

TRAINING_META = "lfa_training.json"


@dataclass
class GenerateOptions:
    prompt: str
    negative_prompt: str = ""
    num_frames: int | None = None  # None: the adapter's training size, else 81
    height: int | None = None
    width: int | None = None
    steps: int = 30
    guidance_scale: float = 5.0
    id_guidance_scale: float | None = None  # None = guidance_scale (the stage's: two branches)
    id_scale: float = 1.0
    seed: int = 0
    fps: float | None = None
    guidance_scale_2: float | None = None  # Wan2.2 A14B: the low-noise expert's (None = guidance_scale)


class OutOfMemory(LfaError):
    pass


def pick_faces(analyzer: Any, images: Sequence[np.ndarray], *, boxes: Sequence[Box | None] = (),
               face_index: int | None = None) -> tuple[list[Face], list[str]]:
    """The person's face in each image, by :mod:`lfa.face.choose`'s rule (the face at the spec's
    ``reference_box``, else the largest), or the ``face_index``-th largest; and a note for each image with
    several faces saying which was taken."""
    from lfa.face.choose import by_size, choose_face

    picked, notes = [], []
    for n, image in enumerate(images):
        found = by_size(analyzer.analyze(image))
        box = boxes[n] if n < len(boxes) else None
        if not found:
            raise ConfigError(f"face image {n + 1}: no face found", "pass a photo with one clearly visible face")
        if face_index is not None:
            if face_index >= len(found):
                raise ConfigError(f"face image {n + 1}: --face-index {face_index} but {len(found)} face(s) found",
                                  f"use --face-index 0..{len(found) - 1} (0 = the largest)")
            face, why = found[face_index], f"--face-index {face_index}"
        elif box is not None:
            face, why = choose_face(found, box), "the spec's reference_box"
            if face is None:
                where = ", ".join(f"{v:.0f}" for v in box)
                raise ConfigError(f"face image {n + 1}: no face at the spec's reference_box [{where}] "
                                  f"({len(found)} face(s) elsewhere)",
                                  "re-run `lfa bench make-spec` for this image, or remove its reference_box")
        else:
            face, why = found[0], "the largest"
        if len(found) > 1 and why == "the largest":
            where = ", ".join(f"{v:.0f}" for v in face.box)
            notes.append(f"face image {n + 1}: {len(found)} faces found, took the largest (box {where}); "
                         "pick another with --face-index (0 = the largest)")
        picked.append(face)
    return picked, notes


def _check_sizes(options: GenerateOptions, wan: Any) -> None:
    wan.check_size(options.num_frames, options.height, options.width, how="--")
    if options.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {options.steps}", "use e.g. 30")


class IdentityGenerator:
    """A Wan base + a trained identity adapter, ready to turn (faces, prompt) into frames."""

    def __init__(self, base: str | os.PathLike[str], adapter: str | os.PathLike[str], *,
                 encoders_file: str | os.PathLike[str] | None = None, device: str | None = None,
                 cpu_offload: bool = False, vae_tiling: bool = False, analyzer: Any = None) -> None:
        from lfa.model.adapter import IdentityAdapter
        from lfa.model.config import AdapterConfig
        from lfa.model.persistence import CONFIG_NAME
        from lfa.wan.base import load_base
        from lfa.wan.encoders import build_encoders, encoder_spec

        self.base_path, self.adapter_path = Path(base), Path(adapter)
        folders = adapter_folders(self.adapter_path, load_base(self.base_path, parts=()))  # before the slow load
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.cpu_offload = cpu_offload and self.device.type != "cpu"
        self.wan = load_base(self.base_path)
        if vae_tiling:
            self.wan.vae.enable_tiling()
        meta = json.loads((next(iter(folders.values())) / CONFIG_NAME).read_text())
        experts = AdapterConfig.from_dict(meta["config"]).experts
        spec, root = encoder_spec(self.wan.path, encoders_file)
        self.encoders = build_encoders(spec, root, self.wan.vae, experts)
        self.adapters = {name: IdentityAdapter.from_pretrained(folder, getattr(self.wan, name), encoders=self.encoders)
                         for name, folder in folders.items()}
        self.adapter = next(iter(self.adapters.values()))
        training = next(iter(folders.values())) / TRAINING_META
        self.training = json.loads(training.read_text()) if training.is_file() else {}
        self._analyzer = analyzer
        self.latents: torch.Tensor | None = None
        self._ready()

    @classmethod
    def from_parts(cls, wan: Any, adapter: Any, training: dict[str, Any]) -> IdentityGenerator:
        """Over models already in memory (a training run's samples): ``wan`` with ``adapter`` attached to its
        transformer, on the transformer's device (text encoder and VAE visit the GPU only while they run);
        faces come as :class:`FaceFeatures` to :meth:`sample`."""
        self = cls.__new__(cls)
        self.base_path, self.adapter_path = Path(wan.path), None
        self.device = next(wan.transformer.parameters()).device
        self.cpu_offload = self.device.type != "cpu"
        self.wan, self.encoders, self.adapter = wan, {}, adapter
        self.adapters = {"transformer": adapter}
        self.training, self._analyzer = dict(training), None
        self.latents = None
        self._ready()
        return self

    def _ready(self) -> None:
        self.pipe = self.wan.pipeline()
        if not (self.cpu_offload and self.wan.two_experts):  # else: each expert visits the GPU for its stage
            self.wan.transformer.to(self.device)
            if self.wan.transformer_2 is not None:
                self.wan.transformer_2.to(self.device)
        if not self.cpu_offload:
            self.wan.text_encoder.to(self.device)
            self.wan.vae.to(self.device)
            if self.wan.image_encoder is not None:
                self.wan.image_encoder.to(self.device)

    @property
    def analyzer(self):
        if self._analyzer is None:
            from lfa.face import FaceAnalyzer

            self._analyzer = FaceAnalyzer()
        return self._analyzer

    # -------------------------------------------------------------- faces
    def faces(self, images: list[np.ndarray], face_index: int | None = None,
              boxes: Sequence[Box | None] = (), on_note: Callable[[str], None] | None = None):
        """One face per image (:func:`pick_faces`), aligned and measured by lfa's perception -> ``FaceInputs``."""
        from lfa.model.encoders import prepare_faces

        picked, notes = pick_faces(self.analyzer, images, boxes=boxes, face_index=face_index)
        for note in notes:
            if on_note:
                on_note(note)
        angles = [[0.0 if np.isnan(v) else float(v) for v in (f.yaw, f.pitch, f.roll)] for f in picked]
        identity = getattr(self.encoders.get("identity"), "encoder", None)
        return prepare_faces(images, [f.landmarks5 for f in picked], size=int(self.training.get("face_size", 112)),
                             angles=angles, identity=identity)

    # -------------------------------------------------------------- sampling
    def resolve(self, options: GenerateOptions) -> GenerateOptions:
        defaults = {"num_frames": 81, "height": 480, "width": 832, "fps": 16.0}
        for key in defaults:
            if getattr(options, key) is None:
                setattr(options, key, self.training.get(key, defaults[key]))
        if options.id_guidance_scale is None:
            options.id_guidance_scale = options.guidance_scale
        _check_sizes(options, self.wan)
        return options

    def __call__(self, images: list[np.ndarray], options: GenerateOptions, *, face_index: int | None = None,
                 boxes: Sequence[Box | None] = (), on_note: Callable[[str], None] | None = None,
                 on_step: Any = None, first_frame: np.ndarray | None = None) -> np.ndarray:
        """(F, H, W, 3) uint8 frames; ``images``: the face photo(s) (several: reference views), ``boxes``
        the person's box in each (a spec's ``reference_box``), ``on_note`` told which face was taken of a
        photo with several; ``first_frame``: an I2V base's first frame (default: the first face photo)."""
        options = self.resolve(options)
        if first_frame is not None and not (self.wan.i2v or self.wan.expand_timesteps):
            raise ConfigError("a first frame (--image) needs an image-to-video or Wan2.2 TI2V base",
                              "pass a Wan I2V or TI2V base, or leave --image out")
        faces = self.faces(images, face_index, boxes, on_note)
        references = self._references(images, options) if self.adapter.config.references != "none" else None
        condition = None
        if self.wan.i2v:
            from lfa.wan.frames import fit_to_bucket
            from lfa.wan.frames import first_frame_condition

            frame = fit_to_bucket(images[0] if first_frame is None else first_frame, options.height, options.width)
            condition = first_frame_condition(self.pipe, frame, options.num_frames)
        elif first_frame is not None:  # TI2V: the first latent frame itself
            from lfa.model.vae import encode_images
            from lfa.wan.frames import fit_to_bucket, to_video_tensor

            pixels = to_video_tensor([fit_to_bucket(first_frame, options.height, options.width)])[:, 0]
            condition = {"first_frame": encode_images(self.wan.vae, pixels[None])[0].cpu()}
        return self.sample(faces, references, options, on_step=on_step, condition=condition)

    def sample(self, faces: Any, references: torch.Tensor | None, options: GenerateOptions, *,
               on_step: Any = None, condition: dict[str, torch.Tensor] | None = None) -> np.ndarray:
        """(F, H, W, 3) uint8 frames from prepared faces (``FaceInputs`` or ``FaceFeatures``), reference
        latents (B, z, K, h, w) or None and, for an I2V base, the first-frame ``condition`` (unbatched
        ``condition`` and ``image_embeds`` of :func:`lfa.wan.frames.first_frame_condition`)."""
        options = self.resolve(options)
        if self.wan.i2v and condition is None:
            raise ConfigError("an image-to-video base needs a first-frame condition", "pass a first frame")
        scales = {name: adapter.scale for name, adapter in self.adapters.items()}
        try:
            return self._sample(faces, references, options, on_step, condition or {})
        except torch.cuda.OutOfMemoryError as exc:
            raise OutOfMemory(f"out of GPU memory at {options.num_frames}x{options.height}x{options.width}",
                              "add --cpu-offload and --vae-tiling, or lower --num-frames/--height/--width") from exc
        finally:
            for name, adapter in self.adapters.items():
                adapter.scale = scales[name]

    @torch.no_grad()
    def _sample(self, faces: Any, references: torch.Tensor | None, o: GenerateOptions, on_step: Any,
                condition: dict[str, torch.Tensor]) -> np.ndarray:
        from lfa.wan.base import I2V_TEXT_LEN

        pipe, wan, device = self.pipe, self.wan, self.device
        length = int(self.training.get("max_sequence_length", 512))
        if wan.image_encoder is not None:
            length = I2V_TEXT_LEN  # Wan's I2V attention reads the last 512 context tokens as text
        text_device = torch.device("cpu") if self.cpu_offload else device
        if self.cpu_offload:
            wan.text_encoder.to(device)
        positive, negative = pipe.encode_prompt(o.prompt, o.negative_prompt, do_classifier_free_guidance=True,
                                                max_sequence_length=length, device=device)
        if self.cpu_offload:
            wan.text_encoder.to(text_device)
        dtype = next(wan.transformer.parameters()).dtype
        positive, negative = positive.to(device, dtype), negative.to(device, dtype)
        generator = torch.Generator("cpu").manual_seed(o.seed)
        shape = (1, wan.vae.config.z_dim, *wan.latent_shape(o.num_frames, o.height, o.width))
        latents = torch.randn(shape, generator=generator).to(device)  # as the Wan pipelines draw them
        cond = condition.get("condition")
        cond = None if cond is None else cond[None].to(device, dtype)
        image = condition.get("image_embeds")
        image = None if image is None else image[None].to(device, dtype)
        first = condition.get("first_frame")  # TI2V: (z, 1, h, w), kept clean
        first = None if first is None else first[None].to(device, torch.float32)
        features = None
        for adapter in self.adapters.values():
            adapter.scale = o.id_scale
        if self.adapter.config.has_face_path:
            features = self.adapter.features(faces).to(device)
        if references is not None:
            references = references.to(device)
        scheduler = pipe.scheduler
        scheduler.set_timesteps(o.steps, device=device)
        boundary = None if not wan.two_experts else wan.boundary_ratio * scheduler.config.num_train_timesteps
        per_frame = (shape[3] // wan.patch[1]) * (shape[4] // wan.patch[2])
        active = None
        # one conditioning per adapter for the whole video: the faces are projected once, not at every step
        with contextlib.ExitStack() as stack:
            for adapter in self.adapters.values():
                stack.enter_context(adapter.conditioning(faces=features, references=references, text=positive))
            for i, t in enumerate(scheduler.timesteps):
                name = "transformer" if boundary is None or t >= boundary else "transformer_2"
                if name != active:
                    active = self._switch(active, name)
                transformer, adapter = getattr(wan, name), self.adapters.get(name)
                g = o.guidance_scale if name == "transformer" or o.guidance_scale_2 is None else o.guidance_scale_2
                g_id = g if o.id_guidance_scale == o.guidance_scale else o.id_guidance_scale  # same: two branches
                if first is not None:
                    latents[:, :, :1] = first
                x = latents.to(dtype)
                ts = t.expand(1).to(device)
                if first is not None:  # per-token timesteps, 0 on the clean first frame's tokens
                    ts = ts[:, None].expand(1, shape[2] * per_frame).clone()
                    ts[:, :per_frame] = 0

                def run(text: torch.Tensor) -> torch.Tensor:
                    inputs = x if cond is None else torch.cat([x, cond], dim=1)
                    return transformer(hidden_states=inputs, timestep=ts, encoder_hidden_states=text,
                                       encoder_hidden_states_image=image, return_dict=False)[0]

                plain = adapter.suspended() if adapter is not None else contextlib.nullcontext()
                three = adapter is not None and g_id != g
                with plain:  # no identity: the unconditional and text-only branches
                    v_uncond = run(negative).float()
                    v_text = run(positive).float() if three else None
                v_id = run(positive).float()
                if v_text is not None:
                    v = v_uncond + g * (v_text - v_uncond) + g_id * (v_id - v_text)
                else:
                    v = v_uncond + g * (v_id - v_uncond)
                latents = scheduler.step(v, t, latents, return_dict=False)[0]
                if on_step:
                    on_step(i + 1, o.steps)
        if first is not None:
            latents[:, :, :1] = first
        self.latents = latents.detach().cpu()  # the last sample's normalised latents (bench/identity_flow.py)
        return self._decode(latents)

    def _switch(self, previous: str | None, name: str) -> str:
        """A two-expert base with ``cpu_offload``: only the active expert on the GPU."""
        if self.cpu_offload and self.wan.two_experts:
            if previous is not None:
                getattr(self.wan, previous).to("cpu")
            getattr(self.wan, name).to(self.device)
        return name

    def _references(self, images: list[np.ndarray], o: GenerateOptions) -> torch.Tensor:
        from lfa.model.vae import encode_images
        from lfa.wan.frames import fit_to_bucket, to_video_tensor

        views = to_video_tensor([fit_to_bucket(img, o.height, o.width) for img in images]).permute(1, 0, 2, 3)
        return encode_images(self.wan.vae, views[None].to(next(self.wan.vae.parameters()).device))

    def _decode(self, latents: torch.Tensor) -> np.ndarray:
        vae = self.wan.vae
        if self.cpu_offload:
            vae.to(self.device)
        z = latents.shape[1]
        mean = torch.tensor(vae.config.latents_mean).view(1, z, 1, 1, 1).to(latents)
        std = torch.tensor(vae.config.latents_std).view(1, z, 1, 1, 1).to(latents)
        param = next(vae.parameters())
        video = vae.decode((latents * std + mean).to(param.device, param.dtype), return_dict=False)[0]
        if self.cpu_offload:
            vae.to("cpu")
        frames = self.pipe.video_processor.postprocess_video(video, output_type="np")[0]  # (F, H, W, 3) in [0, 1]
        return (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)

    def model_hashes(self) -> dict[str, str]:
        from lfa.registry.directories import directory_hash

        return {"base": directory_hash(self.base_path), "adapter": directory_hash(self.adapter_path)}


def adapter_folders(path: Path, wan: Any) -> dict[str, Path]:
    """The adapter folder of each transformer: ``path`` itself for a one-transformer base; for a two-expert
    base its ``transformer/`` and ``transformer_2/`` subfolders (at least one; ``lfa train`` writes both)."""
    from lfa.model.persistence import CONFIG_NAME
    from lfa.wan.base import EXPERTS

    if not wan.two_experts:
        if not (path / CONFIG_NAME).is_file():
            raise ConfigError(f"{path}: no {CONFIG_NAME}", "pass the adapter/ folder `lfa train` wrote")
        return {"transformer": path}
    found = {name: path / name for name in EXPERTS if (path / name / CONFIG_NAME).is_file()}
    if not found:
        raise ConfigError(f"{path}: a two-expert base needs {path}/transformer/ and/or {path}/transformer_2/ "
                          "(one adapter per expert)", "pass the adapter/ folder `lfa train` wrote on this base")
    return found


def write_result(frames: np.ndarray, out: Path, options: GenerateOptions, extra: dict[str, Any]) -> Path:
    """The mp4 (lfa.media.encode) and its sidecar JSON (prompt, seed, every argument, model hashes)."""
    from lfa.media.encode import write_video

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
    write_video(tmp, list(frames), options.fps)
    sidecar = {"prompt": options.prompt, "seed": options.seed, "arguments": asdict(options),
               "frames": int(frames.shape[0]), "height": int(frames.shape[1]), "width": int(frames.shape[2]),
               **extra}
    out.with_suffix(".json").write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out)
    return out


def generate_spec(generator: IdentityGenerator, spec: str | os.PathLike[str], out_dir: Path,
                  template: GenerateOptions, *, face_index: int | None = None, extra: dict[str, Any] | None = None,
                  on_item: Any = None, on_note: Callable[[str], None] | None = None) -> list[Path]:
    """One ``{id}.mp4`` (+ sidecar) per benchmark item, for ``lfa bench --videos NAME=DIR``; items whose
    video exists are skipped (resumable). An item's reference views are its face images, and its
    ``reference_box`` says which face of each is the person (the face ``lfa bench`` compares with). Its
    ``eval_references`` are never read here: they are for scoring only."""
    from dataclasses import replace

    from lfa.bench.spec import load_spec
    from lfa.media.image import read_image

    written = []
    for item in load_spec(spec):
        out = out_dir / f"{item.id}.mp4"
        if not out.is_file():
            options = replace(template, prompt=item.prompt or template.prompt)
            frames = generator([read_image(p) for p in item.references], options, face_index=face_index,
                               boxes=item.boxes, on_note=(lambda note, i=item.id: on_note(f"{i}: {note}"))
                               if on_note else None)
            write_result(frames, out, options, {**(extra or {}), "id": item.id,
                                                "references": [str(p) for p in item.references]})
        written.append(out)
        if on_item:
            on_item(item.id)
    return written
