"""Wan base directories: ``lfa model init --preset tiny|tiny-i2v|tiny-wan2.2-ti2v|tiny-wan2.2-a14b`` writes
one; :func:`load_base` reads any.

A base is a diffusers-format Wan text-to-video folder (``model_index.json``, ``transformer/``,
``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``) or image-to-video folder (Wan2.1: the same
plus ``image_encoder/`` and ``image_processor/`` for CLIP tokens of the first frame; both: a
transformer whose input carries the first-frame condition channels), plus ``lfa_encoders.json``, which
says where the face experts come from (see :mod:`lfa.wan.encoders`). Wan2.2 adds two kinds:

- two experts (A14B): ``transformer`` denoises above ``boundary_ratio * 1000``, ``transformer_2`` below;
- TI2V (5B): ``expand_timesteps``, per-token timesteps, the first frame kept clean when it conditions,
  and a VAE that compresses 16x16 pixels (:attr:`WanBase.vae_spatial`).

Real bases are user-supplied: add ``lfa_encoders.json`` next to their ``model_index.json`` or pass
``--encoders FILE``. Nothing downloads: every loader runs with ``local_files_only``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lfa.errors import ConfigError, ModelLoadError

BASE_PRESETS = ("tiny", "tiny-i2v", "tiny-wan2.2-ti2v", "tiny-wan2.2-a14b")
EXPERTS = ("transformer", "transformer_2")  # Wan2.2 A14B: the high-noise expert, then the low-noise one
PIPELINES = ("WanPipeline", "WanImageToVideoPipeline")
MODEL_INDEX = "model_index.json"
I2V_TEXT_LEN = 512
_WORDS = ("a person face turns left right up down looks at the camera smiles talks walks portrait woman man "
          "video of with in on the light dark background head profile view frontal speaks says hello")


# The adapter sized to the tiny backbone (inner width 32): the field's defaults (a 512-wide projector, face
# key/values of rank 128, a 4096-entry dictionary) would give 12.8M adapter parameters on a 36.7k backbone.
TINY_ADAPTER = {"projector_dim": 64, "projector_heads": 2, "num_queries": 4, "face_kv_rank": 0,
                "gate_hidden_dim": 16, "dictionary_size": 64, "pose_embed_dim": 16}


def tiny_transformer_config(text_dim: int, z_dim: int, *, i2v: bool = False) -> dict[str, Any]:
    from lfa.model.toy import toy_backbone_config

    return toy_backbone_config(latent_channels=z_dim, text_dim=text_dim, i2v=i2v)


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([_WORDS] * 4, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    from tokenizers import decoders

    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=512)


def init_tiny_base(out: str | os.PathLike[str], *, seed: int = 0, i2v: bool = False, preset: str | None = None) -> Path:
    """Write a complete, randomly initialised, tiny Wan base to ``out`` (seconds on a CPU): ``preset`` one of
    :data:`BASE_PRESETS` (default ``tiny``, or ``tiny-i2v`` with ``i2v``): Wan2.1 T2V, Wan2.1 I2V, a
    Wan2.2 TI2V-like base (48-channel-style VAE with a 2x2 patch, so 16x16 pixels per latent cell, and
    ``expand_timesteps``) or a Wan2.2 A14B-like base (two experts, ``boundary_ratio`` 0.875)."""
    import torch
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
    from transformers import CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    from lfa.wan.encoders import ENCODERS_FILE, EncoderSpec

    preset = preset or ("tiny-i2v" if i2v else "tiny")
    if preset not in BASE_PRESETS:
        raise ConfigError(f"unknown base preset {preset!r}", f"use one of: {', '.join(BASE_PRESETS)}")
    i2v, ti2v, two = preset == "tiny-i2v", preset == "tiny-wan2.2-ti2v", preset == "tiny-wan2.2-a14b"
    folder = Path(out)
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{folder} exists and is not empty", "pass a new --out folder")
    folder.mkdir(parents=True, exist_ok=True)
    quiet_progress_bars()
    torch.manual_seed(seed)
    z_dim, text_dim = (8 if ti2v else 4), 16
    tokenizer = _tiny_tokenizer()
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), d_model=text_dim, d_kv=8, num_heads=2,
                                               num_layers=1, d_ff=32, relative_attention_num_buckets=8))
    vae_kind = dict(is_residual=True, in_channels=12, out_channels=12, patch_size=2, scale_factor_spatial=16,
                    decoder_base_dim=8) if ti2v else {}  # Wan2.2's VAE layout (patchified RGB, 16x16 px per cell)
    vae = AutoencoderKLWan(base_dim=8, z_dim=z_dim, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           latents_mean=[0.0] * z_dim, latents_std=[1.0] * z_dim, **vae_kind)
    mean, std = latent_statistics(vae, size=64 if ti2v else 32)
    vae.register_to_config(latents_mean=mean, latents_std=std)
    transformer = WanTransformer3DModel.from_config(tiny_transformer_config(text_dim, z_dim, i2v=i2v))
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    parts: list[tuple[str, Any]] = [("tokenizer", tokenizer), ("text_encoder", text_encoder), ("vae", vae),
                                    ("transformer", transformer), ("scheduler", scheduler)]
    if two:  # the low-noise expert: the same shape, its own weights
        parts.append(("transformer_2", WanTransformer3DModel.from_config(tiny_transformer_config(text_dim, z_dim))))
    if i2v:
        from transformers import CLIPImageProcessorPil

        image_dim = transformer.config.image_dim  # the width of the CLIP tokens the transformer reads
        parts += [("image_encoder", CLIPVisionModel(CLIPVisionConfig(
            hidden_size=image_dim, intermediate_size=2 * image_dim, num_hidden_layers=2, num_attention_heads=2,
            image_size=32, patch_size=8))),
                  ("image_processor", CLIPImageProcessorPil(size={"shortest_edge": 32},
                                                            crop_size={"height": 32, "width": 32}))]
    for name, part in parts:
        part.save_pretrained(folder / name)
    semantic = CLIPVisionModel(CLIPVisionConfig(hidden_size=12, intermediate_size=24, num_hidden_layers=2,
                                                num_attention_heads=2, image_size=32, patch_size=8))
    semantic.save_pretrained(folder / "lfa_encoders" / "semantic")
    index = {"_class_name": PIPELINES[i2v], "_diffusers_version": _diffusers_version(),
             "tokenizer": ["transformers", type(tokenizer).__name__],
             "text_encoder": ["transformers", "UMT5EncoderModel"], "vae": ["diffusers", "AutoencoderKLWan"],
             "transformer": ["diffusers", "WanTransformer3DModel"],
             "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"]}
    if i2v:
        index.update(image_encoder=["transformers", "CLIPVisionModel"],
                     image_processor=["transformers", "CLIPImageProcessor"])
    if two:
        index.update(transformer_2=["diffusers", "WanTransformer3DModel"], boundary_ratio=0.875)
    if ti2v:
        index.update(expand_timesteps=True)
    (folder / MODEL_INDEX).write_text(json.dumps(index, indent=2) + "\n")
    spec = EncoderSpec(identity={"kind": "registry", "backend": "dlib"},
                       semantic={"kind": "vision_tower", "path": "lfa_encoders/semantic"},
                       detail={"kind": "vae", "size": 32, "patch": 2})
    (folder / ENCODERS_FILE).write_text(spec.to_json())
    side = 64 if ti2v else 32  # TI2V: 16x16 px per latent cell, 2x2 cells per token
    (folder / "lfa_base.json").write_text(json.dumps(
        {"preset": preset,
         "train_defaults": {"height": side, "width": side, "num_frames": 5, "fps": 8.0,
                            # Wan's I2V attention takes the last 512 context tokens as text
                            "max_sequence_length": I2V_TEXT_LEN if i2v else 16,
                            "adapter": TINY_ADAPTER}}, indent=2) + "\n")
    return folder


def latent_statistics(vae: Any, size: int = 32) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of ``vae``'s raw latents on the sample photos the packages ship, their
    mirrors and crops (no perception model needed), at ``size`` pixels: what ``latents_mean`` /
    ``latents_std`` must be for the flow loss to see unit-variance latents (a random VAE's raw latents have
    a std of about 0.1, which leaves the loss almost all noise)."""
    import torch
    import torch.nn.functional as F

    from lfa.samples import SAMPLE_NAMES, sample_photo

    views = []
    for name in SAMPLE_NAMES:
        photo = torch.from_numpy(sample_photo(name)).permute(2, 0, 1).float() / 127.5 - 1.0
        h, w = photo.shape[1:]
        side = min(h, w)
        for frac in (1.0, 0.75, 0.5):  # centred crops: whole, head and shoulders, face
            c = int(side * frac)
            top, left = (h - c) // 2 if frac < 1 else 0, (w - c) // 2
            crop = F.interpolate(photo[None, :, top: top + c, left: left + c], size=(size, size), mode="area")[0]
            views += [crop, crop.flip(-1)]
    frames = torch.stack(views)[:, :, None]  # (N, 3, 1, H, W): one-frame videos
    with torch.no_grad():
        latents = vae.encode(frames).latent_dist.mode()  # raw: the config still says mean 0, std 1
    flat = latents.transpose(0, 1).flatten(1).double()
    return [round(float(v), 6) for v in flat.mean(1)], [round(float(v), 6) for v in flat.std(1).clamp_min(1e-6)]


