"""``IdentityAdapter``: installs the identity-conditioning modules on a diffusers ``WanTransformer3DModel``.

The transformer keeps its ``forward`` signature and semantics, so Wan pipelines call it as usual:

- every ``attn2`` of the face blocks gets a :class:`~lfa.model.attention.FaceCrossAttnProcessor`;
- ``transformer.rope`` becomes a :class:`~lfa.model.references.ReferenceRope` (reference modes);
- a forward pre-hook turns the active conditioning (face features, reference latents) into face
  tokens and appends reference frames with a per-token timestep of 0; a forward hook crops the
  reference frames off the output, so a loss on the output never sees reference tokens.

The adapter's own weights (projectors, gates, face key/values, aligner) live in the adapter, not in
the transformer, so ``transformer.state_dict()`` stays the backbone's (plus peft LoRA when enabled).

    adapter = IdentityAdapter.attach(transformer, AdapterConfig(), encoders=[arcface, clip, detail])
    optimizer = torch.optim.AdamW(adapter.parameter_groups(), lr=1e-4)
    out = adapter(latents, t, text_emb, faces=face_inputs, references=ref_latents)   # AdapterOutput
    with adapter.conditioning(faces=face_inputs):                                     # or any pipeline
        video = pipe(prompt, ...)
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from torch import nn

from lfa.errors import ConfigError, ModelLoadError
from lfa.model.aligner import PoseSharedAligner
from lfa.model.attention import FaceCrossAttnProcessor, FaceKV
from lfa.model.config import AdapterConfig
from lfa.model.encoders import FaceEncoder, FaceFeatures, FaceInputs
from lfa.model.gate import ExpertGate, load_balance_loss
from lfa.model.lora import add_lora, load_lora_state_dict, lora_parameters, lora_state_dict, remove_lora
from lfa.model.references import ReferenceRope, reference_frames, region_mask
from lfa.model.resampler import PerceiverResampler

CONFIG_NAME = "lfa_adapter_config.json"
WEIGHTS_NAME = "lfa_adapter.safetensors"
FORMAT = "lfa-identity-adapter"
FORMAT_VERSION = 1
SHARED_GATE = "shared"
_BACKBONE_KEYS = ("num_layers", "num_attention_heads", "attention_head_dim", "in_channels", "out_channels")


class ConditioningState:
    """What the processors and the rope read during one transformer forward."""

    def __init__(self, layout: str, scale: float) -> None:
        self.layout, self.scale = layout, scale
        self.tokens: torch.Tensor | dict[int, torch.Tensor] | None = None
        self.num_reference_frames = 0
        self.video_frames = 0

    def reset(self) -> None:
        self.tokens, self.num_reference_frames, self.video_frames = None, 0, 0

    def face_tokens(self, block_index: int) -> torch.Tensor | None:
        if isinstance(self.tokens, dict):
            return self.tokens.get(block_index)
        return self.tokens


@dataclass
class ConditioningReport:
    """What the last conditioned forward computed besides the prediction (None where a mechanism is off).

    ``gate_weights``: (B, E) or (B, N, E) — one tensor, or ``{block: tensor}`` with per-block gates;
    ``balance_loss``: load-balance loss of the gates (0 when balanced); ``identity``: the aligner's
    global face representation (B, inner_dim).
    """

    gate_weights: torch.Tensor | dict[int, torch.Tensor] | None = None
    balance_loss: torch.Tensor | None = None
    identity: torch.Tensor | None = None


@dataclass
class AdapterOutput(ConditioningReport):
    """``sample``: the backbone's prediction for the video frames only (reference frames cropped)."""

    sample: torch.Tensor | None = None


@dataclass
class _Conditioning:
    features: FaceFeatures | None
    references: torch.Tensor | None
    # (batch, projected expert tokens, aligner output): reused across denoising steps without autograd
    projected: tuple[int, dict[str, torch.Tensor], torch.Tensor | None] | None = None


def backbone_dims(config: Mapping[str, Any]) -> dict[str, int]:
    """The Wan transformer config values the adapter's shapes depend on."""
    try:
        dims = {k: int(config[k]) for k in _BACKBONE_KEYS}
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"not a WanTransformer3DModel config (missing {exc})",
                          "pass a diffusers Wan transformer config") from exc
    dims["inner_dim"] = dims["num_attention_heads"] * dims["attention_head_dim"]
    return dims


