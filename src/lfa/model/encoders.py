"""Face encoders behind one interface: aligned face crops -> expert tokens (B, N, D).

Every encoder reads the same :class:`FaceInputs` (crops aligned on the ArcFace template by
:func:`lfa.face.align.align_face`, any side length) and resizes/normalises for its own network:

- identity: an ArcFace-class embedding as one token — a torch IR network
  (:class:`~lfa.face.nets.irse.IRBackbone`) or the registered identity model's embedding;
- semantic: hidden states of chosen layers of a CLIP/SigLIP vision tower (transformers);
- detail: Wan VAE latents of the crop, patchified (:mod:`lfa.model.vae`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lfa.errors import ConfigError, ModelLoadError
from lfa.face.align import ARCFACE_112, align_face
from lfa.face.embedding import l2_normalize
from lfa.face.identity import IdentityEncoder, embed_faces
from lfa.model.vae import encode_images, patchify

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SIGLIP_MEAN = SIGLIP_STD = (0.5, 0.5, 0.5)


@dataclass
class FaceInputs:
    """A batch of faces. ``crops``: (B, 3, S, S) RGB in [0, 1], aligned on ``ARCFACE_112.scaled(S)``."""

    crops: torch.Tensor
    angles: torch.Tensor | None = None  # (B, 3) degrees: yaw, pitch, roll (lfa.face.angles convention)
    embeddings: torch.Tensor | np.ndarray | None = None  # (B, D) identity embeddings computed elsewhere

    def __post_init__(self) -> None:
        if self.crops.ndim != 4 or self.crops.shape[1] != 3 or self.crops.shape[2] != self.crops.shape[3]:
            raise ConfigError(f"face crops must be (B, 3, S, S), got {tuple(self.crops.shape)}",
                              "build them with lfa.model.prepare_faces")
        if self.angles is not None and tuple(self.angles.shape) != (self.crops.shape[0], 3):
            raise ConfigError(f"angles must be (B, 3) = (yaw, pitch, roll), got {tuple(self.angles.shape)}",
                              "pass one angle triple per face")


@dataclass
class FaceFeatures:
    """What the frozen encoders produced: expert name -> tokens (B, N, D_expert), plus head angles."""

    tokens: dict[str, torch.Tensor] = field(default_factory=dict)
    angles: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return next(iter(self.tokens.values())).shape[0]

    def to(self, device: torch.device | str) -> FaceFeatures:
        angles = None if self.angles is None else self.angles.to(device)
        return FaceFeatures({k: v.to(device) for k, v in self.tokens.items()}, angles)


def prepare_faces(images: Sequence[np.ndarray], landmarks5: Sequence[np.ndarray], *, size: int = 224,
                  angles: Sequence[Sequence[float]] | None = None, embeddings: np.ndarray | None = None,
                  identity: IdentityEncoder | None = None) -> FaceInputs:
    """RGB uint8 images and their 5 landmarks -> :class:`FaceInputs` of ``size`` x ``size`` aligned crops.

    ``identity``: a registered identity model (``FaceAnalyzer(...).identity``); its embeddings are
    computed on the original images with its own alignment template and stored in ``embeddings``.
    """
    pairs = list(zip(images, landmarks5, strict=True))
    template = ARCFACE_112.scaled(size)
    crops = np.stack([align_face(img, lm, template) for img, lm in pairs])
    if identity is not None:
        embeddings = np.concatenate([embed_faces(identity, img, [lm]) for img, lm in pairs])
    tensor = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    angle_tensor = None if angles is None else torch.tensor(np.asarray(angles, np.float32))
    return FaceInputs(tensor, angle_tensor, embeddings)


def _resize(crops: torch.Tensor, size: int) -> torch.Tensor:
    if crops.shape[-1] == size:
        return crops
    return F.interpolate(crops, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _normalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    m = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s


class FaceEncoder(nn.Module):
    """Interface: ``forward(FaceInputs) -> (B, N, token_dim)``; ``expert`` names the slot it fills."""

    expert: ClassVar[str]
    token_dim: int

    def forward(self, faces: FaceInputs) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class ArcFaceEncoder(FaceEncoder):
    """A torch ArcFace/IR network on 112x112 crops -> one L2-normalised embedding token."""

    expert = "identity"

    def __init__(self, backbone: nn.Module, token_dim: int = 512) -> None:
        super().__init__()
        self.backbone, self.token_dim = backbone, token_dim

    @classmethod
    def from_weights(cls, path: str | os.PathLike[str]) -> ArcFaceEncoder:
        from lfa.face.nets.irse import load_ir_backbone

        return cls(load_ir_backbone(path))

    def forward(self, faces: FaceInputs) -> torch.Tensor:
        param = next(self.backbone.parameters())
        x = _normalise(_resize(faces.crops.to(param.device, param.dtype), ARCFACE_112.size), (0.5,) * 3, (0.5,) * 3)
        return F.normalize(self.backbone(x).float(), dim=-1)[:, None]


class EmbeddingIdentityEncoder(FaceEncoder):
    """Identity tokens from the registered identity model (:mod:`lfa.face.identity`) or given embeddings.

    ``FaceInputs.embeddings`` win when present (see ``prepare_faces(identity=...)``); otherwise
    ``encoder.embed_aligned`` runs on the crops, which needs an ArcFace-template model.
    """

    expert = "identity"

    def __init__(self, token_dim: int = 512, encoder: IdentityEncoder | None = None) -> None:
        super().__init__()
        self.token_dim, self.encoder = token_dim, encoder
        self.register_buffer("_device_probe", torch.zeros(0), persistent=False)

    @classmethod
    def from_registry(cls, backend: str = "arcface", store: object | None = None) -> EmbeddingIdentityEncoder:
        """The identity model registered under ``backend`` (arcface, curricularface, dlib) in the model store."""
        from lfa.face.analyzer import AnalyzerConfig, build_identity
        from lfa.registry import ModelStore

        encoder = build_identity(AnalyzerConfig(identity=backend), store or ModelStore())
        if encoder is None:
            raise ConfigError("identity backend 'none' gives no embeddings", "use arcface, curricularface or dlib")
        size = encoder.template.size
        dim = encoder.embed_aligned(np.zeros((1, size, size, 3), np.uint8)).shape[1]
        return cls(int(dim), encoder)

    def forward(self, faces: FaceInputs) -> torch.Tensor:
        if faces.embeddings is not None:
            emb = faces.embeddings
            emb = emb.detach().float().cpu().numpy() if isinstance(emb, torch.Tensor) else np.asarray(emb)
        elif self.encoder is not None:
            template = getattr(self.encoder, "template", None)
            if template is None or template.name != ARCFACE_112.name:
                raise ConfigError("the registered identity model does not use the ArcFace template",
                                  "precompute embeddings with lfa.face.identity.embed_faces and pass "
                                  "FaceInputs.embeddings")
            crops = _resize(faces.crops.float().cpu(), template.size)
            uint8 = (crops.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
            emb = self.encoder.embed_aligned(uint8)
        else:
            raise ConfigError("no identity embeddings and no identity model",
                              "pass FaceInputs.embeddings or give EmbeddingIdentityEncoder an encoder")
        emb = l2_normalize(emb)
        if emb.ndim != 2 or emb.shape[1] != self.token_dim:
            raise ConfigError(f"identity embeddings have shape {emb.shape}, expected (B, {self.token_dim})",
                              "set identity_dim in the adapter config to the embedding size")
        return torch.from_numpy(emb).to(self._device_probe.device)[:, None]


class VisionTowerEncoder(FaceEncoder):
    """Hidden states of chosen layers of a CLIP/SigLIP vision model, concatenated along tokens."""

    expert = "semantic"

    def __init__(self, model: nn.Module, layers: Sequence[int] = (-2,), image_size: int | None = None,
                 mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD) -> None:
        super().__init__()
        self.model, self.layers = model, tuple(layers)
        config = model.config
        self.token_dim = int(config.hidden_size)
        self.image_size = int(image_size or config.image_size)
        self.mean, self.std = tuple(mean), tuple(std)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], layers: Sequence[int] = (-2,)) -> VisionTowerEncoder:
        """Load user-supplied CLIP or SigLIP weights from a local folder (never downloads)."""
        import transformers

        try:
            config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{path}: not a transformers model folder ({exc})",
                                 "pass a local CLIP or SigLIP folder with config.json and weights") from exc
        kind = config.model_type
        if kind.startswith("clip"):
            model_cls, mean, std = transformers.CLIPVisionModel, CLIP_MEAN, CLIP_STD
        elif kind.startswith("siglip"):
            model_cls, mean, std = transformers.SiglipVisionModel, SIGLIP_MEAN, SIGLIP_STD
        else:
            raise ModelLoadError(f"{path}: model type {kind!r} is not CLIP or SigLIP",
                                 "pass a CLIP/SigLIP vision model")
        model = model_cls.from_pretrained(path, local_files_only=True)
        return cls(model, layers, mean=mean, std=std)

    def forward(self, faces: FaceInputs) -> torch.Tensor:
        param = next(self.model.parameters())
        x = _normalise(_resize(faces.crops.to(param.device, param.dtype), self.image_size), self.mean, self.std)
        hidden = self.model(pixel_values=x, output_hidden_states=True).hidden_states
        try:
            return torch.cat([hidden[i] for i in self.layers], dim=1)
        except IndexError as exc:
            raise ConfigError(f"semantic_layers {self.layers} out of range for {len(hidden)} hidden states",
                              f"use indices in [-{len(hidden)}, {len(hidden) - 1}]") from exc


class VaeDetailEncoder(FaceEncoder):
    """Wan VAE latents of the crop at ``size`` pixels, cut into ``patch`` x ``patch`` latent tokens."""

    expert = "detail"

    def __init__(self, vae: nn.Module, patch: int = 2, size: int = 128) -> None:
        super().__init__()
        self.vae, self.patch, self.size = vae, patch, size
        self.token_dim = int(vae.config.z_dim) * patch * patch

    def forward(self, faces: FaceInputs) -> torch.Tensor:
        latents = encode_images(self.vae, _resize(faces.crops.float(), self.size) * 2.0 - 1.0)
        return patchify(latents[:, :, 0], self.patch)
