"""Callbacks: what a fit does besides learning, plugged into the Trainer's loop (docs/callbacks.md).

The loop itself (trainer.py) only trains: each step is the model's training step, then the
optimizer's; each epoch ends with validation, the learning-rate schedule and the decision to
stop. Everything else a fit does hooks in here, in the spirit of Keras callbacks and
Lightning's ``Callback``. The Trainer calls the hooks in this order, each callback in the order
of its list (the built-in ones first, then the user's):

    on_fit_start(loop)
    for each epoch:
        on_epoch_start(loop)
        for each step:
            the model's training step (forward → loss → backward)
            on_after_backward(loop, loss)   a callback may set loop.skip_step: the step is
                                            dropped, and the later callbacks do not see it
            clip the gradients → optimizer step
            on_step_end(loop)
        the epoch's measures (loop.metrics; unless the training loss diverged)
        on_validation_end(loop)             early stopping: a callback may set loop.wants_stop
        the schedule steps; whether to stop is decided (loop.stop_reason)
        on_epoch_end(loop)                  also after an epoch whose loss diverged
    on_fit_end(loop)                        also after a signal stopped the fit

A callback reads and may change what ``loop`` (a Loop) holds: the model, the optimizer, the
epoch's ``metrics``, ``stop_reason``. It never needs an ``if`` in the loop.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from dlbasics import early_stopping
from dlbasics.members import Members
from dlbasics.models import Model
from dlbasics.models.stacked import StackedModel
from dlbasics.optim import Scheduler
from dlbasics.training_state import EpochPass, TrainingState

if TYPE_CHECKING:
    from dlbasics.diagnostics import Diagnostics
    from dlbasics.losses import Objective
    from dlbasics.models.stacked import MemberObjective
    from dlbasics.progress import NullProgress, Progress
    from dlbasics.trainer import Trainer


@dataclass
class Loop:
    """A fit under way, as the callbacks see it."""

    trainer: "Trainer"
    model: Model
    objective: "Objective | MemberObjective"
    optimizer: torch.optim.Optimizer
    scheduler: Scheduler | None
    scaler: torch.amp.GradScaler
    stopper: early_stopping.EarlyStopping  # trainer.early_stopping's bookkeeping (a single model's)
    shuffles: list[torch.Generator]  # the shuffles' generators (a stacked fit's: one a member)
    members: Members | None  # a stacked fit's members, each stopping on its own; else None
    state: TrainingState  # what last.pt holds to resume: steps, epochs done, best weights, …
    x_val: Tensor  # the validation inputs, on the device (images are drawn from them)
    started: float = field(default_factory=time.perf_counter)
    epoch: int = 0  # the epoch under way (from 1)
    epoch_started: float = 0.0
    run: EpochPass | None = None  # the epoch's pass: its order, its steps' losses
    metrics: dict[str, float | None] = field(default_factory=dict)  # the epoch's measures
    member_metrics: list[dict[str, float | None]] = field(default_factory=list)  # stacked
    lrs: list[float] = field(default_factory=list)  # the epoch's learning rates, per group
    skip_step: bool = False  # set in on_after_backward: this step is not taken
    wants_stop: str | None = None  # set in on_validation_end: why the fit should stop now
    # None while training goes on; else why it stopped: early_stopping | diverged |
    # interrupted (max_epochs once the last epoch is done)
    stop_reason: str | None = None
    stop_signal: int | None = None  # the signal that interrupted it
    message: str | None = None  # what went wrong and what to try (divergence)
    ended: float | None = None  # when the loop ended (time.perf_counter)

    def end(self) -> None:
        """The loop is over: it ran its epochs, unless it stopped before."""
        self.stop_reason = self.stop_reason or "max_epochs"
        self.ended = time.perf_counter()

    def fit_seconds(self) -> float:
        """Seconds spent fitting, earlier processes of a resumed run included."""
        return self.state.fit_seconds + (self.ended or time.perf_counter()) - self.started


class Callback:
    """Does nothing at every hook; subclass it and override the hooks you need."""

    def on_fit_start(self, loop: Loop) -> None:
        pass

    def on_epoch_start(self, loop: Loop) -> None:
        pass

    def on_after_backward(self, loop: Loop, loss: Tensor) -> None:
        pass

    def on_step_end(self, loop: Loop) -> None:
        pass

    def on_validation_end(self, loop: Loop) -> None:
        pass

    def on_epoch_end(self, loop: Loop) -> None:
        pass

    def on_fit_end(self, loop: Loop) -> None:
        pass


class Callbacks(Callback):
    """Several callbacks called as one, in their order."""

    def __init__(self, callbacks: list[Callback]):
        self.callbacks = list(callbacks)

    def on_fit_start(self, loop: Loop) -> None:
        self._each("on_fit_start", loop)

    def on_epoch_start(self, loop: Loop) -> None:
        self._each("on_epoch_start", loop)

    def on_after_backward(self, loop: Loop, loss: Tensor) -> None:
        loop.skip_step = False
        for callback in self.callbacks:
            callback.on_after_backward(loop, loss)
            if loop.skip_step:  # the step is dropped: nothing after sees it
                return

    def on_step_end(self, loop: Loop) -> None:
        self._each("on_step_end", loop)

    def on_validation_end(self, loop: Loop) -> None:
        self._each("on_validation_end", loop)

    def on_epoch_end(self, loop: Loop) -> None:
        self._each("on_epoch_end", loop)

    def on_fit_end(self, loop: Loop) -> None:
        self._each("on_fit_end", loop)

    def _each(self, hook: str, loop: Loop) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(loop)


# --- the built-in callbacks (builtin_callbacks, below, puts them in the order they are called) --


class SkipNonFinite(Callback):
    """trainer.on_nan=skip: a step whose loss is not finite (on any rank) is not taken."""

    def on_after_backward(self, loop: Loop, loss: Tensor) -> None:
        if not loop.trainer.parallel.is_finite_everywhere(loss):  # a host sync per step
            loop.state.skipped_steps += 1
            loop.skip_step = True


class EarlyStopping(Callback):
    """trainer.early_stopping: keep the best epoch's weights (by its monitor), and stop once
    it has not improved for ``patience`` epochs (early_stopping.py keeps the count)."""

    def on_validation_end(self, loop: Loop) -> None:
        stopper, state = loop.stopper, loop.state
        if stopper.update(loop.metrics.get(stopper.cfg.monitor), loop.epoch):
            state.best_state = {k: v.clone() for k, v in loop.model.state_dict().items()}
        if stopper.should_stop:
            loop.wants_stop = "early_stopping"


class MemberEarlyStopping(Callback):
    """A stacked fit's early stopping, member by member (members.py): each keeps its own best
    epoch and stops on its own, or when its own loss diverges; a stopped member stays as it
    stopped (a step moves every row of the stacked parameters, so its rows are put back)."""

    def on_step_end(self, loop: Loop) -> None:
        loop.model.hold_stopped()

    def on_validation_end(self, loop: Loop) -> None:
        model, members, run = loop.model, loop.members, loop.run
        for k in members.training:  # every step of the group was theirs too
            members[k].steps = loop.state.steps
        for k in members.end_epoch(loop.epoch, loop.member_metrics, model.member_states()):
            model.stop_member(k, loop.optimizer)
            record = members[k]
            if record.stop_reason == "diverged":  # what went wrong, for its job's summary
                own = EpochPass(run.order[k], losses=[loss[k] for loss in run.losses])
                so_far = TrainingState(
                    record.epochs_run, record.steps, first_loss=record.first_loss
                )
                record.message = loop.trainer.divergence_message(
                    own, loop.member_metrics[k]["train_loss"], loop.epoch, so_far,
                    record.stopper.best_epoch, model.settings[k].lr,
                )  # fmt: skip
        if not members.training:
            loop.wants_stop = "early_stopping" if members.stopped_early else "diverged"


class DiagnosticsLog(Callback):
    """diag.*: per-layer gradient, weight and activation statistics (diagnostics.py)."""

    def __init__(self, diagnostics: "Diagnostics"):
        self.diagnostics = diagnostics

    def on_fit_start(self, loop: Loop) -> None:
        self.diagnostics.attach(loop.model, loop.trainer.logger, loop.trainer.tag_prefix)

    def on_after_backward(self, loop: Loop, loss: Tensor) -> None:
        self.diagnostics.after_backward()  # the gradients as backpropagation made them

    def on_epoch_end(self, loop: Loop) -> None:
        self.diagnostics.end_epoch(loop.epoch)  # after a divergence too: what blew up

    def on_fit_end(self, loop: Loop) -> None:
        self.diagnostics.detach()


class TensorBoardLog(Callback):
    """The epoch's scalars (loss/train, acc/val, lr, reg/penalty, member/<k>/…), and the
    model's images and text every trainer.checkpoint_every epochs and at the end."""

    def on_epoch_end(self, loop: Loop) -> None:
        trainer = loop.trainer
        if loop.stop_reason == "diverged" and loop.members is None:
            return  # the epoch's measures were not taken
        trainer.logger.log_scalars(trainer.tags(loop), loop.epoch)
        if loop.epoch % trainer.cfg.checkpoint_every == 0:
            trainer.log_images(loop.model, loop.x_val, loop.epoch)

    def on_fit_end(self, loop: Loop) -> None:
        trainer = loop.trainer
        if loop.state.epochs_done % trainer.cfg.checkpoint_every:  # unless already drawn
            trainer.log_images(loop.model, loop.x_val, loop.state.epochs_done)


