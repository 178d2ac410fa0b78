"""``IdentityAdapter``: installs the identity-conditioning modules on a diffusers ``WanTransformer3DModel``.

The transformer keeps its ``forward`` signature and semantics, so Wan pipelines call it as usual:

- every block gets the conditioned forward of :mod:`lfa.model.blocks` (diffusers' own forward for
  unconditioned calls), and the ``attn2`` of the face blocks a
  :class:`~lfa.model.attention.FaceCrossAttnProcessor`;
- ``transformer.rope`` becomes a :class:`~lfa.model.references.ConditionedRope`, which hands each
  conditioned forward's :class:`~lfa.model.state.ForwardConditioning` to the blocks;
- forward hooks (:mod:`lfa.model.prepare`) append reference frames and crop them off the output.

The adapter's own weights (projectors, gates, face key/values, aligner) live in the adapter, not in
the transformer; ``adapter.state_dict()`` holds exactly these trainable weights (fp32 by default),
never the frozen face encoders, and the adapter follows the transformer's device at every forward.

    adapter = IdentityAdapter.attach(transformer, AdapterConfig(), encoders=[arcface, clip, detail])
    out = adapter(latents, t, text_emb, faces=face_inputs, references=ref_latents)   # AdapterOutput
    with adapter.conditioning(faces=face_inputs, text=prompt_embeds):                 # any Wan pipeline
        video = pipe(prompt_embeds=prompt_embeds, ...)
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lfa.errors import ConfigError
from lfa.model import persistence
from lfa.model.aligner import PoseSharedAligner
from lfa.model.attention import FaceCrossAttnProcessor, FaceKV
from lfa.model.blocks import install_block_forwards, uninstall_block_forwards
from lfa.model.config import AdapterConfig, backbone_dims
from lfa.model.encoders import FaceEncoder, FaceFeatures, FaceInputs
from lfa.model.gate import ExpertGate, UsageBalance
from lfa.model.losses import identity_alignment_loss
from lfa.model.lora import ADAPTER_NAME, add_lora, lora_parameters, remove_lora
from lfa.model.params import parameter_groups
from lfa.model.prepare import SHARED_GATE, after_forward, before_forward
from lfa.model.references import ConditionedRope
from lfa.model.resampler import PerceiverResampler, TokenMLP
from lfa.model.state import AdapterOutput, ConditioningReport, ConditioningRequest

class IdentityAdapter(nn.Module):
    """Face experts + gates + face cross-attention + aligner + references for one Wan transformer."""

    def __init__(self, config: AdapterConfig, backbone_config: Mapping[str, Any]) -> None:
        super().__init__()
        self.config = config
        self.dims = dims = backbone_dims(backbone_config)
        inner = dims["inner_dim"]
        self.face_blocks = config.face_blocks(dims["num_layers"]) if config.has_face_path else []
        self.expert_dims = {"identity": config.identity_dim, "semantic": config.semantic_dim,
                            "detail": dims["out_channels"] * config.detail_patch**2}
        self.projectors = nn.ModuleDict({
            name: TokenMLP(self.expert_dims[name], inner, num_queries=config.num_queries, hidden=config.projector_dim)
            if name == "identity" and config.identity_projector == "mlp" else
            PerceiverResampler(self.expert_dims[name], inner, dim=config.projector_dim,
                               depth=config.projector_depth, heads=config.projector_heads,
                               num_queries=config.num_queries, ff_mult=config.projector_ff_mult)
            for name in config.experts
        })
        self.gates: nn.ModuleDict | None = None
        self.balance: UsageBalance | None = None
        if config.gated:
            keys = [str(i) for i in self.face_blocks] if config.gate_per_block else [SHARED_GATE]
            temb_dim = inner if config.gate_timestep else None
            state_dim = inner if config.gate_per_block else None
            self.gates = nn.ModuleDict({
                key: ExpertGate(len(config.experts), inner, config.gate_hidden_dim, config.gate_granularity,
                                temb_dim, state_dim)
                for key in keys
            })
            if config.balance_loss:
                self.balance = UsageBalance(len(config.experts))
        self.face_attention = nn.ModuleDict({str(i): FaceKV(inner, config.face_kv_rank) for i in self.face_blocks})
        self.aligner: PoseSharedAligner | None = None
        if config.aligner:
            in_dim = config.semantic_dim if config.aligner_input == "image" else None
            self.aligner = PoseSharedAligner(inner, config.dictionary_size, config.pose_embed_dim,
                                             config.temperature, in_dim)
        # Frozen encoders are bound, not registered: not in state_dict(), not cast by adapter.to(dtype).
        self._encoders: dict[str, FaceEncoder] = {}
        self.trained_encoders = nn.ModuleDict() if config.train_encoders else None
        self._scale = float(config.scale)
        self.last_report: ConditioningReport | None = None  # of the last conditioned forward, for logging
        self._request: ConditioningRequest | None = None
        self._active = None  # the forward in flight (lfa.model.prepare)
        self._backbone: list[nn.Module] = []  # the transformer, kept out of this module's tree
        self._hooks: list[Any] = []
        self._processors: dict[int, Any] = {}

    # ------------------------------------------------------------------ installation
    @classmethod
    def attach(cls, transformer: nn.Module, config: AdapterConfig | None = None, *,
               encoders: Sequence[FaceEncoder] | Mapping[str, FaceEncoder] | None = None,
               dtype: torch.dtype = torch.float32) -> IdentityAdapter:
        """Build the adapter for ``transformer``, freeze the backbone, add LoRA if configured, install.

        The adapter is created on the transformer's device (``meta`` works: nothing is allocated).
        Its trainable parameters (and the LoRA's) are fp32 master weights whatever the backbone's
        dtype (``dtype`` changes that); compute may run under ``torch.autocast``. Optimiser groups:
        :meth:`parameter_groups`.
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
        adapter.to(dtype)
        transformer.requires_grad_(False)
        if config.lora_rank:
            add_lora(transformer, config.lora_rank, config.lora_alpha, config.lora_targets)
            for p in lora_parameters(transformer):
                p.data = p.data.to(dtype)
        if encoders:
            adapter.set_encoders(encoders)
        adapter.install(transformer)
        return adapter

    def install(self, transformer: nn.Module) -> None:
        """Put the block forwards, processors, rope and hooks in place (``attach`` does this)."""
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
            attn.set_processor(FaceCrossAttnProcessor(i, self.face_attention[str(i)]))
        transformer.rope = ConditionedRope(transformer.rope, self.config.references)
        install_block_forwards(transformer)
        self._signature = inspect.signature(transformer.forward)
        self._hooks = [
            transformer.register_forward_pre_hook(functools.partial(before_forward, self), with_kwargs=True),
            transformer.register_forward_hook(functools.partial(after_forward, self), with_kwargs=True),
        ]
        self._backbone[:] = [transformer]
        transformer._lfa_identity_adapter = True

    def uninstall(self) -> None:
        """Restore the original block forwards, processors, rope and forward (LoRA, if any, stays)."""
        transformer = self.transformer
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        for i, processor in self._processors.items():
            transformer.blocks[i].attn2.set_processor(processor)
        self._processors = {}
        uninstall_block_forwards(transformer)
        if isinstance(transformer.rope, ConditionedRope):
            transformer.rope = transformer.rope.base
        transformer._lfa_identity_adapter = False

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
    def device(self) -> torch.device:
        param = next(self.parameters(), None)
        return param.device if param is not None else next(self.transformer.parameters()).device

    def follow(self, device: torch.device) -> None:
        """Move the adapter to ``device`` if it is elsewhere (called with the input's device at every forward,
        so it follows ``pipe.to(...)`` and model CPU offload; parameters keep their identity; FSDP's shards stay
        where FSDP keeps them)."""
        from torch.distributed.tensor import DTensor

        params = list(self.parameters())
        plain = [p for p in params if not isinstance(p, DTensor)]  # FSDP places its shards itself
        if not plain or plain[0].device == device:
            return
        if len(plain) == len(params):
            self.to(device)
            return
        for module in self.modules():
            for t in (*module.parameters(recurse=False), *module.buffers(recurse=False)):
                if not isinstance(t, DTensor) and t.device != device:
                    t.data = t.data.to(device)

    @property
    def scale(self) -> float:
        """How much of the identity adapter acts: the face cross-attention's output and the backbone LoRA
        (peft's scaling, times alpha / rank) both scale by it; 0 is the base model alone."""
        return self._scale

    @scale.setter
    def scale(self, value: float) -> None:
        self._scale = float(value)
        transformer = getattr(self, "transformer", None)
        if transformer is not None and self.config.lora_rank:
            from peft.tuners.lora import LoraLayer

            for module in transformer.modules():
                if isinstance(module, LoraLayer):
                    module.set_scale(ADAPTER_NAME, self._scale)

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """Plain transformer forwards inside this block, even within :meth:`conditioning` (the text-only
        branch of three-branch identity guidance), without leaving the conditioning and its cached tokens."""
        previous, self._request = self._request, None
        try:
            yield
        finally:
            self._request = previous

    # ------------------------------------------------------------------ encoders
    def set_encoders(self, encoders: Sequence[FaceEncoder] | Mapping[str, FaceEncoder]) -> None:
        """Bind the face encoders, one per enabled expert: frozen and unregistered unless ``train_encoders``."""
        items = encoders.items() if isinstance(encoders, Mapping) else [(e.expert, e) for e in encoders]
        for name, encoder in items:
            if name not in self.config.experts:
                raise ConfigError(f"got a {name} encoder but the {name} expert is disabled",
                                  f"enable {name}_expert or drop the encoder")
            if int(encoder.token_dim) != self.expert_dims[name]:
                raise ConfigError(f"the {name} encoder emits {encoder.token_dim}-d tokens, the adapter expects "
                                  f"{self.expert_dims[name]}", f"set the adapter config's {name} size to match")
            if self.trained_encoders is not None:
                self.trained_encoders[name] = encoder
            else:
                encoder.requires_grad_(False).eval()
            self._encoders[name] = encoder

    @property
    def encoders(self) -> dict[str, FaceEncoder]:
        return dict(self._encoders)

    def encode_faces(self, faces: FaceInputs) -> FaceFeatures:
        """Run the bound encoders (no autograd unless ``train_encoders``)."""
        missing = [e for e in self.config.experts if e not in self._encoders]
        if missing:
            raise ConfigError(f"no encoder bound for expert(s): {', '.join(missing)}",
                              "pass encoders= to attach (or set_encoders), or give FaceFeatures directly")
        grad = torch.enable_grad() if self.config.train_encoders else torch.no_grad()
        with grad:
            tokens = {name: self._encoders[name](faces) for name in self.config.experts}
        return FaceFeatures(tokens, faces.angles)

    def features(self, faces: FaceInputs | FaceFeatures) -> FaceFeatures:
        """Encoded, checked face features (raw crops are encoded here)."""
        features = self.encode_faces(faces) if isinstance(faces, FaceInputs) else faces
        for name in self.config.experts:
            tokens = features.tokens.get(name)
            if tokens is None or tokens.ndim != 3 or tokens.shape[-1] != self.expert_dims[name]:
                got = None if tokens is None else tuple(tokens.shape)
                raise ConfigError(f"{name} features must be (B, N, {self.expert_dims[name]}), got {got}",
                                  "encode the faces with the adapter's encoders")
        if self.aligner is not None and features.angles is None:
            raise ConfigError("the pose-shared aligner needs head angles and the faces have none",
                              "pass FaceInputs(angles=...) from lfa.face.angles, or set aligner=false")
        return features

    # ------------------------------------------------------------------ conditioning
    @contextlib.contextmanager
    def conditioning(self, faces: FaceInputs | FaceFeatures | None = None, references: torch.Tensor | None = None,
                     *, reference_mask: torch.Tensor | None = None, face_keep: torch.Tensor | None = None,
                     text: torch.Tensor | None = None) -> Iterator[FaceFeatures | None]:
        """Condition every transformer forward inside the block on these faces and reference latents.

        ``faces``: raw crops (encoded once here, not per denoising step) or precomputed features.
        ``references``: normalised reference latents (B, z, K, h, w) at the video's latent size
        (:func:`lfa.model.vae.encode_images`); ``reference_mask`` (B, K) bool marks the real ones
        (False: padding, for a variable number per sample, or dropped). ``face_keep`` (B,) bool:
        samples that see their face (False: face dropped). ``text``: the conditional branch's text
        embeddings — only forwards (or batch rows) with exactly these ``encoder_hidden_states`` are
        conditioned, so a guided pipeline's negative branch keeps text and loses the face. Yields the
        face features.
        """
        features = None
        if faces is not None:
            if not self.config.has_face_path:
                raise ConfigError(f"faces given but this adapter has no face path "
                                  f"(preset {self.config.adapter_preset})", "pass references only, or enable experts")
            features = self.features(faces)
        if references is not None:
            if self.config.references == "none":
                raise ConfigError("reference latents given but references='none'", "set references to mv2id")
            if references.ndim != 5 or references.shape[1] != self.dims["out_channels"]:
                raise ConfigError(f"reference latents must be (B, {self.dims['out_channels']}, K, h, w), "
                                  f"got {tuple(references.shape)}", "encode them with lfa.model.vae.encode_images")
        elif reference_mask is not None:
            raise ConfigError("reference_mask given without references", "pass the references it masks")
        previous = self._request
        self._request = ConditioningRequest(features, references, reference_mask, face_keep, text)
        try:
            yield features
        finally:
            self._request = previous

    def forward(self, hidden_states: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor, *,
                faces: FaceInputs | FaceFeatures | None = None, references: torch.Tensor | None = None,
                reference_mask: torch.Tensor | None = None, face_keep: torch.Tensor | None = None,
                encoder_hidden_states_image: torch.Tensor | None = None) -> AdapterOutput:
        """One conditioned transformer forward; the output covers the video frames only."""
        with self.conditioning(faces, references, reference_mask=reference_mask, face_keep=face_keep):
            sample = self.transformer(hidden_states, timestep, encoder_hidden_states,
                                      encoder_hidden_states_image=encoder_hidden_states_image, return_dict=False)[0]
        report = self.last_report or ConditioningReport()
        balance = None
        if self.balance is not None and report.gate_weights is not None:
            weights = report.gate_weights
            balance = self.balance(list(weights.values()) if isinstance(weights, dict) else [weights])
        return AdapterOutput(report.gate_weights, balance, report.identity, sample=sample)

    # ------------------------------------------------------------------ losses
    def identity_alignment_loss(self, view_a: FaceInputs | FaceFeatures, view_b: FaceInputs | FaceFeatures,
                                groups: torch.Tensor | None = None) -> torch.Tensor:
        """Symmetric InfoNCE between the aligner's representations of two poses of the same identities.

        ``view_a[i]`` and ``view_b[i]`` are one identity at two poses that differ by at least
        ``min_pose_difference`` degrees (checked); the other rows are the negatives, except rows of the
        same ``groups`` entry (the same person: never a negative).
        """
        return identity_alignment_loss(self, view_a, view_b, groups)

    # ------------------------------------------------------------------ parameters and persistence
    def _own_modules(self) -> dict[str, nn.Module]:
        own: dict[str, nn.Module] = {name: module for name, module in self.named_children()
                                     if name != "balance" and any(True for _ in module.parameters())}
        return own

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Trainable parameters as ``torch.optim`` groups, by family, with a no-weight-decay group per family
        (norms, biases, the aligner's dictionary and temperature: ``weight_decay`` 0)."""
        lora = lora_parameters(self.transformer) if self.config.lora_rank and self._backbone else []
        return parameter_groups(self._own_modules(), lora)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per family (``lora`` included when enabled; bound encoders excluded unless trained)."""
        counts = {name: sum(p.numel() for p in module.parameters()) for name, module in self._own_modules().items()}
        if self.config.lora_rank and self._backbone:
            counts["lora"] = sum(p.numel() for p in lora_parameters(self.transformer))
        return counts

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """``state_dict()`` plus the backbone LoRA under ``lora.``: what ``save_pretrained`` writes."""
        return persistence.full_state_dict(self)

    def save_pretrained(self, path: str | os.PathLike[str], state: Mapping[str, torch.Tensor] | None = None) -> Path:
        """Write ``lfa_adapter_config.json`` and ``lfa_adapter.safetensors`` (adapter + LoRA weights; ``state``:
        :meth:`adapter_state_dict` gathered from shards)."""
        return persistence.save_pretrained(self, path, state)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], transformer: nn.Module, *,
                        encoders: Sequence[FaceEncoder] | Mapping[str, FaceEncoder] | None = None,
                        dtype: torch.dtype = torch.float32) -> IdentityAdapter:
        """Attach a saved adapter (and its LoRA) to ``transformer``, which must have the same shape."""
        return persistence.from_pretrained(cls, path, transformer, encoders=encoders, dtype=dtype)
