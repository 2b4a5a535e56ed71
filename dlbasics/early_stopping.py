"""Early stopping (docs/concepts.md §7): stop when the monitored measure has not improved for
``patience`` epochs, and keep the best epoch's weights; and when a loss has diverged."""

import math
from dataclasses import dataclass
from typing import Any

from dlbasics.schema import check, check_choice

# An epoch's training loss this many times the untrained model's (the first step's) has
# diverged, finite or not.
EXPLODED = 1e6


@dataclass
class EarlyStoppingConfig:
    enabled: bool = True
    # Also what picks the best checkpoint: val_loss, val_acc, train_loss, train_acc, or a
    # measure the model reports besides (an RBM's val_pll, …; checked once the model is built).
    monitor: str = "val_loss"
    mode: str = "auto"  # min | max | auto (max: accuracies, exact match, likelihoods; else min)
    patience: int = 10  # epochs without improvement before stopping
    min_delta: float = 0.0  # smallest change that counts as an improvement
    restore_best: bool = True  # end with the best epoch's weights

    def __post_init__(self) -> None:
        check_choice("trainer.early_stopping.mode", self.mode, ("auto", "min", "max"))
        check(self.patience >= 1, "trainer.early_stopping.patience", self.patience, ">= 1")
        check(self.min_delta >= 0, "trainer.early_stopping.min_delta", self.min_delta, ">= 0")

    @property
    def resolved_mode(self) -> str:
        if self.mode != "auto":
            return self.mode
        return "max" if self.monitor.endswith(("_acc", "_pll", "_exact")) else "min"


def diverged(loss: float, first_loss: float | None) -> bool:
    """Whether an epoch's training loss is non-finite, or over EXPLODED times the untrained
    model's (``first_loss``, its first step's)."""
    exploded = first_loss is not None and first_loss > 0 and loss > EXPLODED * first_loss
    return not math.isfinite(loss) or exploded


class EarlyStopping:
    """Tracks the monitored metric; says when it stopped improving for ``patience`` epochs."""

    def __init__(self, cfg: EarlyStoppingConfig):
        self.cfg = cfg
        self.mode = cfg.resolved_mode
        self.best: float | None = None
        self.best_epoch = 0
        self.bad_epochs = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record one epoch's value; True when it is the best so far."""
        if not math.isfinite(value):  # a non-finite loss is never the best epoch
            improved = False
        elif self.best is None:
            improved = True
        elif self.mode == "min":
            improved = value < self.best - self.cfg.min_delta
        else:
            improved = value > self.best + self.cfg.min_delta
        if improved:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.cfg.enabled and self.bad_epochs >= self.cfg.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.bad_epochs = (
            state["best"],
            state["best_epoch"],
            state["bad_epochs"],
        )