class ProgressLog(Callback):
    """One line per epoch on the console and in train.log (progress.py draws the bar)."""

    def __init__(self, progress: "Progress | NullProgress"):
        self.progress = progress

    def on_epoch_end(self, loop: Loop) -> None:
        if loop.stop_reason == "diverged" and loop.members is None:
            return  # the run's summary says what went wrong
        seconds = time.perf_counter() - loop.epoch_started
        self.progress.end_epoch(loop.epoch, loop.metrics, seconds)


class Checkpoints(Callback):
    """checkpoints/last.pt (all a resumed fit needs) every trainer.checkpoint_every epochs and
    when the fit ends, and best.pt (the best epoch's weights) with each."""

    def __init__(self, directory: Path):
        self.directory = directory

    def on_epoch_end(self, loop: Loop) -> None:
        last_epoch = loop.stop_reason is not None or loop.epoch == loop.trainer.cfg.epochs
        if loop.epoch % loop.trainer.cfg.checkpoint_every == 0 and not last_epoch:
            loop.trainer.save(loop, self.directory)  # the last epoch's: once, at the end

    def on_fit_end(self, loop: Loop) -> None:
        loop.trainer.save(loop, self.directory, final=True)


def builtin_callbacks(
    trainer: "Trainer", model: Model, progress: "Progress | NullProgress"
) -> list[Callback]:
    """The callbacks trainer.*, diag.* and the run ask for, in the order they are called."""
    callbacks: list[Callback] = []
    if trainer.cfg.on_nan == "skip":
        callbacks.append(SkipNonFinite())
    if trainer.diagnostics is not None:
        callbacks.append(DiagnosticsLog(trainer.diagnostics))
    callbacks.append(MemberEarlyStopping() if isinstance(model, StackedModel) else EarlyStopping())
    callbacks += [TensorBoardLog(), ProgressLog(progress)]
    if trainer.checkpoint_dir is not None:
        callbacks.append(Checkpoints(trainer.checkpoint_dir))
    return callbacks