def quiet_progress_bars() -> None:
    """transformers/diffusers draw progress bars on the terminal when they load or save weights: off.
    Their log lines (they keep a handler of their own on the terminal) go where lfa sends third-party
    output instead: the log file, or the terminal with ``lfa -v``."""
    import diffusers.utils.logging
    import transformers.utils.logging

    for library in (transformers.utils.logging, diffusers.utils.logging):
        library.disable_progress_bar()
        library.disable_default_handler()
        library.enable_propagation()


def _diffusers_version() -> str:
    import diffusers

    return diffusers.__version__


@dataclass
class WanBase:
    """The parts of a Wan base that training and generation use (loaded on CPU, float32 unless asked)."""

    path: Path
    transformer: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    train_defaults: dict[str, Any]
    i2v: bool = False  # an image-to-video base: first-frame condition channels (+ CLIP image tokens)
    image_encoder: Any = None
    image_processor: Any = None
    transformer_2: Any = None  # Wan2.2 A14B: the low-noise expert
    boundary_ratio: float | None = None  # ... used below boundary_ratio * 1000
    expand_timesteps: bool = False  # Wan2.2 TI2V: per-token timesteps, first frame kept clean
    vae_spatial: int = 8  # pixels per latent cell (16 for Wan2.2's VAE)
    vae_temporal: int = 4  # frames per latent frame after the first
    patch: tuple[int, int, int] = (1, 2, 2)  # the transformer's (t, h, w) patch

    @property
    def two_experts(self) -> bool:
        return self.boundary_ratio is not None

    @property
    def size_multiple(self) -> int:
        """Heights and widths must be multiples of this: one transformer token (32 px for TI2V)."""
        return self.vae_spatial * self.patch[1]

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        return (num_frames - 1) // self.vae_temporal + 1, height // self.vae_spatial, width // self.vae_spatial

    def check_size(self, num_frames: int, height: int, width: int, *, how: str = "--set ") -> None:
        """One-line errors for a video size this base cannot take."""
        step, m = self.vae_temporal, self.size_multiple
        if (num_frames - 1) % step:
            raise ConfigError(f"num_frames must be {step}n+1 for this base, got {num_frames}",
                              f"use {step * ((num_frames - 1) // step) + 1}")
        if height % m or width % m:
            raise ConfigError(f"height and width must be multiples of {m} for this base "
                              f"({self.vae_spatial} px per latent cell x a {self.patch[1]}-cell patch), "
                              f"got {height}x{width}", f"use e.g. {how}height={max(m, height // m * m)} "
                                                       f"{how}width={max(m, width // m * m)}")

    def pipeline(self):
        """A diffusers ``WanPipeline`` (``WanImageToVideoPipeline`` for I2V) over these components."""
        from diffusers import WanImageToVideoPipeline, WanPipeline

        wan22 = dict(transformer_2=self.transformer_2, boundary_ratio=self.boundary_ratio,
                     expand_timesteps=self.expand_timesteps)
        if self.i2v:
            return WanImageToVideoPipeline(tokenizer=self.tokenizer, text_encoder=self.text_encoder, vae=self.vae,
                                           transformer=self.transformer, scheduler=self.scheduler,
                                           image_encoder=self.image_encoder, image_processor=self.image_processor,
                                           **wan22)
        return WanPipeline(tokenizer=self.tokenizer, text_encoder=self.text_encoder, vae=self.vae,
                           transformer=self.transformer, scheduler=self.scheduler, **wan22)


