"""What a fit has done so far, kept so that ``last.pt`` can continue it exactly.

A run stopped by a signal stops between two steps, part-way through an epoch; resuming it must
take the same remaining batches in the same order and sum the epoch's loss over the same steps,
so the epoch under way (``EpochPass``) is part of the state.
"""

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass
class EpochPass:
    """One pass over the training set, which a signal may stop between two steps."""

    order: Tensor  # this epoch's shuffled sample indices
    next_start: int = 0  # position in ``order`` of the next batch
    # Per step, kept on the device and summed once at the end (no host sync per step).
    losses: list[Tensor] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    correct: list[Tensor] = field(default_factory=list)

    def record(self, loss: Tensor, size: int, correct: Tensor | None) -> None:
        self.losses.append(loss)
        self.sizes.append(size)
        if correct is not None:
            self.correct.append(correct)

    def mean_loss(self) -> float | list[float]:
        """The pass' mean training loss; a stacked fit's: each member's (a list)."""
        if not self.losses:
            return math.nan  # every step was skipped
        if self.losses[0].ndim:  # (K,) per step, one per member
            sizes = torch.tensor(self.sizes, dtype=torch.float64).unsqueeze(1)
            losses = torch.stack(self.losses).cpu().double()
            return ((losses * sizes).sum(dim=0) / sizes.sum()).tolist()
        # Weighted on the host, in float64: one read, and no tensor of the sizes to build.
        losses = torch.stack(self.losses).tolist()
        weighted = (loss * size for loss, size in zip(losses, self.sizes, strict=True))
        return math.fsum(weighted) / sum(self.sizes)

    def accuracy(self) -> float | list[float]:
        if self.correct and self.correct[0].ndim:  # a stacked fit's: each member's
            return (torch.stack(self.correct).sum(dim=0) / sum(self.sizes)).tolist()
        return torch.stack(self.correct).sum().item() / sum(self.sizes) if self.correct else 0.0

    def first_non_finite(self) -> int | None:
        """Index among this pass' steps of the first non-finite loss, or None."""
        bad = (~torch.isfinite(torch.stack(self.losses))).nonzero() if self.losses else None
        return int(bad[0]) if bad is not None and len(bad) else None

    def state_dict(self) -> dict[str, Any]:
        empty = torch.zeros(0)
        return {
            "order": self.order.cpu(),
            "next_start": self.next_start,
            "losses": torch.stack(self.losses).cpu() if self.losses else empty,
            "sizes": list(self.sizes),
            "correct": torch.stack(self.correct).cpu() if self.correct else empty,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], device: torch.device) -> "EpochPass":
        return cls(
            order=state["order"].to(device),
            next_start=state["next_start"],
            losses=list(state["losses"].to(device).unbind()),
            sizes=list(state["sizes"]),
            correct=list(state["correct"].to(device).unbind()),
        )


@dataclass
class TrainingState:
    """Where a fit stands, beyond the model, optimizer, schedule and RNGs: what ``last.pt``
    must also hold for a resumed run to end exactly as an uninterrupted one."""

    epochs_done: int = 0
    steps: int = 0
    skipped_steps: int = 0
    best_state: dict[str, Tensor] | None = None  # weights of the best epoch so far
    best_val_loss: float | None = None
    first_loss: float | None = None  # the first step's loss: growth is measured against it
    metrics: dict[str, float | None] = field(default_factory=dict)  # the last full epoch's
    fit_seconds: float = 0.0  # spent in earlier processes, for a resumed run
    epoch: EpochPass | None = None  # the pass under way, when stopped between two steps

    def state_dict(self, fit_seconds: float) -> dict[str, Any]:
        return {
            "epochs_done": self.epochs_done,
            "steps": self.steps,
            "skipped_steps": self.skipped_steps,
            "best_model": self.best_state,
            "best_val_loss": self.best_val_loss,
            "first_loss": self.first_loss,
            "metrics": dict(self.metrics),
            "fit_seconds": fit_seconds,
            "epoch_in_progress": self.epoch.state_dict() if self.epoch else None,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], device: torch.device) -> "TrainingState":
        epoch = state["epoch_in_progress"]
        return cls(
            epochs_done=state["epochs_done"],
            steps=state["steps"],
            skipped_steps=state["skipped_steps"],
            best_state=state["best_model"],
            best_val_loss=state["best_val_loss"],
            first_loss=state.get("first_loss"),  # absent from checkpoints of older dlbasics
            metrics=dict(state["metrics"]),
            fit_seconds=state["fit_seconds"],
            epoch=EpochPass.from_state_dict(epoch, device) if epoch else None,
        )
