"""The training loop every model goes through (CONCEPTS.md §6), top to bottom in one place.

for each epoch:
    shuffle the training set (a permutation of indices on the device)
    for each batch of indices: gradients (model.training_step) → clip → optimizer step
    validate → learning-rate schedule → early stopping → TensorBoard → checkpoint

Batch gradient descent, stochastic gradient descent and mini-batch gradient descent differ only
in the batch size: the whole training set, one sample, or ``trainer.batch_size`` samples.
"""

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dlbasics.checkpoint import save_checkpoint
from dlbasics.config import EarlyStoppingConfig, OptimConfig, TrainerConfig
from dlbasics.data import DataSplits
from dlbasics.loggers import Logger, NullLogger
from dlbasics.losses import Objective
from dlbasics.models import Model
from dlbasics.optim import build_optimizer, build_scheduler
from dlbasics.progress import Progress

EVAL_CHUNK = 8192  # samples per forward pass when evaluating, to bound memory


@dataclass
class FitResult:
    epochs_run: int
    steps: int
    stop_reason: str  # max_epochs | early_stopping | diverged
    best_epoch: int
    best_monitor: float | None  # best value of trainer.early_stopping.monitor
    best_val_loss: float | None  # lowest validation loss of any epoch
    fit_seconds: float
    last: dict[str, float | None] = field(default_factory=dict)  # last epoch's metrics


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
        if self.best is None:
            improved = not math.isnan(value)
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


