"""Where training and generation find the face experts: ``lfa_encoders.json`` in the base folder.

::

    {"identity": {"kind": "registry", "backend": "dlib"},          # lfa's registered identity model
     "semantic": {"kind": "vision_tower", "path": "lfa_encoders/semantic"},   # CLIP/SigLIP folder
     "detail":   {"kind": "vae", "size": 128, "patch": 2}}          # the base's own Wan VAE

``identity`` may also be ``{"kind": "ir", "path": "curricularface_ir101.safetensors"}`` (an
ArcFace-class IR network). Relative paths resolve against the base folder; ``--encoders FILE``
points at a file elsewhere (then against that file's folder). An expert left out is unavailable
(the adapter preset must not need it).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lfa.configfile import unknown_key_error
from lfa.errors import ConfigError, ModelLoadError

ENCODERS_FILE = "lfa_encoders.json"
KINDS = {"identity": ("registry", "ir"), "semantic": ("vision_tower",), "detail": ("vae",)}


@dataclass
class EncoderSpec:
    identity: dict[str, Any] | None = None
    semantic: dict[str, Any] | None = None
    detail: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, indent=2) + "\n"

    @classmethod
    def load(cls, path: Path) -> EncoderSpec:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: not a readable encoder spec ({exc})",
                              "write {\"identity\": {...}, \"semantic\": {...}, \"detail\": {...}}") from exc
        unknown = sorted(set(data) - set(KINDS))
        if unknown:
            raise unknown_key_error(unknown[0], {"experts": KINDS}, what="expert", where=str(path))
        for name, entry in data.items():
            if not isinstance(entry, dict) or entry.get("kind") not in KINDS[name]:
                raise ConfigError(f"{path}: {name} needs a kind in {KINDS[name]}",
                                  f"write e.g. {{\"kind\": \"{KINDS[name][0]}\", ...}}")
        return cls(**data)


def encoder_spec(base: Path, override: str | os.PathLike[str] | None = None) -> tuple[EncoderSpec, Path]:
    """The encoder spec and the folder its relative paths resolve against."""
    path = Path(override) if override else base / ENCODERS_FILE
    if not path.is_file():
        raise ModelLoadError(f"no face-encoder spec at {path}",
                             f"write {ENCODERS_FILE} in the base folder or pass --encoders FILE "
                             "(see docs/TRAINING.md)")
    return EncoderSpec.load(path), path.parent


def build_encoders(spec: EncoderSpec, root: Path, vae: Any, experts: tuple[str, ...]) -> dict[str, Any]:
    """The encoders for ``experts`` (frozen, eval mode); a one-line error names a missing one."""
    from lfa.model.encoders import ArcFaceEncoder, EmbeddingIdentityEncoder, VaeDetailEncoder, VisionTowerEncoder

    out: dict[str, Any] = {}
    for name in experts:
        entry = getattr(spec, name)
        if entry is None:
            raise ModelLoadError(f"the adapter needs a {name} encoder and the encoder spec has none",
                                 f"add \"{name}\" to {ENCODERS_FILE}, or turn {name}_expert off")
        kind = entry["kind"]
        if kind == "registry":
            out[name] = EmbeddingIdentityEncoder.from_registry(entry.get("backend", "arcface"))
        elif kind == "ir":
            out[name] = ArcFaceEncoder.from_weights(root / entry["path"])
        elif kind == "vision_tower":
            out[name] = VisionTowerEncoder.from_pretrained(root / entry["path"], tuple(entry.get("layers", (-2,))))
        else:
            out[name] = VaeDetailEncoder(vae, patch=int(entry.get("patch", 2)), size=int(entry.get("size", 128)))
        out[name].requires_grad_(False).eval()
    return out


def adapter_widths(encoders: dict[str, Any]) -> dict[str, Any]:
    """Adapter config values that must match the encoders (token widths, detail crop and patch)."""
    widths: dict[str, Any] = {}
    if "identity" in encoders:
        widths["identity_dim"] = int(encoders["identity"].token_dim)
    if "semantic" in encoders:
        widths["semantic_dim"] = int(encoders["semantic"].token_dim)
        widths["semantic_layers"] = list(encoders["semantic"].layers)
    if "detail" in encoders:
        widths["detail_size"], widths["detail_patch"] = encoders["detail"].size, encoders["detail"].patch
    return widths
