"""The learning-rate schedule the authors meant: `lr_scheduler_type="paper"`.

Their `core/utils.py` builds `get_lr_scheduler("cos", lr, lr * 0.01, n_epochs)`, a YOLOX-style schedule over
epochs: with E = 30 epochs, a quadratic warm-up from `max(0.1 * lr, 1e-6)` to lr over
`min(max(0.05 * E, 1), 3)` = 1.5 epochs, a cosine from lr down to 0.01 * lr, then flat at 0.01 * lr for the
last `min(max(0.05 * E, 1), 15)` = 1.5 epochs. Their training loop calls it as
`set_optimizer_lr(optimizer, lr_scheduler_func, opt.n_epochs)` every epoch, with the total number of epochs instead
of the current one: the function always sits in its flat tail, so their runs trained at 0.01 * lr = 1.5e-6 from the
first step to the last. This module is that schedule as it was written to work, evaluated per optimiser step at
the fraction of epochs done (`stepwise=True`: once per epoch, at the 1-based epoch number their loop meant to pass).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

PAPER_SCHEDULE = "paper"


@dataclass(frozen=True)
class PaperSchedule:
    """The schedule's shape over `num_epochs` epochs, as multipliers of the peak learning rate.

    Defaults (None) follow the authors' `get_lr_scheduler`: warm-up `min(max(0.05 E, 1), 3)` epochs starting at
    `max(0.1 lr, 1e-6)`, floor 0.01 lr, flat tail `min(max(0.05 E, 1), 15)` epochs.
    """

    num_epochs: float
    warmup_epochs: float | None = None
    flat_epochs: float | None = None
    warmup_start_ratio: float = 0.1
    min_warmup_start_lr: float = 1e-6
    min_lr_ratio: float = 0.01

    def __post_init__(self):
        if self.num_epochs <= 0:
            raise ValueError(f"the paper schedule needs a positive number of epochs, got {self.num_epochs}")
        if self.warmup_epochs is None:
            object.__setattr__(self, "warmup_epochs", min(max(0.05 * self.num_epochs, 1.0), 3.0))
        if self.flat_epochs is None:
            object.__setattr__(self, "flat_epochs", min(max(0.05 * self.num_epochs, 1.0), 15.0))
        if self.warmup_epochs <= 0 or self.flat_epochs < 0:
            raise ValueError(f"warmup_epochs={self.warmup_epochs} must be positive and flat_epochs="
                             f"{self.flat_epochs} non-negative")

    def multiplier(self, epochs_done: float, peak_lr: float) -> float:
        """lr / peak_lr after `epochs_done` (fractional) epochs."""
        floor = self.min_lr_ratio
        if epochs_done <= self.warmup_epochs:
            start = max(self.warmup_start_ratio, self.min_warmup_start_lr / peak_lr) if peak_lr > 0 else 0.0
            return (1.0 - start) * (epochs_done / self.warmup_epochs) ** 2 + start
        if epochs_done >= self.num_epochs - self.flat_epochs:
            return floor
        span = self.num_epochs - self.warmup_epochs - self.flat_epochs
        return floor + 0.5 * (1.0 - floor) * (1.0 + math.cos(math.pi * (epochs_done - self.warmup_epochs) / span))

    def describe(self) -> str:
        return (f"paper: quadratic warm-up over {self.warmup_epochs:g} epochs, cosine to {self.min_lr_ratio:g}·lr, "
                f"flat for the last {self.flat_epochs:g} epochs (of {self.num_epochs:g})")


def get_paper_schedule(optimizer: Optimizer, steps_per_epoch: float, num_epochs: float, stepwise: bool = False,
                       **shape) -> LambdaLR:
    """A `LambdaLR` for the Trainer: optimiser step k (0-based) runs at `PaperSchedule.multiplier(k / steps_per_epoch)`
    times each group's initial lr; `stepwise` holds it for a whole epoch at the 1-based epoch number instead."""
    if steps_per_epoch <= 0:
        raise ValueError(f"steps_per_epoch={steps_per_epoch} must be positive")
    schedule = PaperSchedule(num_epochs=num_epochs, **shape)
    peaks = [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]

    def for_group(peak_lr):
        def multiplier(step: int) -> float:
            epochs_done = math.floor(step / steps_per_epoch) + 1 if stepwise else step / steps_per_epoch
            return schedule.multiplier(epochs_done, peak_lr)
        return multiplier

    return LambdaLR(optimizer, [for_group(peak) for peak in peaks])


__all__ = ["PAPER_SCHEDULE", "PaperSchedule", "get_paper_schedule"]
