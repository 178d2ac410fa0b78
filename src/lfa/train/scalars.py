"""TensorBoard scalars of a training run: ``OUT/tensorboard/`` (``tensorboard --logdir OUT/tensorboard``).

Tags: ``loss`` (the weighted total), ``loss/<term>`` (flow, alignment, balance), ``val_loss``, ``lr/<group>``
(one per optimizer group family: the adapter modules, ``lora``) and ``steps_per_s``. A resumed run
drops what the first run logged after its checkpoint (``purge_step``), as ``metrics.jsonl`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TENSORBOARD_DIR = "tensorboard"


class ScalarLog:
    """Writes each step's record of ``metrics.jsonl`` as TensorBoard scalars (or nothing when disabled)."""

    def __init__(self, out: Path, *, enabled: bool, resumed_at: int = 0) -> None:
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / TENSORBOARD_DIR), purge_step=resumed_at + 1 if resumed_at else None)

    def write(self, record: dict[str, Any], learning_rates: dict[str, float] | None = None) -> None:
        if self.writer is None:
            return
        step = int(record["step"])
        scalars: dict[str, float] = {}
        if "loss" in record:
            scalars["loss"] = record["loss"]
        for term in ("flow", "alignment", "balance"):
            if term in record:
                scalars[f"loss/{term}"] = record[term]
        for key, value in record.items():  # val_loss and the identity metrics (lfa.train.validation)
            if key.startswith("val_") and isinstance(value, (int, float)) and not isinstance(value, bool):
                scalars[key if key == "val_loss" else f"val/{key.removeprefix('val_')}"] = float(value)
        if record.get("step_s"):
            scalars["steps_per_s"] = 1.0 / record["step_s"]
        for group, lr in (learning_rates or {}).items():
            scalars[f"lr/{group}"] = lr
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, float(value), step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def group_learning_rates(optimizer: Any) -> dict[str, float]:
    """The current learning rate of each optimizer group family (``x.no_decay`` shares ``x``'s)."""
    rates: dict[str, float] = {}
    for group in optimizer.param_groups:
        name = str(group.get("name", "adapter")).removesuffix(".no_decay")
        rates.setdefault(name, float(group["lr"]))
    return rates