class IdentityAdapter(nn.Module):
    """Face experts + gates + face cross-attention + aligner + references for one Wan transformer."""

    def __init__(self, config: AdapterConfig, backbone_config: Mapping[str, Any]) -> None:
        super().__init__()
        self.config = config
        self.dims = dims = backbone_dims(backbone_config)
        inner = dims["inner_dim"]
        self.face_blocks = config.face_blocks(dims["num_layers"])
        self.expert_dims = {"identity": config.identity_dim, "semantic": config.semantic_dim,
                            "detail": dims["out_channels"] * config.detail_patch**2}
        self.projectors = nn.ModuleDict({
            name: PerceiverResampler(self.expert_dims[name], inner, dim=config.projector_dim,
                                     depth=config.projector_depth, heads=config.projector_heads,
                                     num_queries=config.num_queries, ff_mult=config.projector_ff_mult)
            for name in config.experts
        })
        self.gates: nn.ModuleDict | None = None
        if config.gated:
            keys = [str(i) for i in self.face_blocks] if config.gate_per_block else [SHARED_GATE]
            temb_dim = inner if config.gate_timestep else None
            self.gates = nn.ModuleDict({
                key: ExpertGate(len(config.experts), inner, config.gate_hidden_dim, config.gate_granularity, temb_dim)
                for key in keys
            })
        self.face_attention = nn.ModuleDict({str(i): FaceKV(inner, config.face_kv_rank) for i in self.face_blocks})
        self.aligner = (PoseSharedAligner(inner, config.dictionary_size, config.pose_embed_dim, config.temperature)
                        if config.aligner else None)
        self.encoders = nn.ModuleDict()
        self.state = ConditioningState(config.references, config.scale)
        self.last_report: ConditioningReport | None = None  # of the last conditioned forward, for logging
        self._conditioning: _Conditioning | None = None
        self._backbone: list[nn.Module] = []  # the transformer, kept out of this module's tree
        self._hooks: list[Any] = []
        self._processors: dict[int, Any] = {}

    # ------------------------------------------------------------------ installation
    @classmethod
    def attach(cls, transformer: nn.Module, config: AdapterConfig | None = None, *,
               encoders: Sequence[FaceEncoder] | Mapping[str, FaceEncoder] | None = None,
               dtype: torch.dtype | None = None) -> IdentityAdapter:
        """Build the adapter for ``transformer``, freeze the backbone, add LoRA if configured, install.

        The adapter is created on the transformer's device (``meta`` works: nothing is allocated)
        in ``dtype`` (default: the transformer's). Its trainable parameters: :meth:`parameter_groups`.
        """
        config = config or AdapterConfig()
        for attr in ("blocks", "rope", "condition_embedder", "config"):
            if not hasattr(transformer, attr):
                raise ConfigError(f"{type(transformer).__name__} is not a Wan transformer (no .{attr})",
                                  "attach to a diffusers WanTransformer3DModel")
        if getattr(transformer, "_lfa_identity_adapter", False):
            raise ConfigError("this transformer already has an identity adapter", "call adapter.detach() first")
        if config.references != "none" and tuple(transformer.config.patch_size)[0] != 1:
            raise ConfigError(f"reference frames need a temporal patch of 1, got {transformer.config.patch_size}",
                              "set references='none' for this backbone")
        param = next(transformer.parameters())
        with torch.device(param.device):
            adapter = cls(config, transformer.config)
        adapter.to(dtype or param.dtype)
        transformer.requires_grad_(False)
        if config.lora_rank:
            add_lora(transformer, config.lora_rank, config.lora_alpha, config.lora_targets)
        if encoders:
            adapter.set_encoders(encoders)
        adapter.install(transformer)
        return adapter

    def install(self, transformer: nn.Module) -> None:
        """Put the processors, rope and hooks in place (``attach`` does this; ``uninstall`` undoes it)."""
        if self._hooks:
            raise ConfigError("the adapter is already installed", "call adapter.uninstall() first")
        if backbone_dims(transformer.config) != self.dims:
            raise ConfigError(f"adapter built for {self.dims}, transformer is {backbone_dims(transformer.config)}",
                              "attach a new adapter to this transformer")
        for i in self.face_blocks:
            attn = transformer.blocks[i].attn2
            if getattr(attn, "fused_projections", False):
                raise ConfigError(f"block {i} attn2 has fused projections", "call transformer.unfuse_qkv_projections()")
            self._processors[i] = attn.processor
            attn.set_processor(FaceCrossAttnProcessor(i, self.face_attention[str(i)], self.state))
        if self.config.references != "none":
            transformer.rope = ReferenceRope(transformer.rope, self.state)
        self._signature = inspect.signature(transformer.forward)
        self._hooks = [transformer.register_forward_pre_hook(self._before_forward, with_kwargs=True),
                       transformer.register_forward_hook(self._after_forward, with_kwargs=True)]
        self._backbone[:] = [transformer]
        transformer._lfa_identity_adapter = True

    def uninstall(self) -> None:
        """Restore the original processors, rope and forward (LoRA, if any, stays)."""
        transformer = self.transformer
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        for i, processor in self._processors.items():
            transformer.blocks[i].attn2.set_processor(processor)
        self._processors = {}
        if isinstance(transformer.rope, ReferenceRope):
            transformer.rope = transformer.rope.base
        transformer._lfa_identity_adapter = False
        self.state.reset()

    def detach(self) -> nn.Module:
        """Uninstall and remove the backbone LoRA; returns the bare transformer."""
        transformer = self.transformer
        self.uninstall()
        remove_lora(transformer)
        self._backbone[:] = []
        return transformer

    @property
    def installed(self) -> bool:
        return bool(self._hooks)

    @property
    def transformer(self) -> nn.Module:
        if not self._backbone:
            raise ConfigError("the adapter is not attached to a transformer", "use IdentityAdapter.attach(transformer)")
        return self._backbone[0]

    @property
    def scale(self) -> float:
        return self.state.scale

    @scale.setter
    def scale(self, value: float) -> None:
        self.state.scale = float(value)

    # ------------------------------------------------------------------ encoders
    def set_encoders(self, encoders: Sequence[FaceEncoder] | Mapping[str, FaceEncoder]) -> None:
        """Bind the frozen (unless ``train_encoders``) face encoders, one per enabled expert."""
        items = encoders.items() if isinstance(encoders, Mapping) else [(e.expert, e) for e in encoders]
        for name, encoder in items:
            if name not in self.config.experts:
                raise ConfigError(f"got a {name} encoder but the {name} expert is disabled",
                                  f"enable {name}_expert or drop the encoder")
            if int(encoder.token_dim) != self.expert_dims[name]:
                raise ConfigError(f"the {name} encoder emits {encoder.token_dim}-d tokens, the adapter expects "
                                  f"{self.expert_dims[name]}", f"set the adapter config's {name} size to match")
            if not self.config.train_encoders:
                encoder.requires_grad_(False).eval()
            self.encoders[name] = encoder

    def train(self, mode: bool = True) -> IdentityAdapter:
        super().train(mode)
        if not self.config.train_encoders:
            self.encoders.eval()
        return self

    def encode_faces(self, faces: FaceInputs) -> FaceFeatures:
        """Run the bound encoders (no autograd unless ``train_encoders``)."""
        missing = [e for e in self.config.experts if e not in self.encoders]
        if missing:
            raise ConfigError(f"no encoder bound for expert(s): {', '.join(missing)}",
                              "pass encoders= to attach (or set_encoders), or give FaceFeatures directly")
        grad = torch.enable_grad() if self.config.train_encoders else torch.no_grad()
        with grad:
            tokens = {name: self.encoders[name](faces) for name in self.config.experts}
        return FaceFeatures(tokens, faces.angles)

    # ------------------------------------------------------------------ conditioning
    @contextlib.contextmanager
    def conditioning(self, faces: FaceInputs | FaceFeatures | None = None,
                     references: torch.Tensor | None = None) -> Iterator[FaceFeatures | None]:
        """Condition every transformer forward inside the block on these faces and reference latents.

        ``faces``: raw crops (encoded once here, not per denoising step) or precomputed features.
        ``references``: normalised reference latents (B, z, K, h, w) at the video's latent size
        (:func:`lfa.model.vae.encode_images`). Yields the face features.
        """
        features = self.encode_faces(faces) if isinstance(faces, FaceInputs) else faces
        if features is not None:
            self._check_features(features)
        if references is not None:
            if self.config.references == "none":
                raise ConfigError("reference latents given but references='none'", "set references to mv2id")
            if references.ndim != 5 or references.shape[1] != self.dims["out_channels"]:
                raise ConfigError(f"reference latents must be (B, {self.dims['out_channels']}, K, h, w), "
                                  f"got {tuple(references.shape)}", "encode them with lfa.model.vae.encode_images")
        previous = self._conditioning
        self._conditioning = _Conditioning(features, references)
        try:
            yield features
        finally:
            self._conditioning = previous

    def _check_features(self, features: FaceFeatures) -> None:
        for name in self.config.experts:
            tokens = features.tokens.get(name)
            if tokens is None or tokens.ndim != 3 or tokens.shape[-1] != self.expert_dims[name]:
                got = None if tokens is None else tuple(tokens.shape)
                raise ConfigError(f"{name} features must be (B, N, {self.expert_dims[name]}), got {got}",
                                  "encode the faces with the adapter's encoders")

    def forward(self, hidden_states: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor, *,
                faces: FaceInputs | FaceFeatures | None = None, references: torch.Tensor | None = None,
                encoder_hidden_states_image: torch.Tensor | None = None) -> AdapterOutput:
        """One conditioned transformer forward (training); the output covers the video frames only."""
        with self.conditioning(faces, references):
            sample = self.transformer(hidden_states, timestep, encoder_hidden_states,
                                      encoder_hidden_states_image=encoder_hidden_states_image, return_dict=False)[0]
        report = self.last_report or ConditioningReport()
        return AdapterOutput(report.gate_weights, report.balance_loss, report.identity, sample=sample)

    # ------------------------------------------------------------------ per-forward work
    def _before_forward(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        self.state.reset()
        self.last_report = None
        cond = self._conditioning
        if cond is None:
            return None
        bound = self._signature.bind(*args, **kwargs)
        hidden, timestep = bound.arguments["hidden_states"], bound.arguments["timestep"]
        if cond.features is not None:
            self.state.tokens = self._face_tokens(cond, timestep, hidden.shape[0])
        if cond.references is not None:
            refs = self._reference_input(cond.references, hidden)
            self.state.num_reference_frames, self.state.video_frames = refs.shape[2], hidden.shape[2]
            bound.arguments["hidden_states"] = torch.cat([hidden, refs], dim=2)
            bound.arguments["timestep"] = self._per_token_timestep(timestep, hidden, refs.shape[2])
        return bound.args, bound.kwargs

    def _after_forward(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        frames = self.state.video_frames
        if not self.state.num_reference_frames:
            return None
        if isinstance(output, tuple):
            return (output[0][:, :, :frames], *output[1:])
        return Transformer2DModelOutput(sample=output.sample[:, :, :frames])

    def _face_tokens(self, cond: _Conditioning, timestep: torch.Tensor,
                     batch: int) -> torch.Tensor | dict[int, torch.Tensor]:
        """Project, align and gate the expert tokens: one (B, N', inner_dim) tensor, or one per block (CoFE).

        Without autograd (sampling) the projection is done once per ``conditioning`` block; only the
        timestep-dependent gate runs at every step.
        """
        grad = torch.is_grad_enabled()
        if not grad and cond.projected is not None and cond.projected[0] == batch:
            _, tokens, identity = cond.projected
        else:
            tokens, identity = self._project(cond.features, batch)
            if not grad:
                cond.projected = (batch, tokens, identity)
        experts = [tokens[name] for name in self.config.experts]
        extra = None if identity is None else identity[:, None].to(experts[0].dtype)

        gate_weights: dict[str, torch.Tensor] = {}
        if self.gates is not None:
            stacked = torch.stack(experts, dim=1)
            temb = self._timestep_embedding(timestep, batch) if self.config.gate_timestep else None
            gate_weights = {key: gate(stacked, temb) for key, gate in self.gates.items()}
            fused = {key: ExpertGate.fuse(stacked, w) for key, w in gate_weights.items()}
        else:
            fused = {SHARED_GATE: torch.cat(experts, dim=1)}
        if extra is not None:
            fused = {key: torch.cat([value, extra], dim=1) for key, value in fused.items()}

        weights_out: torch.Tensor | dict[int, torch.Tensor] | None = None
        if gate_weights:
            weights_out = (gate_weights[SHARED_GATE] if SHARED_GATE in gate_weights
                           else {int(k): w for k, w in gate_weights.items()})
        balance = load_balance_loss(list(gate_weights.values())) if gate_weights and self.config.balance_loss else None
        self.last_report = ConditioningReport(weights_out, balance, identity)
        if SHARED_GATE in fused:
            return fused[SHARED_GATE]
        return {int(k): v for k, v in fused.items()}

    def _project(self, features: FaceFeatures, batch: int) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Resample every expert to face tokens and run the aligner: the timestep-independent part."""
        device = self.face_attention[str(self.face_blocks[0])].face_k.up.weight.device
        tokens = {}
        for name in self.config.experts:
            x = features.tokens[name].to(device)
            if x.shape[0] != batch:
                if x.shape[0] != 1:
                    raise ConfigError(f"{x.shape[0]} faces for a batch of {batch} videos",
                                      "pass one face per video, or one face for all")
                x = x.expand(batch, -1, -1)
            tokens[name] = self.projectors[name](x)
        identity = None
        if self.aligner is not None:
            angles = features.angles
            if angles is not None:
                angles = angles.to(device)
                angles = angles.expand(batch, -1) if angles.shape[0] == 1 else angles
            identity, _ = self.aligner(tokens["identity"], angles)
        return tokens, identity

    @torch.no_grad()
    def _timestep_embedding(self, timestep: torch.Tensor, batch: int) -> torch.Tensor:
        """The backbone's own timestep embedding (frozen) of the video timestep, (B, inner_dim)."""
        embedder = self.transformer.condition_embedder
        t = torch.as_tensor(timestep)
        if t.ndim == 2:  # per-token timesteps (Wan2.2 TI2V): the video's noise level is the largest
            t = t.amax(dim=1)
        t = t.reshape(-1).expand(batch) if t.numel() == 1 else t.reshape(-1)
        proj = embedder.timesteps_proj(t.to(next(embedder.time_embedder.parameters()).device))
        return embedder.time_embedder(proj.to(next(embedder.time_embedder.parameters()).dtype))

    def _reference_input(self, latents: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        b, _, _, h, w = hidden.shape
        if tuple(latents.shape[-2:]) != (h, w):
            raise ConfigError(f"reference latents are {tuple(latents.shape[-2:])}, the video latents {(h, w)}",
                              "resize the reference views to the video resolution before VAE encoding")
        if latents.shape[0] != b:
            if latents.shape[0] != 1:
                raise ConfigError(f"{latents.shape[0]} reference sets for a batch of {b}", "pass one set per video")
            latents = latents.expand(b, -1, -1, -1, -1)
        latents = latents.to(hidden.device, hidden.dtype)
        if self.training and self.config.mask_ratio > 0:
            latents = region_mask(latents, self.config.mask_ratio,
                                  self.config.mask_region * self.transformer.config.patch_size[1])
        return reference_frames(latents, self.dims["in_channels"])

    def _per_token_timestep(self, timestep: torch.Tensor, hidden: torch.Tensor, num_refs: int) -> torch.Tensor:
        """Video tokens keep their timestep, reference tokens get 0: shape (B, video + reference tokens)."""
        b, _, f, h, w = hidden.shape
        p_t, p_h, p_w = self.transformer.config.patch_size
        per_frame = (h // p_h) * (w // p_w)
        t = torch.as_tensor(timestep, device=hidden.device)
        if t.ndim < 2:
            t = t.reshape(-1).expand(b)[:, None].expand(b, (f // p_t) * per_frame)
        zeros = torch.zeros(b, num_refs * per_frame, dtype=t.dtype, device=t.device)
        return torch.cat([t, zeros], dim=1)

    # ------------------------------------------------------------------ losses
    def identity_alignment_loss(self, view_a: FaceInputs | FaceFeatures,
                                view_b: FaceInputs | FaceFeatures) -> torch.Tensor:
        """Symmetric InfoNCE between the aligner's representations of two poses of the same identities."""
        if self.aligner is None:
            raise ConfigError("the aligner is disabled", "set aligner=true in the adapter config")
        reps = []
        for view in (view_a, view_b):
            features = self.encode_faces(view) if isinstance(view, FaceInputs) else view
            device = self.aligner.dictionary.device
            tokens = self.projectors["identity"](features.tokens["identity"].to(device))
            angles = None if features.angles is None else features.angles.to(device)
            reps.append(self.aligner(tokens, angles)[0])
        return self.aligner.info_nce(*reps)

    # ------------------------------------------------------------------ parameters
    def _own_modules(self) -> dict[str, nn.Module]:
        own: dict[str, nn.Module] = {"projectors": self.projectors, "face_attention": self.face_attention}
        if self.gates is not None:
            own["gates"] = self.gates
        if self.aligner is not None:
            own["aligner"] = self.aligner
        if self.config.train_encoders:
            own["encoders"] = self.encoders
        return own

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Trainable parameters by module family (``torch.optim`` param groups with a ``name``)."""
        groups = [{"name": name, "params": [p for p in module.parameters() if p.requires_grad]}
                  for name, module in self._own_modules().items()]
        if self.config.lora_rank and self._backbone:
            groups.append({"name": "lora", "params": lora_parameters(self.transformer)})
        return [g for g in groups if g["params"]]

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per family (``lora`` included when enabled; bound encoders excluded unless trained)."""
        counts = {name: sum(p.numel() for p in module.parameters()) for name, module in self._own_modules().items()}
        if self.config.lora_rank and self._backbone:
            counts["lora"] = sum(p.numel() for p in lora_parameters(self.transformer))
        return counts

    # ------------------------------------------------------------------ persistence
    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        state = nn.ModuleDict(self._own_modules()).state_dict()
        if self.config.lora_rank:
            state.update({f"lora.{k}": v for k, v in lora_state_dict(self.transformer).items()})
        return state

    def save_pretrained(self, path: str | os.PathLike[str]) -> Path:
        """Write ``lfa_adapter_config.json`` and ``lfa_adapter.safetensors`` (adapter + LoRA weights)."""
        from safetensors.torch import save_file

        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "version": FORMAT_VERSION, "backbone": self.dims, "config": self.config.to_dict()}
        (out / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.adapter_state_dict().items()}
        save_file(tensors, str(out / WEIGHTS_NAME), metadata={"format": FORMAT})
        return out

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], transformer: nn.Module, *,
                        encoders: Sequence[FaceEncoder] | Mapping[str, FaceEncoder] | None = None,
                        dtype: torch.dtype | None = None) -> IdentityAdapter:
        """Attach a saved adapter (and its LoRA) to ``transformer``, which must have the same shape."""
        from lfa.face.nets.weights import load_state_dict_file, load_strict

        folder = Path(path)
        meta_path = folder / CONFIG_NAME
        if not meta_path.is_file():
            raise ModelLoadError(f"{folder}: no {CONFIG_NAME}",
                                 "pass a folder written by IdentityAdapter.save_pretrained")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise ModelLoadError(f"{meta_path}: not valid JSON ({exc})", "re-save the adapter") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
            raise ModelLoadError(f"{meta_path}: not an lfa identity adapter (format {FORMAT} v{FORMAT_VERSION})",
                                 "pass a folder written by IdentityAdapter.save_pretrained")
        config = AdapterConfig.from_dict(meta["config"])
        if meta.get("backbone") != backbone_dims(transformer.config):
            raise ModelLoadError(f"{folder}: adapter was trained for backbone {meta.get('backbone')}, "
                                 f"this transformer is {backbone_dims(transformer.config)}",
                                 "load it onto the Wan transformer it was trained with")
        adapter = cls.attach(transformer, config, encoders=encoders, dtype=dtype)
        state = load_state_dict_file(folder / WEIGHTS_NAME)
        lora = {k[len("lora."):]: v for k, v in state.items() if k.startswith("lora.")}
        own = {k: v for k, v in state.items() if not k.startswith("lora.")}
        load_strict(nn.ModuleDict(adapter._own_modules()), own, folder / WEIGHTS_NAME, "lfa identity adapter")
        if config.lora_rank:
            load_lora_state_dict(transformer, lora)
        elif lora:
            raise ModelLoadError(f"{folder}: holds LoRA weights but its config has lora_rank=0", "re-save the adapter")
        return adapter
