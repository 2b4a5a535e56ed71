"""The training loop every model goes through (docs/concepts.md §6), top to bottom in one place.

for each epoch:
    shuffle the training set (a permutation of indices on the device)
    for each batch of indices:
        the model's training step: forward → loss (+ L1/L2 penalty) → backward
        clip → optimizer step
    validate (+ the model's own measures) → learning-rate schedule → stop?

Everything else — early stopping, checkpoints, TensorBoard, diagnostics, the epoch lines — is a
callback (callbacks.py), and what a step computes is the model's (Model.training_step):
docs/callbacks.md.

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
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dlbasics.batches import TrainingBatches
from dlbasics.callbacks import Callback, Callbacks, Loop, builtin_callbacks
from dlbasics.checkpoint import save_checkpoint
from dlbasics.data import DataSplits
from dlbasics.diagnostics import Diagnostics
from dlbasics.distributed import SingleProcess
from dlbasics.early_stopping import EXPLODED, EarlyStopping, diverged
from dlbasics.errors import DataError
from dlbasics.interrupt import StopOnSignal
from dlbasics.loggers import Logger, NullLogger
from dlbasics.losses import Objective, has_accuracy
from dlbasics.members import Members
from dlbasics.models import Model
from dlbasics.models.base import StepTools
from dlbasics.models.stacked import MemberObjective, StackedModel
from dlbasics.optim import OptimConfig, ScheduleConfig, Scheduler, build_optimizer, build_scheduler
from dlbasics.progress import NullProgress, Progress

# The trainer's schema, kept importable from here (dlbasics/schemas/trainer.py).
from dlbasics.schemas.trainer import TRAINER_MODES, TrainerConfig  # noqa: F401
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
    phase: str | None = None  # the fit of a sequence it was (phases.py), if one
    # A stacked fit's members, each as metrics.json gives it: its epochs run, stop reason, best
    # epoch and monitor, best validation loss and last epoch's measures (Member.result).
    members: list[dict[str, Any]] | None = None


class Trainer:
    """Fits a model to in-memory data with the settings of ``trainer.*``, ``optim.*`` and
    ``schedule.*``.

    ``checkpoint_dir=None`` writes no checkpoints; ``tag_prefix`` namespaces TensorBoard tags
    (so several fits can share one run, e.g. pre-training then fine-tuning). ``interrupt``
    is looked at between steps: once a signal has set it, the fit stops and saves last.pt.
    ``parallel`` is this process' place among the ranks of a torchrun job. ``diagnostics``
    (diag.*) measures gradients, weights and activations per layer; None measures nothing.
    ``callbacks`` (callbacks.py) are the user's: every fit calls them after its own.
    """

    def __init__(
        self,
        cfg: TrainerConfig,
        optim: OptimConfig,
        schedule: ScheduleConfig,
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
        callbacks: Sequence[Callback] = (),
    ):
        self.cfg = cfg
        self.optim = optim
        self.schedule = schedule
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
        self.callbacks = list(callbacks)  # the user's, called after the built-in ones

    def for_phase(
        self,
        tag_prefix: str,
        cfg: TrainerConfig,
        optim: OptimConfig,
        lr_key: str,
        schedule: ScheduleConfig | None = None,
    ) -> "Trainer":
        """A trainer for one fit of several (a DBN's pre-training of one layer): this one's
        device, logger, progress and signal handling, its own settings and ``schedule`` (None:
        none), its tags under ``tag_prefix``, and no checkpoints or diagnostics."""
        return Trainer(
            cfg,
            optim,
            schedule or ScheduleConfig(),
            self.device,
            logger=self.logger,
            progress=self.progress,
            tag_prefix=tag_prefix,
            config_yaml=self.config_yaml,
            interrupt=self.interrupt,
            parallel=self.parallel,
            lr_key=lr_key,
            callbacks=self.callbacks,
        )

    def fit(
        self,
        model: Model,
        data: DataSplits,
        objective: Objective | MemberObjective,
        resume: dict[str, Any] | None = None,
        sample_weights: Tensor | None = None,
    ) -> FitResult:
        """Train ``model``; ``resume`` is a ``last.pt`` payload to continue from.
        ``sample_weights`` (n,), mean 1: how much each training sample counts in the loss
        (boosting's weights); None: every sample once.

        A StackedModel (K members as one computation) trains through the same loop: each step
        takes every member's own batch, (K, B, …), and backpropagates the sum of the members'
        own losses; each member stops, and keeps its best epoch, on its own (members.py)."""
        cfg, parallel = self.cfg, self.parallel
        model.to(self.device)
        # The whole data set lives on the device; batches are index slices, not copies made
        # by a DataLoader (batches.py).
        batches = TrainingBatches(model, data, sample_weights, cfg, parallel)
        x_val, y_val = self._on_device(data.x_val, data.y_val)
        if cfg.compile:  # compiled on the first forward pass; the state dict keeps its names
            model.compile()
        optimizer = build_optimizer(model.param_groups(), self.optim, self.device)
        # float16 gradients underflow: the loss is scaled up before backpropagation and the
        # gradients down before the step. Unless trainer.precision=16-mixed, it passes
        # everything through unchanged.
        scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.precision == "16-mixed")
        # under torchrun, forward is DDP's: backward averages the gradients over the ranks
        tools = StepTools(parallel.wrap(model), self.autocast(), scaler, parallel)
        loop = self._start(model, objective, optimizer, scaler, x_val, resume)
        monitor = cfg.early_stopping.monitor
        progress = Progress(cfg.epochs, monitor) if self.progress else NullProgress()
        hooks = Callbacks([*builtin_callbacks(self, model, progress), *self.callbacks])
        hooks.on_fit_start(loop)
        with progress:  # on a terminal, logging goes through the live bar's writer
            for epoch in range(loop.state.epochs_done + 1, cfg.epochs + 1):
                loop.epoch, loop.epoch_started = epoch, time.perf_counter()
                hooks.on_epoch_start(loop)
                model.train()
                run = self._epoch_pass(loop, batches.count)  # this epoch's shuffled order
                steps = run.order[..., run.next_start : batches.end].split(batches.size, dim=-1)
                for index in progress.batches(epoch, steps, len(steps)):
                    if self.interrupt.requested and parallel.stops_between_steps:  # a signal
                        break
                    batch = batches.take(index)
                    run.next_start += batches.size
                    optimizer.zero_grad(set_to_none=True)
                    loss, scores = model.training_step(batch, objective, tools)
                    hooks.on_after_backward(loop, loss)
                    if loop.skip_step:
                        continue
                    scaler.unscale_(optimizer)  # clip the gradients, not the scaled ones
                    model.clip_gradients(cfg.grad_clip_mode, cfg.grad_clip)
                    scaler.step(optimizer)  # skipped when 16-mixed's gradients hold inf/NaN
                    scaler.update()
                    loop.state.steps += 1
                    run.record(loss.detach(), batch.size, batch.correct(objective, scores))
                    hooks.on_step_end(loop)
                if run.next_start < batches.end:  # stopped part-way: last.pt resumes there
                    loop.stop_reason, loop.stop_signal = "interrupted", self.interrupt.signal_number
                    break

                # --- end of epoch: measure, schedule, decide --------------------------------
                loop.run = parallel.combine(run)  # every rank's steps, as one process's
                self._end_epoch(loop, batches.x, x_val, y_val)  # the epoch's measures
                if loop.stop_reason == "diverged":  # a single model's: no measures to go on
                    hooks.on_epoch_end(loop)
                    break
                hooks.on_validation_end(loop)  # early stopping: loop.wants_stop
                self._schedule(loop)
                self._decide_to_stop(loop)
                hooks.on_epoch_end(loop)
                if loop.stop_reason is not None:
                    break
        loop.end()
        hooks.on_fit_end(loop)
        return self._finish(loop)

    def _start(
        self,
        model: Model,
        objective: Objective | MemberObjective,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        x_val: Tensor,
        resume: dict[str, Any] | None,
    ) -> Loop:
        """The fit's bookkeeping, fresh or as ``resume`` (a last.pt payload) left it."""
        cfg = self.cfg
        stopper = EarlyStopping(cfg.early_stopping)
        scheduler = build_scheduler(optimizer, self.schedule, cfg.epochs, stopper.mode)
        stacked = isinstance(model, StackedModel)
        # Drawn on the CPU, so that every device takes the same batches in the same order;
        # stacked members each shuffle with their own seed.
        seeds = [member.seed for member in model.settings] if stacked else [cfg.seed]
        shuffles = [torch.Generator().manual_seed(seed) for seed in seeds]
        members = Members(model.size, cfg.early_stopping) if stacked else None
        state = TrainingState()
        if resume is not None:
            state = self._restore(
                resume, model, optimizer, scheduler, scaler, stopper, shuffles, members
            )
        return Loop(
            self, model, objective, optimizer, scheduler, scaler, stopper, shuffles, members,
            state, x_val,
        )  # fmt: skip

    def _epoch_pass(self, loop: Loop, n: int) -> EpochPass:
        """The epoch's pass over the training set: a new shuffle, or the one a resumed run
        stopped in."""
        self.parallel.seed_epoch(self.cfg.seed, loop.epoch)
        if loop.state.epoch is None:
            order = loop.model.epoch_order(n, loop.shuffles)
            loop.state.epoch = EpochPass(order.to(self.device))
        return loop.state.epoch

    def _end_epoch(self, loop: Loop, x_train: Tensor, x_val: Tensor, y_val: Tensor) -> None:
        """The epoch's measures (loop.metrics) of its pass (loop.run) and on the validation
        split; or, when the training loss diverged, loop.stop_reason and what went wrong."""
        loop.wants_stop = None  # the callbacks of on_validation_end may set it again
        if loop.members is not None:  # each member measured on its own
            loop.metrics = self._end_member_epochs(loop, x_val, y_val)
        else:
            loop.metrics, loop.message = self._end_single_epoch(loop, x_train, x_val, y_val)
            if loop.message:
                loop.stop_reason = "diverged"
                return
        state = loop.state
        state.epoch, state.epochs_done, state.metrics = None, loop.epoch, loop.metrics

    def _schedule(self, loop: Loop) -> None:
        """Note the epoch's learning rates (loop.lrs), then step the schedule."""
        loop.lrs = [group["lr"] for group in loop.optimizer.param_groups]
        if isinstance(loop.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            loop.scheduler.step(loop.metrics.get(self.cfg.early_stopping.monitor))
        elif loop.scheduler is not None:
            loop.scheduler.step()

    def _decide_to_stop(self, loop: Loop) -> None:
        """Stop (loop.stop_reason) when a callback wants to (loop.wants_stop), or a signal
        asked to (under torchrun, when any rank did: they stop together)."""
        stop_early, stop_signal = self.parallel.agree_to_stop(
            loop.wants_stop is not None, self.interrupt.signal_number
        )
        if stop_early:
            loop.stop_reason = loop.wants_stop or "early_stopping"
        elif stop_signal:
            loop.stop_reason, loop.stop_signal = "interrupted", stop_signal

    def _finish(self, loop: Loop) -> FitResult:
        """What the fit did; the model left with its best epoch's weights when
        trainer.early_stopping.restore_best (each member its own)."""
        model, members, state, stopper = loop.model, loop.members, loop.state, loop.stopper
        results = None
        if members is not None:
            model.requires_grad_(True)  # the members' own parameters train again alone
            if self.cfg.early_stopping.restore_best:
                for member, record in zip(model.members, members.records, strict=True):
                    if record.best_state is not None:
                        member.load_state_dict(record.best_state)
            # the members' own best epochs: the latest, and their mean best value
            results = [record.result() for record in members.records]
            if loop.stop_reason == "interrupted":  # those still training stopped with the group
                for record, result in zip(members.records, results, strict=True):
                    if record.stop_reason is None:
                        result["stop_reason"] = "interrupted"
            best_values = [r["best_monitor"] for r in results]
            stopper.best_epoch = max(r["best_epoch"] for r in results)
            stopper.best = None if None in best_values else _mean(best_values)
            state.best_val_loss = _mean([r["best_val_loss"] for r in results])
        elif self.cfg.early_stopping.restore_best and state.best_state is not None:
            model.load_state_dict(state.best_state)
        return FitResult(
            epochs_run=state.epochs_done,
            steps=state.steps,
            stop_reason=loop.stop_reason,
            best_epoch=stopper.best_epoch,
            best_monitor=stopper.best,
            best_val_loss=state.best_val_loss,
            fit_seconds=loop.fit_seconds(),
            last=state.metrics,
            skipped_steps=state.skipped_steps,
            stop_signal=loop.stop_signal if loop.stop_reason == "interrupted" else None,
            message=loop.message,
            members=results,
        )

    def _end_single_epoch(
        self, loop: Loop, x_train: Tensor, x_val: Tensor, y_val: Tensor
    ) -> tuple[dict[str, float | None], str | None]:
        """A single model's measures of the epoch, and what went wrong if its training loss
        diverged (then without validation)."""
        run, state, model, objective = loop.run, loop.state, loop.model, loop.objective
        metrics = {"train_loss": run.mean_loss()}
        if state.first_loss is None and run.losses:  # the untrained model's loss
            state.first_loss = run.losses[0].item()
        if diverged(metrics["train_loss"], state.first_loss):
            best_epoch = loop.stopper.best_epoch
            return metrics, self.divergence_message(
                run, metrics["train_loss"], loop.epoch, state, best_epoch
            )
        classify = has_accuracy(objective.task)
        if classify:
            metrics["train_acc"] = run.accuracy()
        model.eval()
        val_loss, val_acc = self._measure(model, x_val, y_val, objective)
        metrics["val_loss"] = val_loss
        if classify:
            metrics["val_acc"] = val_acc
        metrics.update(model.epoch_metrics(x_train, x_val))
        if state.best_val_loss is None or val_loss < state.best_val_loss:
            state.best_val_loss = val_loss
        return metrics, None

    def _end_member_epochs(
        self, loop: Loop, x_val: Tensor, y_val: Tensor
    ) -> dict[str, float | None]:
        """Each member's measures of the epoch (loop.member_metrics). Returns the ensemble's
        measures when the members vote (its validation loss and accuracy; the training ones
        are the members' mean), else the members' mean."""
        model, members, objective, run = loop.model, loop.members, loop.objective, loop.run
        classify = has_accuracy(objective.task)
        train_loss = run.mean_loss()
        train_acc = run.accuracy() if classify else [None] * model.size
        model.eval()
        val_loss, val_acc, ensemble = self._measure_members(model, x_val, y_val, objective)
        measured = [
            {"train_loss": train_loss[k], "train_acc": train_acc[k]} if classify else
            {"train_loss": train_loss[k]}
            for k in range(model.size)
        ]
        for k, m in enumerate(measured):
            m["val_loss"] = val_loss[k]
            if classify:
                m["val_acc"] = val_acc[k]
        if members[0].first_loss is None:  # the untrained members' losses, at the first step
            first_losses = run.losses[0].tolist()
            for record, first in zip(members.records, first_losses, strict=True):
                record.first_loss = first
        loop.member_metrics = measured
        metrics = {key: _mean([m[key] for m in measured]) for key in measured[0]}
        if ensemble is not None:
            metrics.update(ensemble)
        return metrics

    def evaluate(
        self, model: Model, x: Tensor, y: Tensor, objective: Objective
    ) -> tuple[float, float | None]:
        """Mean loss and accuracy (None for regression) over a whole split (under torchrun,
        each rank evaluates its part and the sums are added up: no sample counts twice)."""
        model.eval()
        return self._measure(model, x, y, objective)

    @torch.no_grad()
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
        classify = has_accuracy(objective.task)
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

    @torch.no_grad()
    def _measure_members(
        self, model: StackedModel, x: Tensor, y: Tensor, objective: MemberObjective
    ) -> tuple[list[float], list[float | None], dict[str, float | None] | None]:
        """Each member's mean loss and accuracy over a split (lists of K), and the ensemble's
        (``val_loss``, ``val_acc``) when the members vote (``model.vote``), else None."""
        x, y = self._on_device(x, y)
        with self.autocast():
            chunks = model.inputs(x).split(EVAL_CHUNK, dim=1)
            scores = torch.cat([model(chunk) for chunk in chunks], dim=1).float()
        targets = y if model.own_data else y.expand(model.size, *y.shape)
        count = targets.shape[1]
        losses = objective(scores, targets).tolist()
        classify = has_accuracy(objective.task)
        if classify:
            accuracies = (objective.correct(scores, targets) / count).tolist()
        else:
            accuracies = [None] * model.size
        if model.vote is None:
            return losses, accuracies, None
        single = objective.objective  # the ensemble answers as one model of the family would
        combined = model.vote(single, scores)
        ensemble = {"val_loss": single(combined, y).item()}
        if classify:
            ensemble["val_acc"] = single.correct(combined, y).item() / count
        return losses, accuracies, ensemble

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

    def tags(self, loop: Loop) -> dict[str, float]:
        """TensorBoard names: train_loss → loss/train, gap_free_energy → free_energy/gap, …;
        a stacked fit's members each under member/<k>/ (those that trained this epoch)."""
        metrics, lrs, model, objective = loop.metrics, loop.lrs, loop.model, loop.objective
        members, epoch = loop.members, loop.epoch
        tags = {}
        for key, value in metrics.items():
            split, _, kind = key.partition("_")
            tags[f"{self.tag_prefix}{kind}/{split}"] = value
        tags[f"{self.tag_prefix}lr"] = lrs[0]
        if members is not None:
            penalties = objective.penalty(model).tolist() if objective.has_penalty else None
            for k, record in enumerate(members.records):
                if record.epochs_run != epoch:
                    continue
                prefix = f"{self.tag_prefix}member/{k}/"
                for key, value in record.metrics.items():
                    split, _, kind = key.partition("_")
                    tags[f"{prefix}{kind}/{split}"] = value
                tags[f"{prefix}lr"] = lrs[model.group_of(k)[0]]  # its parameter group's
                if penalties is not None:
                    tags[f"{prefix}reg/penalty"] = penalties[k]
        elif objective.has_penalty:  # the L1/L2 term added to the training loss
            tags[f"{self.tag_prefix}reg/penalty"] = objective.penalty(model).item()
        return tags

    def log_images(self, model: Model, x_val: Tensor, epoch: int) -> None:
        """The model's images and text for TensorBoard (an RBM's filters, translations)."""
        if isinstance(self.logger, NullLogger):  # drawing them (Gibbs chains) takes time
            return
        images = model.epoch_images(x_val)
        if images:
            tagged = {f"{self.tag_prefix}{tag}": image for tag, image in images.items()}
            self.logger.log_images(tagged, epoch)
        for tag, text in model.epoch_text(x_val).items():  # a seq2seq model's translations
            self.logger.log_text(f"{self.tag_prefix}{tag}", text, epoch)

    def divergence_message(
        self,
        run: EpochPass,
        loss: float,
        epoch: int,
        state: TrainingState,
        best_epoch: int,
        lr: float | None = None,
    ) -> str:
        """What diverged where, what was kept and what to try; ``lr``: the learning rate of
        the member that diverged (a stacked fit's), else optim.lr."""
        first_bad = run.first_non_finite()
        if math.isfinite(loss):  # finite, but far above where it started
            where = (
                f"the training loss of epoch {epoch} is {loss:.3g}, over {EXPLODED:.0e} times "
                f"the untrained model's ({state.first_loss:.3g}, at the first step)"
            )
        elif first_bad is None:  # trainer.on_nan=skip skipped every step of the epoch
            where = f"every step of epoch {epoch} had a non-finite loss (all skipped)"
        else:
            step = state.steps - len(run.losses) + first_bad + 1
            where = f"the training loss became non-finite at step {step} (epoch {epoch})"
        kept = f"best.pt (epoch {best_epoch})" if best_epoch else "no best.pt (no epoch before)"
        return (
            f"training diverged: {where}. Kept: {kept} and the metrics of epoch "
            f"{state.epochs_done}. Lower {self.lr_key} (now {lr or self.optim.lr:g}), clip "
            "gradients (e.g. trainer.grad_clip=1.0), or skip such steps with trainer.on_nan=skip."
        )

    def save(self, loop: Loop, directory: Path, final: bool = False) -> None:
        """Write best.pt, and last.pt unless the weights are no longer finite (a diverged run
        keeps the last.pt of its last checkpoint). A stacked fit's hold every member: last.pt
        each member's record besides, best.pt each member's best weights. ``final``: the fit
        has ended (last.pt says why); else it goes on."""
        model, state, stopper, members = loop.model, loop.state, loop.stopper, loop.members
        stop_reason = loop.stop_reason if final else None
        shuffles, scheduler, fit_seconds = loop.shuffles, loop.scheduler, loop.fit_seconds()
        common = {"config": self.config_yaml, "monitor": self.cfg.early_stopping.monitor}
        shuffle = [g.get_state() for g in shuffles] if members else shuffles[0].get_state()
        if stop_reason != "diverged":
            save_checkpoint(
                {
                    **common,
                    "epoch": state.epochs_done,
                    "steps": state.steps,
                    "stop_reason": stop_reason,  # None: written while training went on
                    "model": model.state_dict(),
                    "optimizer": loop.optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "grad_scaler": loop.scaler.state_dict(),  # {} unless 16-mixed
                    "early_stopping": stopper.state_dict(),
                    "rng": {"torch": torch.get_rng_state(), "shuffle": shuffle},
                    "training": state.state_dict(fit_seconds),
                    **({"members": members.state_dict()} if members else {}),
                },
                directory / "last.pt",
            )
        if members is not None:
            best = model.state_dict()  # a member without a best epoch yet: as it is
            for k, record in enumerate(members.records):
                for key, value in (record.best_state or {}).items():
                    best[f"members.{k}.{key}"] = value
            best_epochs = [record.stopper.best_epoch for record in members.records]
            save_checkpoint(
                {**common, "epoch": max(best_epochs), "best_epochs": best_epochs, "model": best},
                directory / "best.pt",
            )
        elif state.best_state is not None:
            save_checkpoint(
                {
                    **common,
                    "epoch": stopper.best_epoch,
                    "value": stopper.best,
                    "model": state.best_state,
                },
                directory / "best.pt",
            )

    def _restore(
        self,
        checkpoint: dict[str, Any],
        model: Model,
        optimizer: torch.optim.Optimizer,
        scheduler: Scheduler | None,
        scaler: torch.amp.GradScaler,
        stopper: EarlyStopping,
        shuffles: list[torch.Generator],
        members: Members | None,
    ) -> TrainingState:
        """Put the state of a ``last.pt`` back into freshly built training objects."""
        try:
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            if members is not None:
                assert isinstance(model, StackedModel)
                members.load_state_dict(checkpoint["members"])
                for k, record in enumerate(members.records):
                    if record.stop_reason is not None:
                        model.stop_member(k, optimizer)
                for g, saved in zip(shuffles, checkpoint["rng"]["shuffle"], strict=True):
                    g.set_state(saved)
            else:
                shuffles[0].set_state(checkpoint["rng"]["shuffle"])
            if scheduler is not None:
                scheduler.load_state_dict(checkpoint["scheduler"])
            if checkpoint.get("grad_scaler"):
                scaler.load_state_dict(checkpoint["grad_scaler"])
            stopper.load_state_dict(checkpoint["early_stopping"])
            torch.set_rng_state(checkpoint["rng"]["torch"])
            return TrainingState.from_state_dict(checkpoint["training"], self.device)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise DataError(
                f"trainer.resume: the checkpoint does not fit this model and trainer "
                f"({type(error).__name__}: {str(error).splitlines()[0][:200]})."
            ) from None


def _mean(values: list[float | None]) -> float | None:
    """The mean of a measure over the members (None where it has none)."""
    known = [v for v in values if v is not None]
    return math.fsum(known) / len(known) if known else None