def check_base(path: str | os.PathLike[str]) -> Path:
    """The base folder, or a one-line error saying why it is not a Wan diffusers model."""
    folder = Path(path).expanduser()
    index = folder / MODEL_INDEX
    if not index.is_file():
        raise ModelLoadError(f"{folder}: no {MODEL_INDEX}: not a diffusers model folder",
                             "pass a Wan2.x diffusers directory, or make one with `lfa model init --preset tiny`")
    try:
        meta = json.loads(index.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{index}: not valid JSON ({exc})", "restore the model folder") from exc
    if meta.get("transformer", [None, None])[1] != "WanTransformer3DModel" or "vae" not in meta:
        raise ModelLoadError(f"{folder}: {meta.get('_class_name')} is not a Wan model "
                             "(no WanTransformer3DModel transformer)", "pass a Wan2.1/2.2 diffusers directory")
    if meta.get("_class_name") not in PIPELINES:
        raise ModelLoadError(f"{folder}: a {meta.get('_class_name')} base; lfa train/generate support Wan "
                             "text-to-video (WanPipeline) and image-to-video (WanImageToVideoPipeline) bases",
                             "pass a Wan2.1/2.2 T2V or Wan2.1 I2V diffusers directory")
    two = bool((meta.get("transformer_2") or [None])[0])
    if two != (meta.get("boundary_ratio") is not None):
        raise ModelLoadError(f"{folder}: a Wan2.2 two-expert base needs both transformer_2 and boundary_ratio "
                             "in model_index.json", "restore the model folder")
    parts = ["transformer", "vae", "text_encoder", "tokenizer", "scheduler"] + (["transformer_2"] if two else [])
    if (meta.get("image_encoder") or [None])[0]:
        parts += ["image_encoder", "image_processor"]
    for part in parts:
        if not (folder / part).is_dir():
            raise ModelLoadError(f"{folder}: the {part}/ folder is missing", "pass a complete diffusers directory")
    return folder


def load_base(path: str | os.PathLike[str], *, dtype: Any = None, parts: tuple[str, ...] | None = None) -> WanBase:
    """Load a Wan base from a local folder; ``parts`` limits which components are loaded (None for the rest)."""
    import torch
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
    from diffusers.schedulers import UniPCMultistepScheduler
    from transformers import AutoTokenizer, UMT5EncoderModel

    folder = check_base(path)
    quiet_progress_bars()
    dtype = dtype or torch.float32
    meta = json.loads((folder / MODEL_INDEX).read_text())
    i2v = meta["_class_name"] == "WanImageToVideoPipeline"
    clip = i2v and bool((meta.get("image_encoder") or [None])[0])
    two = bool((meta.get("transformer_2") or [None])[0])
    wanted = set(parts or ("transformer", "vae", "text_encoder", "tokenizer", "scheduler", "image_encoder",
                           "transformer_2"))
    loaded: dict[str, Any] = {}
    try:
        if clip and "image_encoder" in wanted:
            from transformers import CLIPImageProcessorPil, CLIPVisionModel

            loaded["image_encoder"] = CLIPVisionModel.from_pretrained(
                folder / "image_encoder", torch_dtype=torch.float32, local_files_only=True)
            loaded["image_processor"] = CLIPImageProcessorPil.from_pretrained(folder / "image_processor",
                                                                              local_files_only=True)
        for name in EXPERTS if two else EXPERTS[:1]:
            if name in wanted:
                loaded[name] = WanTransformer3DModel.from_pretrained(folder / name, torch_dtype=dtype,
                                                                     local_files_only=True)
        if "vae" in wanted:
            loaded["vae"] = AutoencoderKLWan.from_pretrained(folder / "vae", torch_dtype=torch.float32,
                                                             local_files_only=True)
        if "text_encoder" in wanted:
            loaded["text_encoder"] = UMT5EncoderModel.from_pretrained(folder / "text_encoder", torch_dtype=dtype,
                                                                      local_files_only=True)
        if "tokenizer" in wanted:
            loaded["tokenizer"] = AutoTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
        if "scheduler" in wanted:
            config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
            cls = UniPCMultistepScheduler if config.get("_class_name") == "UniPCMultistepScheduler" \
                else FlowMatchEulerDiscreteScheduler
            loaded["scheduler"] = cls.from_pretrained(folder / "scheduler", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{folder}: could not load the Wan base ({exc})",
                             "check the folder is a complete Wan diffusers directory") from exc
    defaults: dict[str, Any] = {}
    lfa_meta = folder / "lfa_base.json"
    if lfa_meta.is_file():
        defaults = json.loads(lfa_meta.read_text()).get("train_defaults", {})
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    patch = json.loads((folder / "transformer" / "config.json").read_text()).get("patch_size", (1, 2, 2))
    return WanBase(folder, loaded.get("transformer"), loaded.get("vae"), loaded.get("text_encoder"),
                   loaded.get("tokenizer"), loaded.get("scheduler"), defaults, i2v, loaded.get("image_encoder"),
                   loaded.get("image_processor"), loaded.get("transformer_2"),
                   meta.get("boundary_ratio") if two else None, bool(meta.get("expand_timesteps")),
                   int(vae_config.get("scale_factor_spatial") or 8), int(vae_config.get("scale_factor_temporal") or 4),
                   tuple(int(v) for v in patch))


def check_text_length(base: WanBase | Path, max_sequence_length: int) -> None:
    """Wan's I2V attention takes the last 512 context tokens as text: an I2V base with CLIP image tokens
    needs prompts padded to exactly 512."""
    folder = base.path if isinstance(base, WanBase) else Path(base)
    meta = json.loads((folder / MODEL_INDEX).read_text())
    if (meta.get("image_encoder") or [None])[0] and max_sequence_length != I2V_TEXT_LEN:
        raise ConfigError(f"an image-to-video base reads exactly {I2V_TEXT_LEN} text tokens, "
                          f"max_sequence_length is {max_sequence_length}", f"set max_sequence_length={I2V_TEXT_LEN}")
