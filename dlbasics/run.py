"""One training run, from a validated config to metrics.json: what `scripts/train.py` does."""

import logging
import os
import platform
import signal
import textwrap
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from dlbasics.boundary import check_can_draw, write_decision_boundary
from dlbasics.callbacks import Callback
from dlbasics.checkpoint import write_json
from dlbasics.config import Config, flatten
from dlbasics.cores import free_cores
from dlbasics.data import DataSpec, DataSplits, build_data
from dlbasics.diagnostics import Diagnostics
from dlbasics.distributed import SingleProcess, check_batch_fits_ranks, join_ranks
from dlbasics.ensembles import build_ensemble, ensemble_metrics, fit_ensemble, save_ensemble
from dlbasics.errors import ConfigError
from dlbasics.interrupt import StopOnSignal
from dlbasics.loggers import build_logger, run_name
from dlbasics.losses import Objective, build_objective
from dlbasics.models import Model, build_model
from dlbasics.models.base import OPTIONAL_GROUPS
from dlbasics.phases import pretraining, run_phases
from dlbasics.preflight import (
    check_batch_size,
    check_monitor,
    check_output,
    check_precision,
    check_reported_monitor,
    check_resumable,
)
from dlbasics.preprocessing import Preprocessing
from dlbasics.progress import WIDTH
from dlbasics.resume import load_resume_checkpoint
from dlbasics.run_lock import RunDirectoryLock
from dlbasics.threshold import has_threshold, threshold_metrics
from dlbasics.trainer import FitResult, Trainer, TrainerConfig

log = logging.getLogger("dlbasics")

# Below this many parameters a model's kernels are too small to share among threads: on a
# 2-core machine the digits MLP runs several times faster on one thread than on two.
SMALL_MODEL_PARAMS = 1_000_000
# Stacked members' batched products split among threads member by member, so they pay from a
# smaller size, counted over the members together (docs/speed.md, "Stacked training").
SMALL_STACK_PARAMS = 200_000
# What "every core" is: torch's own thread count before any run lowered it in this process
# (a sweep's jobs share one process under some launchers).
ALL_THREADS = torch.get_num_threads()