class Trainer:
    """Fits a model to in-memory data with the settings of ``trainer.*`` and ``optim.*``.

    ``checkpoint_dir=None`` writes no checkpoints; ``tag_prefix`` namespaces TensorBoard tags
    (so several fits can share one run, e.g. pre-training then fine-tuning).
    """

    def __init__(
        self,
        cfg: TrainerConfig,
        optim: OptimConfig,
        device: torch.device,
        logger: Logger | None = None,
        checkpoint_dir: Path | None = None,
        progress: bool = False,
        tag_prefix: str = "",
        config_yaml: str = "",
    ):
        self.cfg = cfg
        self.optim = optim
        self.device = device
        self.logger = logger or NullLogger()
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress
        self.tag_prefix = tag_prefix
        self.config_yaml = config_yaml  # stored in checkpoints, so each says how it was made

    def fit(self, model: Model, data: DataSplits, objective: Objective) -> FitResult:
        cfg = self.cfg
        model.to(self.device)
        # The whole data set lives on the device; batches are index slices, not copies made
        # by a DataLoader.
        x_train, y_train = data.x_train.to(self.device), data.y_train.to(self.device)
        x_val, y_val = data.x_val.to(self.device), data.y_val.to(self.device)
        n = len(x_train)
        batch_size = n if cfg.batch_size is None else min(cfg.batch_size, n)
        classify = data.spec.task != "regression"

        optimizer = build_optimizer(model.parameters(), self.optim)
        stopper = EarlyStopping(cfg.early_stopping)
        scheduler = build_scheduler(optimizer, self.optim, cfg.epochs, stopper.mode)
        shuffle = torch.Generator(device=self.device).manual_seed(cfg.seed)
        progress = Progress(cfg.epochs) if self.progress else None

        steps = 0
        stop_reason = "max_epochs"
        best_state: dict[str, Tensor] | None = None
        best_val_loss: float | None = None
        metrics: dict[str, float | None] = {}
        started = time.perf_counter()
        for epoch in range(1, cfg.epochs + 1):
            epoch_started = time.perf_counter()

            # --- one pass over the training set -------------------------------------------
            model.train()
            order = torch.randperm(n, generator=shuffle, device=self.device)
            loss_sum = torch.zeros((), device=self.device)
            correct = torch.zeros((), device=self.device, dtype=torch.long)
            for start in range(0, n, batch_size):
                if batch_size < n:
                    index = order[start : start + batch_size]
                    xb, yb = x_train[index], y_train[index]
                else:  # batch gradient descent: the whole set, no need to shuffle or copy
                    xb, yb = x_train, y_train
                optimizer.zero_grad(set_to_none=True)
                loss, scores = model.training_step(xb, yb, objective)
                if cfg.grad_clip is not None:
                    self._clip_gradients(model)
                optimizer.step()
                steps += 1
                # Accumulated on the device; read once per epoch (no host sync per step).
                loss_sum += loss * len(xb)
                if classify:
                    correct += objective.correct(scores, yb)

            # --- end of epoch: measure, then decide ------------------------------------------
            metrics = {"train_loss": loss_sum.item() / n}
            if classify:
                metrics["train_acc"] = correct.item() / n
            val_loss, val_acc = self.evaluate(model, x_val, y_val, objective)
            metrics["val_loss"] = val_loss
            if classify:
                metrics["val_acc"] = val_acc
            if not math.isfinite(metrics["train_loss"]):
                stop_reason = "diverged"
                break
            best_val_loss = val_loss if best_val_loss is None else min(best_val_loss, val_loss)

            monitored = metrics.get(cfg.early_stopping.monitor)
            lr = optimizer.param_groups[0]["lr"]
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(monitored)
            elif scheduler is not None:
                scheduler.step()
            if stopper.update(monitored, epoch):
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

            self.logger.log_scalars(self._tags(metrics, lr, model, objective), epoch)
            if progress:
                progress.epoch(epoch, metrics, time.perf_counter() - epoch_started)
            if self.checkpoint_dir and epoch % cfg.checkpoint_every == 0:
                self._save(model, optimizer, scheduler, stopper, shuffle, best_state, epoch, steps)
            if stopper.should_stop:
                stop_reason = "early_stopping"
                break
        fit_seconds = time.perf_counter() - started
        if progress:
            progress.close()

        if self.checkpoint_dir:  # last.pt holds the state training ended in, for resuming
            self._save(model, optimizer, scheduler, stopper, shuffle, best_state, epoch, steps)
        if cfg.early_stopping.restore_best and best_state is not None:
            model.load_state_dict(best_state)
        return FitResult(
            epochs_run=epoch,
            steps=steps,
            stop_reason=stop_reason,
            best_epoch=stopper.best_epoch,
            best_monitor=stopper.best,
            best_val_loss=best_val_loss,
            fit_seconds=fit_seconds,
            last=metrics,
        )

    @torch.no_grad()
    def evaluate(
        self, model: Model, x: Tensor, y: Tensor, objective: Objective
    ) -> tuple[float, float | None]:
        """Mean loss and accuracy (None for regression) over a whole split."""
        model.eval()
        x, y = x.to(self.device), y.to(self.device)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        for start in range(0, len(x), EVAL_CHUNK):
            xb, yb = x[start : start + EVAL_CHUNK], y[start : start + EVAL_CHUNK]
            scores = model(xb)
            loss_sum += objective(scores, yb) * len(xb)
            correct += objective.correct(scores, yb)
        accuracy = correct.item() / len(x) if objective.task != "regression" else None
        return loss_sum.item() / len(x), accuracy

    def _clip_gradients(self, model: Model) -> None:
        if self.cfg.grad_clip_mode == "norm":
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.cfg.grad_clip)
        else:
            torch.nn.utils.clip_grad_value_(model.parameters(), self.cfg.grad_clip)

    def _tags(
        self, metrics: dict[str, float | None], lr: float, model: Model, objective: Objective
    ) -> dict[str, float]:
        """TensorBoard names: train_loss → loss/train, val_acc → acc/val, …"""
        tags = {}
        for key, value in metrics.items():
            split, kind = key.split("_")
            tags[f"{self.tag_prefix}{kind}/{split}"] = value
        tags[f"{self.tag_prefix}lr"] = lr
        if objective.has_penalty:  # the L1/L2 term added to the training loss
            tags[f"{self.tag_prefix}reg/penalty"] = objective.penalty(model).item()
        return tags

    def _save(self, model, optimizer, scheduler, stopper, shuffle, best_state, epoch, steps):
        assert self.checkpoint_dir is not None
        common = {"config": self.config_yaml, "monitor": self.cfg.early_stopping.monitor}
        save_checkpoint(
            {
                **common,
                "epoch": epoch,
                "steps": steps,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "early_stopping": stopper.state_dict(),
                "rng": {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()},
            },
            self.checkpoint_dir / "last.pt",
        )
        if best_state is not None:
            save_checkpoint(
                {**common, "epoch": stopper.best_epoch, "value": stopper.best, "model": best_state},
                self.checkpoint_dir / "best.pt",
            )
