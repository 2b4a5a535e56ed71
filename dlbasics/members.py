"""Where each member of a stacked fit stands (models/stacked.py): its own early stopping, best
epoch and stop, decided at the end of every epoch from its own measures.

A member that stops (its monitor stopped improving, or its loss diverged) trains no more, while
the others go on; the fit ends when every member has stopped or the epochs run out.
"""

import math
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from dlbasics.early_stopping import EarlyStopping, EarlyStoppingConfig, diverged


@dataclass
class Member:
    """One member's record: what a fit of it alone would have kept."""

    stopper: EarlyStopping
    stop_reason: str | None = None  # None while it trains: early_stopping | diverged
    epochs_run: int = 0
    steps: int = 0  # optimizer steps it took (the Trainer counts them)
    best_state: dict[str, Tensor] | None = None  # its weights at its best epoch
    best_val_loss: float | None = None
    first_loss: float | None = None  # its first step's loss: growth is measured against it
    message: str | None = None  # what went wrong and what to try, when it diverged
    metrics: dict[str, float | None] = field(default_factory=dict)  # its last epoch's

    def state_dict(self) -> dict[str, Any]:
        return {
            "early_stopping": self.stopper.state_dict(),
            "stop_reason": self.stop_reason,
            "epochs_run": self.epochs_run,
            "steps": self.steps,
            "best_model": self.best_state,
            "best_val_loss": self.best_val_loss,
            "first_loss": self.first_loss,
            "metrics": dict(self.metrics),
            "message": self.message,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stopper.load_state_dict(state["early_stopping"])
        self.stop_reason = state["stop_reason"]
        self.epochs_run = state["epochs_run"]
        self.steps = state["steps"]
        self.best_state = state["best_model"]
        self.best_val_loss = state["best_val_loss"]
        self.first_loss = state["first_loss"]
        self.metrics = dict(state["metrics"])
        self.message = state["message"]

    def result(self) -> dict[str, Any]:
        """What metrics.json says of this member."""
        return {
            "epochs_run": self.epochs_run,
            "steps": self.steps,
            "stop_reason": self.stop_reason or "max_epochs",
            "best_epoch": self.stopper.best_epoch,
            "best_monitor": self.stopper.best,
            "best_val_loss": self.best_val_loss,
            "message": self.message,
            **self.metrics,
        }


class Members:
    """The records of a stacked fit's K members."""

    def __init__(self, count: int, cfg: EarlyStoppingConfig):
        self.cfg = cfg
        self.records = [Member(EarlyStopping(cfg)) for _ in range(count)]

    def __getitem__(self, k: int) -> Member:
        return self.records[k]

    @property
    def training(self) -> list[int]:
        """The members still training."""
        return [k for k, m in enumerate(self.records) if m.stop_reason is None]

    @property
    def stopped_early(self) -> bool:
        return any(m.stop_reason == "early_stopping" for m in self.records)

    def end_epoch(
        self, epoch: int, metrics: list[dict[str, float | None]], states: list[dict[str, Tensor]]
    ) -> list[int]:
        """Record epoch ``epoch`` of each member still training, ``metrics[k]`` its measures
        and ``states[k]`` its weights; return the members that stop now."""
        stopping = []
        for k in self.training:
            member, measured = self.records[k], metrics[k]
            if diverged(measured["train_loss"], member.first_loss):
                member.stop_reason = "diverged"
                stopping.append(k)
                continue
            member.epochs_run, member.metrics = epoch, measured
            val_loss = measured["val_loss"]
            if member.best_val_loss is None or val_loss < member.best_val_loss:
                member.best_val_loss = val_loss
            value = measured.get(self.cfg.monitor)
            if member.stopper.update(math.nan if value is None else value, epoch):
                member.best_state = {key: v.clone() for key, v in states[k].items()}
            if member.stopper.should_stop:
                member.stop_reason = "early_stopping"
                stopping.append(k)
        return stopping

    def state_dict(self) -> list[dict[str, Any]]:
        return [m.state_dict() for m in self.records]

    def load_state_dict(self, states: list[dict[str, Any]]) -> None:
        for member, state in zip(self.records, states, strict=True):
            member.load_state_dict(state)
