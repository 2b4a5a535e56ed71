"""The training loop every model goes through (CONCEPTS.md §6), top to bottom in one place.

for each epoch:
    shuffle the training set (a permutation of indices on the device)
    for each batch of indices: gradients (model.training_step) → clip → optimizer step
    validate (+ the model's own measures) → learning-rate schedule → early stopping
    → TensorBoard → checkpoint

Batch gradient descent, stochastic gradient descent and mini-batch gradient descent differ only
in the batch size: the whole training set, one sample, or ``trainer.batch_size`` samples.

A signal (SIGINT/SIGTERM, see interrupt.py) stops the loop between two steps; ``last.pt`` then
holds everything needed to continue exactly there (``trainer.resume``), down to the epoch's
shuffled order and RNG states.

Under torchrun, each rank takes its part of every batch and the ``parallel`` hooks average the
gradients and sum the metrics over the ranks (distributed.py); in one process they do nothing.
"""

import math
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dlbasics.checkpoint import save_checkpoint
from dlbasics.config import EarlyStoppingConfig, OptimConfig, TrainerConfig
from dlbasics.data import DataSplits
from dlbasics.diagnostics import Diagnostics
from dlbasics.distributed import SingleProcess
from dlbasics.errors import DataError
from dlbasics.hot_path import ModeSwitch, no_grad
from dlbasics.interrupt import StopOnSignal
from dlbasics.loggers import Logger, NullLogger
from dlbasics.losses import Objective
from dlbasics.models import Model
from dlbasics.optim import build_optimizer, build_scheduler
from dlbasics.progress import Progress
from dlbasics.training_state import EpochPass, TrainingState

EVAL_CHUNK = 8192  # samples per forward pass when evaluating, to bound memory
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "16-mixed": torch.float16}  # trainer.precision


@dataclass
class FitResult:
    epochs_run: int
    steps: int
    stop_reason: str  # max_epochs | early_stopping | diverged | interrupted
    best_epoch: int
    best_monitor: float | None  # best value of trainer.early_stopping.monitor
    best_val_loss: float | None  # lowest validation loss of any epoch
    fit_seconds: float
    last: dict[str, float | None] = field(default_factory=dict)  # last full epoch's metrics
    skipped_steps: int = 0  # steps skipped for a non-finite loss (trainer.on_nan=skip)
    stop_signal: int | None = None  # the signal that interrupted the run
    message: str | None = None  # what went wrong and what to try, when it did (divergence)


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

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.bad_epochs = (
            state["best"],
            state["best_epoch"],
            state["bad_epochs"],
        )