def train(
    cfg: Config,
    run_dir: Path,
    progress: bool = True,
    name: str = "",
    swept: Sequence[str] = (),
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Build data, model and objective from ``cfg``, fit, test, and write the run directory:
    ``metrics.json``, ``tb/`` (TensorBoard) and ``checkpoints/``. Returns the metrics.

    ``name`` (the run's overrides, e.g. ``act=tanh,model=dnn``) names its TensorBoard run,
    ``tb/<name>``, and titles its pictures; without one the events go in ``tb/`` itself.
    ``swept`` are the keys a sweep varies, the first columns of the HParams tab.
    ``callbacks`` are the user's own (dlbasics/callbacks.py), called in every fit.

    Under torchrun every rank calls this; rank 0 alone writes and reports."""
    parallel = join_ranks(resolve_device(cfg.trainer.device), cfg.trainer)
    try:
        # Only rank 0 writes; no second process may write the same directory meanwhile.
        with RunDirectoryLock(run_dir) if parallel.is_main else nullcontext():
            return _train(cfg, run_dir, progress, parallel, name, swept, callbacks)
    finally:
        parallel.close()


def _train(
    cfg: Config,
    run_dir: Path,
    progress: bool,
    parallel: SingleProcess,
    name: str,
    swept: Sequence[str],
    callbacks: Sequence[Callback],
) -> dict[str, Any]:
    """The stages of a run: data → model + objective → fit → the run directory. Each stage's
    checks come with it, and all of them before anything is written."""
    device, main = parallel.device, parallel.is_main
    if cfg.trainer.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    data, preprocessing = load_data(cfg, parallel.world_size)
    model, data, objective = build_model_and_objective(cfg, data, device, parallel.world_size)
    n_params = sum(p.numel() for p in model.parameters())
    if main:
        check_output(run_dir, sum(p.numel() * p.element_size() for p in model.parameters()))
    config_yaml = OmegaConf.to_yaml(asdict(cfg))  # (not OmegaConf.structured: twice as slow)
    resume = load_resume_checkpoint(cfg, config_yaml)
    # boosting fits its members one after another; the other ensembles, as one stack
    ensemble = cfg.ensemble.name != "none"
    threads = set_threads(
        cfg.trainer.threads, n_params, device, ensemble and cfg.ensemble.name != "boosting"
    )
    if device.type == "cuda" and not cfg.trainer.deterministic and has_convolutions(model):
        # Batches keep their shape, so timing cuDNN's algorithms once per shape pays off.
        torch.backends.cudnn.benchmark = True

    # --- from here on the run directory is written ----------------------------------------
    if main:  # what new inputs need to look like the training data (scripts/predict.py)
        preprocessing.save(run_dir)
        if cfg.model.name == "perceptron" and cfg.optim.name != "sgd":
            log.info(
                "note: the perceptron learning rule is w += lr·(t−y)·x under optim=sgd; "
                f"optim={cfg.optim.name} rescales those updates."
            )
        say(*run_summary(cfg, data, objective, n_params, device, threads, parallel.world_size))
    logger = build_logger(cfg.logger.name if main else "none", tensorboard_dir(run_dir, name))
    # rank 0 alone writes checkpoints; none at all with trainer.checkpoints=false
    checkpoint_dir = run_dir / "checkpoints" if main and cfg.trainer.checkpoints else None
    try:
        with StopOnSignal() as interrupt:  # SIGINT/SIGTERM: save and stop between two steps
            trainer = Trainer(
                cfg.trainer,
                cfg.optim,
                cfg.schedule,
                device,
                logger=logger,
                checkpoint_dir=checkpoint_dir,
                progress=progress and main,
                config_yaml=config_yaml,
                interrupt=interrupt,
                parallel=parallel,
                # rank 0 alone measures and writes (see diagnostics.py)
                diagnostics=Diagnostics(cfg.diag) if main and cfg.diag.per_epoch else None,
                callbacks=callbacks,
            )
            # Fits before the run's own one (a DBN's pre-training), each through the Trainer.
            pretrained = run_phases(pretraining(model, data, cfg.trainer, device), trainer)
            stopped_in = None
            if pretrained and pretrained[-1].stop_reason in ("interrupted", "diverged"):
                fit = pretrained[-1]  # the run ends with that fit
                stopped_in = fit.phase
                fit = replace(fit, last={}, best_epoch=0, best_monitor=None, best_val_loss=None)
            elif ensemble:
                fitted = fit_ensemble(model, data, objective, trainer, cfg, resume=resume)
                fit = fitted.fit
            else:
                fit = trainer.fit(model, data, objective, resume=resume)
        fitted_run = FittedRun(
            cfg, fit, model, data, objective, preprocessing, n_params, device, threads,
            parallel.world_size,
        )  # fmt: skip
        if stopped_in:  # the model itself never trained: it has nothing to report
            metrics = fitted_run.metrics(None, stopped_in=stopped_in)
        else:
            metrics = fitted_run.metrics(trainer)
            metrics.update(model.final_metrics(data))  # the model's own (an RBM's completion)
        if pretrained:  # each layer's fit: its last epoch's measures (reconstruction, PLL, …)
            metrics["pretraining"] = [
                {
                    "epochs_run": p.epochs_run,
                    "steps": p.steps,
                    "stop_reason": p.stop_reason,
                    "fit_seconds": round(p.fit_seconds, 4),
                    **p.last,
                }
                for p in pretrained
            ]
        if ensemble:  # each member's test and fit, and what the kind reports (oob_acc, alphas)
            metrics.update(ensemble_metrics(model, fitted, data, trainer, objective))
            if checkpoint_dir and not model.resumable:  # several fits: written once, at the end
                save_ensemble(model, checkpoint_dir, config_yaml, cfg.trainer.early_stopping)
        if has_threshold(data) and not stopped_in:  # where a one-feature classifier switches
            rule = getattr(cfg.data, "rule_cm", None)  # the oysters' hand-written rule
            metrics.update(threshold_metrics(model, data, objective, rule))
        if main and cfg.diag.decision_boundary:
            act = f" act={cfg.act.name}" if cfg.act else ""
            title = f"model={cfg.model.name}{act} data={data.spec.name}"
            if name:  # what this run changed, e.g. one job of a sweep among the others
                changed = textwrap.wrap(name.replace(",", " "), 60, max_lines=3, placeholder=" …")
                title = "\n".join([*changed, title])
            write_decision_boundary(model, data, objective, run_dir, logger, fit.epochs_run, title)
        if main:
            write_json(metrics, run_dir / "metrics.json")
        logger.log_hparams(hparams(cfg, first=swept), hparam_metrics(metrics))
    finally:
        logger.close()

    if parallel.world_size > 1:  # each rank says where it stopped (all must stop together)
        stopped = f"{fit.stop_reason} after {fit.epochs_run} epochs, {fit.steps} steps"
        log.info(f"rank {parallel.rank}: {stopped}")
    if not main:  # rank 0 reports the run
        return metrics
    if fit.message:
        log.warning(fit.message)
    if fit.stop_reason == "interrupted" and model.resumable and cfg.trainer.checkpoints:
        say(
            f"interrupted by {metrics['stop_signal']}: checkpoints/last.pt holds the state; "
            f"continue with the same overrides and trainer.resume={run_dir}"
        )
    if stopped_in:
        say(f"{fit.stop_reason} in {stopped_in}, after {fit.epochs_run} epochs of it: no test")
    else:
        say(test_line(metrics, f"fit {fit.fit_seconds:.1f}s"))
    log.info(f"run directory: {shown_path(run_dir)}")  # whole, to copy
    return metrics


# --- the stages of a run: data, and model + objective, each with its checks ---------------------


def load_data(cfg: Config, world_size: int = 1) -> tuple[DataSplits, Preprocessing]:
    """The splits ``cfg.data`` names and their preprocessing (fitted on the training split);
    refuses trainer keys this data cannot take (batch size, monitor, ranks, drawing)."""
    data = build_data(cfg.data)
    check_batch_size(cfg.trainer, len(data.x_train), data.spec.name)
    check_monitor(cfg.trainer, data.spec.task, data.spec.name)
    check_batch_fits_ranks(cfg.trainer, len(data.x_train), world_size)
    if cfg.diag.decision_boundary:
        check_can_draw(data.spec)
    return data, Preprocessing.from_splits(data)


def build_model_and_objective(
    cfg: Config, data: DataSplits, device: torch.device, world_size: int = 1
) -> tuple[Model, DataSplits, Objective]:
    """The model ``cfg`` names (or the ensemble of them), initialised from trainer.seed, the
    splits it fits (an RBM's: its inputs) and its objective; refuses trainer keys the model
    cannot take (precision, monitor, resume)."""
    torch.manual_seed(cfg.trainer.seed)  # after the data, so initialisation is its own seed
    ensemble = cfg.ensemble.name != "none"  # K members combined (ensembles.py)
    if ensemble and world_size > 1:
        raise ConfigError(
            f"ensemble={cfg.ensemble.name} under torchrun: an ensemble trains its members as "
            "one computation in one process; run it without torchrun."
        )
    model = build_ensemble(cfg, data.spec) if ensemble else build_model(cfg, data.spec)
    check_precision(cfg.trainer, device, cfg.model.name, learns_by_backprop(model))
    data = model.prepare(data)  # what it fits: the data set, or (an RBM) its inputs
    check_reported_monitor(cfg.trainer, data.spec.task, cfg.model.name, model.epoch_metric_names)
    several_fits = f"ensemble={cfg.ensemble.name}" if ensemble else f"model={cfg.model.name}"
    check_resumable(cfg.trainer, several_fits, model.resumable)
    return model, data, model_objective(cfg, model, data.spec)


def run_summary(
    cfg: Config,
    data: DataSplits,
    objective: Objective,
    n_params: int,
    device: torch.device,
    threads: int,
    world_size: int,
) -> list[str]:
    """The lines a run starts with: the model, the data, the objective, the trainer."""
    ranks = f" ranks={world_size}" if world_size > 1 else ""
    return [
        f"model={cfg.model.name} ({n_params:,} parameters)",
        f"data={data.spec.name} ({data.spec.task}): {len(data.x_train)} train, "
        f"{len(data.x_val)} val, {len(data.x_test)} test samples",
        f"loss={objective.loss} output={objective.output_act} optim={cfg.optim.name} "
        f"lr={cfg.optim.lr:g} schedule={cfg.schedule.name}",
        f"trainer={cfg.trainer.mode} device={device} threads={threads}{ranks}"
        f"{speed_settings(cfg.trainer)}",
    ]


# --- the last stage: the fitted model measured, for metrics.json --------------------------------


@dataclass
class FittedRun:
    """A fit and what it was fitted on: what metrics.json is made of (a stacked job's: its
    own member's, with the group's fit)."""

    cfg: Config
    fit: FitResult
    model: Model
    data: DataSplits
    objective: Objective
    preprocessing: Preprocessing
    n_params: int
    device: torch.device
    threads: int
    world_size: int

    def metrics(self, trainer: Trainer | None, stopped_in: str | None = None) -> dict[str, Any]:
        """metrics.json: the fit, and the fitted model on the test split and, without
        dropout, on the training and validation splits (the gap between the two is what
        overfitting leaves). ``trainer`` None: a fit stopped in a phase before the model's
        own (``stopped_in``): nothing to measure."""
        data, model, objective = self.data, self.model, self.objective
        none = (None, None)
        test = final_train = final_val = none
        if trainer is not None:
            test = trainer.evaluate(model, data.x_test, data.y_test, objective)
            final_train = trainer.evaluate(model, data.x_train, data.y_train, objective)
            final_val = trainer.evaluate(model, data.x_val, data.y_val, objective)
        return run_metrics(
            self.cfg, self.fit, test, final_train, final_val, model.epoch_metric_names,
            objective, self.preprocessing, self.n_params, len(data.x_train), data.spec.task,
            self.device, self.threads, self.world_size, stopped_in,
        )  # fmt: skip


def test_line(metrics: dict[str, Any], fit_seconds: str) -> str:
    """The line a run ends with: its test score, why it stopped and its best epoch."""
    test_loss, test_acc = metrics["test_loss"], metrics["test_acc"]
    shown = f"test_loss {test_loss:.4f}" if test_acc is None else f"test_acc {test_acc:.4f}"
    if metrics.get("test_exact") is not None:  # seq2seq: whole sequences right
        shown += f" test_exact {metrics['test_exact']:.4f}"
    return (
        f"{shown} ({metrics['stop_reason']} after {metrics['epochs_run']} epochs, best epoch "
        f"{metrics['best_epoch']}, {fit_seconds})"
    )


def run_metrics(
    cfg: Config,
    fit: FitResult,
    test: tuple[float | None, float | None],
    final_train: tuple[float | None, float | None],
    final_val: tuple[float | None, float | None],
    epoch_metric_names: Sequence[str],
    objective: Objective,
    preprocessing: Preprocessing,
    n_params: int,
    n_train: int,
    task: str,
    device: torch.device,
    threads: int,
    world_size: int,
    stopped_in: str | None = None,
) -> dict[str, Any]:
    """metrics.json of a run: its test, its fit and where it ran (a fit stopped in a phase
    before the model's own, ``stopped_in``, has no test)."""
    test_loss, test_acc = test
    return {
        "test_loss": test_loss,
        "test_acc": test_acc,
        "train_loss": fit.last.get("train_loss"),
        "train_acc": fit.last.get("train_acc"),
        "val_loss": fit.last.get("val_loss"),
        "val_acc": fit.last.get("val_acc"),
        **{name: fit.last.get(name) for name in epoch_metric_names},
        "final_train_loss": final_train[0],
        "final_train_acc": final_train[1],
        "final_val_loss": final_val[0],
        "final_val_acc": final_val[1],
        "best_epoch": fit.best_epoch,
        "best_val_loss": fit.best_val_loss,
        "monitor": cfg.trainer.early_stopping.monitor,
        "best_monitor": fit.best_monitor,
        "epochs_run": fit.epochs_run,
        "steps": fit.steps,
        "stop_reason": fit.stop_reason,
        "stopped_in": stopped_in,  # a fit before the model's own (pre-training layer 1)
        "stop_signal": signal.Signals(fit.stop_signal).name if fit.stop_signal else None,
        "message": fit.message,  # what went wrong and what to try (a diverged run)
        "skipped_steps": fit.skipped_steps,
        "resumed_from": cfg.trainer.resume,
        "fit_seconds": round(fit.fit_seconds, 4),
        "device": str(device),
        "precision": cfg.trainer.precision,
        "compiled": cfg.trainer.compile,
        "threads": threads,
        "world_size": world_size,  # processes that trained it (torchrun)
        "n_params": n_params,
        "n_train": n_train,
        # the data set (data=…): arrays or dataframe for what a Python session held
        "data": cfg.data.name,
        "task": task,
        "classes": list(preprocessing.classes or []) or None,  # as the data names them
        "loss": objective.loss,  # the loss function (loss=auto resolved): what losses compare
        "torch": torch.__version__,
        "host": platform.node(),
    }


def model_objective(cfg: Config, model: Model, spec: DataSpec) -> Objective:
    """The objective ``model`` is fitted on, for data of ``spec`` as the model fits it (after
    ``prepare``: an RBM's reconstruction task)."""
    output_act = cfg.model.output_act
    if output_act == "auto" and model.output_act:
        output_act = model.output_act
    return build_objective(cfg.loss.name, output_act, spec, cfg.reg, cfg.model.name)


def tensorboard_dir(run_dir: Path, name: str) -> Path:
    """Where a run's TensorBoard events go: tb/<its overrides> (a sweep's job), or tb/."""
    return run_dir / "tb" / run_name(name) if name else run_dir / "tb"


def say(*lines: str) -> None:
    """Log each line, broken at spaces to fit an 80-column terminal (a word longer than a
    line, a path, is kept whole)."""
    for line in lines:
        parts = textwrap.wrap(
            line, WIDTH, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False
        )
        for part in parts:
            log.info(part)


def shown_path(path: Path) -> Path:
    """``path`` relative to the current directory when it is under it (shorter to read)."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "trainer.device=cuda, but PyTorch sees no CUDA device here; "
            "use trainer.device=auto or cpu."
        )
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def learns_by_backprop(model: Model) -> bool:
    """Whether every fit of ``model`` backpropagates a loss (a DBN pre-trains RBMs, which
    learn by contrastive divergence)."""
    return all(m.learns_by_backprop for m in model.modules() if isinstance(m, Model))


def has_convolutions(model: torch.nn.Module) -> bool:
    convolutions = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    return any(isinstance(m, convolutions) for m in model.modules())


def speed_settings(cfg: TrainerConfig) -> str:
    """The settings that change speed rather than results, for the first log line, and those
    that cut a run short (debug=fast)."""
    precision = f" precision={cfg.precision}" if cfg.precision != "32" else ""
    limit = f" limit_batches={cfg.limit_batches}" if cfg.limit_batches is not None else ""
    checkpoints = "" if cfg.checkpoints else " checkpoints=false"
    return precision + (" compile=true" if cfg.compile else "") + limit + checkpoints


def set_threads(
    threads: int | str, n_params: int, device: torch.device, stacked: bool = False
) -> int:
    """``trainer.threads``: auto gives a small model one thread and a large one every core
    that no other process is busy on when it starts (cores.py). ``stacked`` members (a
    StackedModel) count by their parameters together, against a smaller size
    (SMALL_STACK_PARAMS)."""
    if threads == "auto":
        small = SMALL_STACK_PARAMS if stacked else SMALL_MODEL_PARAMS
        large = device.type != "cpu" or n_params >= small
        threads = free_cores(ALL_THREADS) if large else 1
    torch.set_num_threads(int(threads))
    return int(threads)


# Settings that change how a run is carried out or watched, not what it learns: left out of the
# HParams tab, where every key is a column.
NOT_HPARAMS = (
    "trainer.threads",
    "trainer.resume",
    "trainer.distributed_timeout",
    "trainer.checkpoint_every",
    "trainer.checkpoints",
    "logger.",
    "diag.",
)


def hparam_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The results the HParams tab shows beside a run's hyper-parameters."""
    return {
        f"final/{key}": metrics[key]
        for key in ("test_loss", "test_acc", "best_val_loss", "epochs_run")
        if metrics[key] is not None
    }


def hparams(cfg: Config, first: Sequence[str] = ()) -> dict[str, Any]:
    """The config as flat ``group.key`` → value pairs, for TensorBoard's HParams tab: the keys
    of the chosen components only (no group the model leaves out, nothing in NOT_HPARAMS),
    ``first`` (a sweep's swept keys) first. Booleans, numbers and strings stay as they are;
    lists and None become their text."""
    groups = asdict(cfg)
    for group in OPTIONAL_GROUPS:  # act, reg: not part of a model that does not read them
        if groups[group] is None or group not in type(cfg.model).groups:
            del groups[group]
    flat = {
        key: value if isinstance(value, (bool, int, float, str)) else str(value)
        for key, value in flatten(groups).items()
        if not key.startswith(NOT_HPARAMS)
    }
    # a swept group (act=tanh) is its name's column (act.name)
    chosen = [key if key in flat else f"{key}.name" for key in first]
    ordered = [key for key in dict.fromkeys(chosen) if key in flat]
    return {key: flat[key] for key in [*ordered, *(k for k in flat if k not in ordered)]}
