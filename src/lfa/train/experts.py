"""Wan2.2 A14B training in phases: one per trained expert, each on its own side of the noise boundary.

A one-transformer base (Wan2.1, TI2V) has one phase over every step. A two-expert base trains
``wan_expert`` high (noise levels at or above ``boundary_ratio``), low (below) or both: the high-noise
expert for the first half of ``max_steps``, then the low-noise one. Checkpoints say their expert, and
an expert's adapter goes to its component's subfolder (``adapter/transformer/``, ``adapter/transformer_2/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lfa.errors import ConfigError
from lfa.train.config import TrainConfig


@dataclass(frozen=True)
class Phase:
    """Steps ``first..last`` of one transformer: a Wan2.1/TI2V base's only one, or one Wan2.2 A14B expert."""

    expert: str | None  # None (one transformer) | high | low
    first: int
    last: int
    sigma_range: tuple[float, float] = (0.0, 1.0)

    @property
    def component(self) -> str:
        return component(self.expert)

    def folder(self, adapters: Path) -> Path:
        return adapter_folder(adapters, self.expert)


def component(expert: str | None) -> str:
    """The base's component an expert is: ``transformer`` (one transformer, or high noise) or ``transformer_2``."""
    return "transformer_2" if expert == "low" else "transformer"


def adapter_folder(adapters: Path, expert: str | None) -> Path:
    """Where an expert's adapter goes: ``adapters`` itself (one transformer), or its component's subfolder."""
    return adapters if expert is None else adapters / component(expert)


def expert_phases(wan: Any, config: TrainConfig) -> list[Phase]:
    """One phase per trained transformer: a two-expert base trains ``wan_expert`` high (noise levels at or
    above the boundary), low (below) or both (high for the first half of ``max_steps``, then low)."""
    if not wan.two_experts:
        if config.wan_expert != "both":
            raise ConfigError(f"wan_expert={config.wan_expert} needs a two-expert base (Wan2.2 A14B)",
                              "leave wan_expert out for this base")
        return [Phase(None, 1, config.max_steps)]
    b = float(wan.boundary_ratio)
    high, low = (b, 1.0), (0.0, b)
    if config.wan_expert == "high":
        return [Phase("high", 1, config.max_steps, high)]
    if config.wan_expert == "low":
        return [Phase("low", 1, config.max_steps, low)]
    if config.max_steps < 2:
        raise ConfigError("wan_expert=both trains two experts one after the other and max_steps is 1",
                          "set max_steps to 2 or more, or wan_expert=high|low")
    half = (config.max_steps + 1) // 2
    return [Phase("high", 1, half, high), Phase("low", half + 1, config.max_steps, low)]


def phase_of(phases: list[Phase], checkpoint: tuple[Path, dict[str, Any]]) -> Phase:
    folder, state = checkpoint
    step, expert = int(state["step"]), state.get("expert")
    for phase in phases:
        if phase.expert == expert and phase.first - 1 <= step <= phase.last:
            return phase
    held = ", ".join(f"{p.expert or 'one transformer'} {p.first}-{p.last}" for p in phases)
    raise ConfigError(f"{folder} is of expert {expert or '(one transformer)'} at step {step}, which this run's "
                      f"phases ({held}) do not hold", "resume with the wan_expert and max_steps the run was started with")


def check_phase_saved(out: Path, phase: Phase) -> None:
    from lfa.model.persistence import CONFIG_NAME

    folder = phase.folder(out / "adapter")
    if not (folder / CONFIG_NAME).is_file():
        raise ConfigError(f"{folder}: the {phase.expert} expert's adapter is missing, and the checkpoint is past "
                          "its phase", "resume from a checkpoint of that phase (--resume OUT/checkpoint-N)")