class Trainer:
    """Fits a model to in-memory data with the settings of ``trainer.*`` and ``optim.*``.

    ``checkpoint_dir=None`` writes no checkpoints; ``tag_prefix`` namespaces TensorBoard tags
    (so several fits can share one run, e.g. pre-training then fine-tuning). ``interrupt``
    is looked at between steps: once a signal has set it, the fit stops and saves last.pt.
    ``parallel`` is this process' place among the ranks of a torchrun job. ``diagnostics``
    (diag.*) measures gradients, weights and activations per layer; None measures nothing.
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
        interrupt: StopOnSignal | None = None,
        parallel: SingleProcess | None = None,
        lr_key: str = "optim.lr",
        diagnostics: Diagnostics | None = None,
    ):
        self.cfg = cfg
        self.optim = optim
        self.device = device
        self.logger = logger or NullLogger()
        self.checkpoint_dir = checkpoint_dir
        self.progress = progress
        self.tag_prefix = tag_prefix
        self.config_yaml = config_yaml  # stored in checkpoints, so each says how it was made
        self.interrupt = interrupt or StopOnSignal()  # one not entered is never requested
        self.parallel = parallel or SingleProcess(device)
        self.lr_key = lr_key  # the key that sets this fit's learning rate, for messages
        self.diagnostics = diagnostics

    def for_phase(
        self, tag_prefix: str, cfg: TrainerConfig, optim: OptimConfig, lr_key: str
    ) -> "Trainer":
        """A trainer for one phase of a fit in several (a DBN's pre-training of one layer):
        this one's device, logger, progress and signal handling, its own settings, its tags
        under ``tag_prefix``, and no checkpoints or diagnostics."""
        return Trainer(
            cfg,
            optim,
            self.device,
            logger=self.logger,
            progress=self.progress,
            tag_prefix=tag_prefix,
            config_yaml=self.config_yaml,
            interrupt=self.interrupt,
            parallel=self.parallel,
            lr_key=lr_key,
        )

    def fit(
        self,
        model: Model,
        data: DataSplits,
        objective: Objective,
        resume: dict[str, Any] | None = None,
    ) -> FitResult:
        """Train ``model``; ``resume`` is a ``last.pt`` payload to continue from."""
        cfg, parallel = self.cfg, self.parallel
        model.to(self.device)
        # The whole data set lives on the device; batches are index slices, not copies made
        # by a DataLoader.
        # An RBM's targets are its inputs, the same tensor: moved once, its batches taken once.
        targets_are_inputs = data.y_train is data.x_train
        x_train, y_train = self._on_device(data.x_train, data.y_train)
        x_val, y_val = self._on_device(data.x_val, data.y_val)
        n = len(x_train)
        batch_size = n if cfg.batch_size is None else min(cfg.batch_size, n)
        classify = data.spec.task != "regression"
        skip_non_finite = cfg.on_nan == "skip"
        # Under torchrun, a last batch too small to give each rank a sample waits for the next
        # epoch's shuffle.
        end = n - n % batch_size if n % batch_size < parallel.world_size else n

        if cfg.compile:  # compiled on the first forward pass; the state dict keeps its names
            model.compile()
        optimizer = build_optimizer(model.parameters(), self.optim)
        # float16 gradients underflow: the loss is scaled up before backpropagation and the
        # gradients down before the step (a no-op unless trainer.precision=16-mixed).
        scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.precision == "16-mixed")
        grad_scaling = scaler.is_enabled()
        objective.grad_scaler = scaler if grad_scaling else None
        stopper = EarlyStopping(cfg.early_stopping)
        scheduler = build_scheduler(optimizer, self.optim, cfg.epochs, stopper.mode)
        # Drawn on the CPU, so that every device takes the same batches in the same order.
        shuffle = torch.Generator().manual_seed(cfg.seed)
        state = TrainingState()
        if resume is not None:
            state = self._restore(resume, model, optimizer, scheduler, scaler, stopper, shuffle)
        progress = Progress(cfg.epochs) if self.progress else None
        training_step = parallel.training_step(model)  # model.training_step, for one process
        set_training = ModeSwitch(model)
        precision = self.autocast()  # entered once a step
        diagnostics = self.diagnostics
        if diagnostics:
            diagnostics.attach(model, self.logger, self.tag_prefix)

        stop_reason, stop_signal = "max_epochs", None
        message = None
        started = time.perf_counter()
        for epoch in range(state.epochs_done + 1, cfg.epochs + 1):
            epoch_started = time.perf_counter()

            # --- one pass over the training set (or the rest of one, when resumed) ------
            set_training(True)
            parallel.seed_epoch(cfg.seed, epoch)
            if state.epoch is None:
                order = torch.randperm(n, generator=shuffle).to(self.device)
                state.epoch = EpochPass(order)
            run = state.epoch
            # The epoch's batches of indices, split at once (one slice a step took 3 µs).
            for index in run.order[run.next_start : end].split(batch_size):
                if self.interrupt.requested and parallel.stops_between_steps:  # SIGINT/SIGTERM
                    break
                if batch_size < n:
                    index = parallel.local_batch(index)
                    # index_select: the same rows as x_train[index], in half the time
                    xb = x_train.index_select(0, index)
                    yb = xb if targets_are_inputs else y_train.index_select(0, index)
                else:  # batch gradient descent: the whole set, no need to shuffle or copy
                    xb, yb = parallel.local_batch(x_train), parallel.local_batch(y_train)
                run.next_start += batch_size
                optimizer.zero_grad(set_to_none=True)
                with precision:
                    loss, scores = training_step(xb, yb, objective)
                if skip_non_finite and not parallel.is_finite_everywhere(loss):  # a host sync
                    state.skipped_steps += 1
                    continue
                if diagnostics:  # gradient norms as backpropagation made them, before clipping
                    diagnostics.after_backward()
                if cfg.grad_clip is not None:
                    scaler.unscale_(optimizer)  # clip the gradients, not the scaled ones
                    self._clip_gradients(model)
                if grad_scaling:  # 16-mixed: step unless the gradients hold inf/NaN
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                state.steps += 1
                run.record(loss, xb.shape[0], objective.correct(scores, yb) if classify else None)
            if run.next_start < end:  # stopped part-way: last.pt resumes at the next step
                stop_reason, stop_signal = "interrupted", self.interrupt.signal_number
                break

            # --- end of epoch: measure, then decide ------------------------------------------
            run = parallel.combine(run)  # every rank's steps, as one process would have seen them
            metrics = {"train_loss": run.mean_loss()}
            if not math.isfinite(metrics["train_loss"]):
                stop_reason = "diverged"
                message = self._divergence_message(run, epoch, state, stopper.best_epoch)
                break
            if classify:
                metrics["train_acc"] = run.accuracy()
            set_training(False)
            val_loss, val_acc = self._measure(model, x_val, y_val, objective)
            metrics["val_loss"] = val_loss
            if classify:
                metrics["val_acc"] = val_acc
            metrics.update(model.epoch_metrics(x_train, x_val))
            state.epoch, state.epochs_done, state.metrics = None, epoch, metrics
            if state.best_val_loss is None or val_loss < state.best_val_loss:
                state.best_val_loss = val_loss

            monitored = metrics.get(cfg.early_stopping.monitor)
            lr = optimizer.param_groups[0]["lr"]
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(monitored)
            elif scheduler is not None:
                scheduler.step()
            if stopper.update(monitored, epoch):
                state.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

            self.logger.log_scalars(self._tags(metrics, lr, model, objective), epoch)
            if epoch % cfg.checkpoint_every == 0:
                self._log_images(model, x_val, epoch)
            if diagnostics:
                diagnostics.end_epoch(epoch)
            if progress:
                progress.epoch(epoch, metrics, time.perf_counter() - epoch_started)
            if self.checkpoint_dir and epoch % cfg.checkpoint_every == 0:
                fit_seconds = state.fit_seconds + time.perf_counter() - started
                self._save(
                    model, optimizer, scheduler, scaler, stopper, shuffle, state, fit_seconds
                )
            stop_early, stop_signal = parallel.agree_to_stop(
                stopper.should_stop, self.interrupt.signal_number
            )
            if stop_early:
                stop_reason = "early_stopping"
                break
            if stop_signal:
                stop_reason = "interrupted"
                break
        fit_seconds = state.fit_seconds + time.perf_counter() - started
        if progress:
            progress.close()
        if state.epochs_done % cfg.checkpoint_every:  # the last epoch's, unless already written
            self._log_images(model, x_val, state.epochs_done)
        if diagnostics:
            diagnostics.detach()

        if self.checkpoint_dir:  # last.pt holds the state training ended in, for resuming
            self._save(
                model,
                optimizer,
                scheduler,
                scaler,
                stopper,
                shuffle,
                state,
                fit_seconds,
                stop_reason,
            )
        if cfg.early_stopping.restore_best and state.best_state is not None:
            model.load_state_dict(state.best_state)
        return FitResult(
            epochs_run=state.epochs_done,
            steps=state.steps,
            stop_reason=stop_reason,
            best_epoch=stopper.best_epoch,
            best_monitor=stopper.best,
            best_val_loss=state.best_val_loss,
            fit_seconds=fit_seconds,
            last=state.metrics,
            skipped_steps=state.skipped_steps,
            stop_signal=stop_signal if stop_reason == "interrupted" else None,
            message=message,
        )

    def evaluate(
        self, model: Model, x: Tensor, y: Tensor, objective: Objective
    ) -> tuple[float, float | None]:
        """Mean loss and accuracy (None for regression) over a whole split (under torchrun,
        each rank evaluates its part and the sums are added up: no sample counts twice)."""
        model.eval()
        return self._measure(model, x, y, objective)

    @no_grad
    def _measure(
        self, model: Model, x: Tensor, y: Tensor, objective: Objective
    ) -> tuple[float, float | None]:
        """evaluate() for a model already in eval mode."""
        count = x.shape[0]  # under torchrun, the ranks' parts together: the whole split
        x, y = self._on_device(x, y)
        x, y = self.parallel.local_part(x), self.parallel.local_part(y)
        chunks = [(x, y)]  # most splits fit in one chunk: no slices to make then
        if x.shape[0] > EVAL_CHUNK:
            chunks = zip(x.split(EVAL_CHUNK), y.split(EVAL_CHUNK), strict=True)
        classify = objective.task != "regression"
        loss_sum, correct = 0.0, 0
        for xb, yb in chunks:
            with self.autocast():
                scores = model(xb)
                loss = objective(scores, yb)
            loss_sum += loss.item() * xb.shape[0]
            if classify:  # a regression has no correct predictions to count
                correct += objective.correct(scores, yb).item()
        loss_sum, correct = self.parallel.sum([loss_sum, correct])  # over the ranks' parts
        accuracy = correct / count if classify else None
        return loss_sum / count, accuracy

    def _on_device(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Inputs and targets on the training device; targets that are the inputs stay one
        tensor (no second copy on the GPU)."""
        x_on_device = x.to(self.device)
        return x_on_device, x_on_device if y is x else y.to(self.device)

    def autocast(self) -> AbstractContextManager:
        """Where forward passes run in trainer.precision: autocast to bfloat16 or float16
        (matrix products and convolutions in it, losses and sums in float32), or float32."""
        if self.cfg.precision == "32":
            return nullcontext()
        return torch.autocast(self.device.type, dtype=AUTOCAST_DTYPES[self.cfg.precision])

    def _clip_gradients(self, model: Model) -> None:
        if self.cfg.grad_clip_mode == "norm":
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.cfg.grad_clip)
        else:
            torch.nn.utils.clip_grad_value_(model.parameters(), self.cfg.grad_clip)

    def _tags(
        self, metrics: dict[str, float | None], lr: float, model: Model, objective: Objective
    ) -> dict[str, float]:
        """TensorBoard names: train_loss → loss/train, gap_free_energy → free_energy/gap, …"""
        tags = {}
        for key, value in metrics.items():
            split, _, kind = key.partition("_")
            tags[f"{self.tag_prefix}{kind}/{split}"] = value
        tags[f"{self.tag_prefix}lr"] = lr
        if objective.has_penalty:  # the L1/L2 term added to the training loss
            tags[f"{self.tag_prefix}reg/penalty"] = objective.penalty(model).item()
        return tags

    def _log_images(self, model: Model, x_val: Tensor, epoch: int) -> None:
        if isinstance(self.logger, NullLogger):  # drawing them (Gibbs chains) takes time
            return
        images = model.epoch_images(x_val)
        if images:
            tagged = {f"{self.tag_prefix}{tag}": image for tag, image in images.items()}
            self.logger.log_images(tagged, epoch)

    def _divergence_message(
        self, run: EpochPass, epoch: int, state: TrainingState, best_epoch: int
    ) -> str:
        first_bad = run.first_non_finite()
        if first_bad is None:  # trainer.on_nan=skip skipped every step of the epoch
            where = f"every step of epoch {epoch} had a non-finite loss (all skipped)"
        else:
            step = state.steps - len(run.losses) + first_bad + 1
            where = f"the training loss became non-finite at step {step} (epoch {epoch})"
        kept = f"best.pt (epoch {best_epoch})" if best_epoch else "no best.pt (no finite epoch)"
        return (
            f"training diverged: {where}. Kept: {kept} and the metrics of epoch "
            f"{state.epochs_done}. Lower {self.lr_key} (now {self.optim.lr:g}), clip gradients "
            "(e.g. trainer.grad_clip=1.0), or skip such steps with trainer.on_nan=skip."
        )

    def _save(
        self,
        model: Model,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        scaler: torch.amp.GradScaler,
        stopper: EarlyStopping,
        shuffle: torch.Generator,
        state: TrainingState,
        fit_seconds: float,
        stop_reason: str | None = None,
    ) -> None:
        """Write best.pt, and last.pt unless the weights are no longer finite (a diverged run
        keeps the last.pt of its last checkpoint)."""
        assert self.checkpoint_dir is not None
        common = {"config": self.config_yaml, "monitor": self.cfg.early_stopping.monitor}
        if stop_reason != "diverged":
            save_checkpoint(
                {
                    **common,
                    "epoch": state.epochs_done,
                    "steps": state.steps,
                    "stop_reason": stop_reason,  # None: written while training went on
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "grad_scaler": scaler.state_dict(),  # {} unless 16-mixed
                    "early_stopping": stopper.state_dict(),
                    "rng": {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()},
                    "training": state.state_dict(fit_seconds),
                },
                self.checkpoint_dir / "last.pt",
            )
        if state.best_state is not None:
            save_checkpoint(
                {
                    **common,
                    "epoch": stopper.best_epoch,
                    "value": stopper.best,
                    "model": state.best_state,
                },
                self.checkpoint_dir / "best.pt",
            )

    def _restore(
        self,
        checkpoint: dict[str, Any],
        model: Model,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        scaler: torch.amp.GradScaler,
        stopper: EarlyStopping,
        shuffle: torch.Generator,
    ) -> TrainingState:
        """Put the state of a ``last.pt`` back into freshly built training objects."""
        try:
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(checkpoint["scheduler"])
            if checkpoint.get("grad_scaler"):
                scaler.load_state_dict(checkpoint["grad_scaler"])
            stopper.load_state_dict(checkpoint["early_stopping"])
            torch.set_rng_state(checkpoint["rng"]["torch"])
            shuffle.set_state(checkpoint["rng"]["shuffle"])
            return TrainingState.from_state_dict(checkpoint["training"], self.device)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise DataError(
                f"trainer.resume: the checkpoint does not fit this model and trainer "
                f"({type(error).__name__}: {str(error).splitlines()[0][:200]})."
            ) from None
