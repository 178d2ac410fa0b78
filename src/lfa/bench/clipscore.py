"""CLIPScore with a user-supplied CLIP: image-text cosine of video frames with the prompt.

Two formats, never downloaded:

* a local **transformers** folder (``config.json`` of model type ``clip`` + weights + tokenizer files,
  ``preprocessor_config.json`` optional), e.g. ``openai/clip-vit-base-patch32`` saved to disk;
* an **open_clip** architecture and checkpoint, written ``open_clip:ARCH:FILE`` (e.g.
  ``open_clip:ViT-B-32:/models/open_clip_pytorch_model.bin``); needs the ``open_clip_torch``
  package. Weights are read with ``torch.load(weights_only=True)`` or safetensors only.

Images are preprocessed as CLIP's own processor does (shortest side resized to the model's size with
bicubic filtering, centre crop, scale to [0, 1], normalise with the model's mean/std).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from lfa.errors import ConfigError, ModelLoadError, ModelMissingError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIPSCORE_WEIGHT = 100.0  # CLIPScore = 100 * max(cos, 0), torchmetrics' scale (Hessel et al. use 2.5)


def preprocess(images: Sequence[np.ndarray], size: int, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """RGB uint8 images -> (N, 3, size, size) float32, CLIP style."""
    out = []
    for img in images:
        pil = Image.fromarray(np.ascontiguousarray(img))
        w, h = pil.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        pil = pil.resize((nw, nh), Image.Resampling.BICUBIC)
        left, top = (nw - size) // 2, (nh - size) // 2
        arr = np.asarray(pil.crop((left, top, left + size, top + size)), np.float32) / 255.0
        out.append((arr - np.asarray(mean, np.float32)) / np.asarray(std, np.float32))
    return np.stack(out).transpose(0, 3, 1, 2).astype(np.float32)


class ClipScorer:
    """``cosines(images, text)``: per-image cosine of CLIP image and text embeddings."""

    def __init__(self, source: str | Path, *, device: str = "cpu") -> None:
        import torch

        self.source = str(source)
        self.device = torch.device(device)
        if self.source.startswith("open_clip:"):
            self._load_open_clip(self.source)
        else:
            self._load_transformers(Path(self.source).expanduser())

    # -- loading ---------------------------------------------------------------------------------
    def _load_transformers(self, path: Path) -> None:
        if not (path / "config.json").is_file():
            raise ModelMissingError(f"CLIP model folder not found or without config.json: {path}",
                                    "pass a local transformers CLIP folder (config.json, weights, tokenizer) or "
                                    "open_clip:ARCH:FILE")
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        try:
            config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{path}: not a transformers model folder ({exc})",
                                 "pass a local CLIP folder with config.json and weights") from exc
        if not str(config.model_type).startswith("clip"):
            raise ModelLoadError(f"{path}: model type {config.model_type!r} is not CLIP",
                                 "pass a CLIP model (model_type \"clip\") for CLIPScore")
        try:
            self.model = transformers.CLIPModel.from_pretrained(path, local_files_only=True).to(self.device).eval()
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{path}: CLIP weights or tokenizer do not load ({exc})",
                                 "save the model with save_pretrained and its tokenizer in the same folder") from exc
        self.kind = "transformers"
        self.max_length = int(config.text_config.max_position_embeddings)
        self.size, self.mean, self.std = int(config.vision_config.image_size), CLIP_MEAN, CLIP_STD
        pre = path / "preprocessor_config.json"
        if pre.is_file():
            cfg = json.loads(pre.read_text())
            crop = cfg.get("crop_size", self.size)
            self.size = int(crop.get("height", self.size) if isinstance(crop, dict) else crop)
            self.mean = tuple(cfg.get("image_mean", CLIP_MEAN))
            self.std = tuple(cfg.get("image_std", CLIP_STD))
        self.logit_scale = float(self.model.logit_scale.exp().item())
        self.files = sorted(p for p in path.iterdir() if p.is_file())

    def _load_open_clip(self, source: str) -> None:
        try:
            _, arch, file = source.split(":", 2)
        except ValueError:
            raise ConfigError(f"bad open_clip CLIP {source!r}", "write open_clip:ARCH:FILE, "
                              "e.g. open_clip:ViT-B-32:/models/open_clip_pytorch_model.bin") from None
        path = Path(file).expanduser()
        if not path.is_file():
            raise ModelMissingError(f"open_clip checkpoint not found: {path}", "pass the checkpoint file's path")
        try:
            import open_clip
        except ImportError:
            raise ModelLoadError("open_clip is not installed", "pip install open_clip_torch, or pass a "
                                 "transformers CLIP folder instead") from None
        from lfa.face.nets.weights import load_state_dict_file

        logging.getLogger("open_clip").setLevel(logging.ERROR)
        try:
            model = open_clip.create_model(arch, pretrained=None)
        except RuntimeError as exc:
            raise ConfigError(f"open_clip does not know the architecture {arch!r}",
                              "use a name from open_clip.list_models(), e.g. ViT-B-32") from exc
        state = load_state_dict_file(path)
        try:
            model.load_state_dict(dict(state))
        except RuntimeError as exc:
            raise ModelLoadError(f"{path} does not fit open_clip {arch}: {str(exc).splitlines()[0]}",
                                 "pass the checkpoint trained for that architecture") from exc
        self.model = model.to(self.device).eval()
        self.tokenizer = open_clip.get_tokenizer(arch)
        self.kind = "open_clip"
        size = getattr(model.visual, "image_size", 224)
        self.size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.mean = tuple(getattr(model.visual, "image_mean", None) or CLIP_MEAN)
        self.std = tuple(getattr(model.visual, "image_std", None) or CLIP_STD)
        self.logit_scale = float(model.logit_scale.exp().item())
        self.files = [path]

    # -- scoring ---------------------------------------------------------------------------------
    def cosines(self, images: Sequence[np.ndarray], text: str) -> np.ndarray:
        """Cosine of each RGB uint8 image's embedding with ``text``'s, float64 (N,)."""
        import torch

        if len(images) == 0:
            return np.zeros(0)
        pixels = torch.from_numpy(preprocess(images, self.size, self.mean, self.std)).to(self.device)
        with torch.inference_mode():
            if self.kind == "transformers":
                tokens = self.tokenizer([text], padding=True, truncation=True, max_length=self.max_length,
                                        return_tensors="pt").to(self.device)
                out = self.model(input_ids=tokens["input_ids"], attention_mask=tokens.get("attention_mask"),
                                 pixel_values=pixels)
                img, txt = out.image_embeds, out.text_embeds
            else:
                img = self.model.encode_image(pixels)
                txt = self.model.encode_text(self.tokenizer([text]).to(self.device))
            img = torch.nn.functional.normalize(img.float(), dim=-1)
            txt = torch.nn.functional.normalize(txt.float(), dim=-1)
            return (img @ txt[0]).double().cpu().numpy()


def clipscore(cosines: np.ndarray) -> float:
    """CLIPScore of a video: mean over frames of ``100 * max(cos, 0)``."""
    cos = np.asarray(cosines, np.float64)
    return float(CLIPSCORE_WEIGHT * np.maximum(cos, 0.0).mean()) if cos.size else float("nan")
