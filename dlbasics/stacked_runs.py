"""A sweep's jobs that differ only in what stacked members can differ in, trained as one
stacked computation (the `stacked` Hydra launcher, hydra_plugins/dlbasics_stacked_launcher).

Each job becomes a member of one StackedModel (models/stacked.py), fitted by the Trainer's one
loop; then each job's run directory is written as ``run.train`` writes it: metrics.json,
preprocessing.json, TensorBoard events in tb/<its overrides> under the usual tags, and
checkpoints/best.pt and last.pt of its own member, in the format of a run of its own (so
``dlbasics.load``, evaluate.py and ``trainer.resume`` read them as any run's). While the group
trains, its checkpoints are the group's, in a temporary directory. A signal (SIGINT, SIGTERM)
stops the group between two steps: the jobs still training are recorded interrupted, and the
sweep's ``--resume`` trains them again, as a group.
"""

import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import Tensor

from dlbasics.checkpoint import load_checkpoint, save_checkpoint, write_json
from dlbasics.config import Config, flatten
from dlbasics.data import DataSplits
from dlbasics.errors import UserError
from dlbasics.interrupt import StopOnSignal
from dlbasics.loggers import Logger, build_logger
from dlbasics.models import Model, build_model
from dlbasics.models.stacked import MemberObjective, MemberSettings, StackedModel, can_stack
from dlbasics.preprocessing import Preprocessing
from dlbasics.run import (
    FittedRun,
    hparam_metrics,
    hparams,
    load_data,
    model_objective,
    resolve_device,
    say,
    set_threads,
    shown_path,
    tensorboard_dir,
    test_line,
    train,
)
from dlbasics.run_lock import RunDirectoryLock
from dlbasics.trainer import FitResult, Trainer

log = logging.getLogger("dlbasics")

# The keys in which jobs of one stacked group may differ: each member has its own.
MEMBER_KEYS = (
    "seed",
    "data.seed",
    "trainer.seed",
    "optim.lr",
    "optim.weight_decay",
    "reg.l1",
    "reg.l2",
)
MEASURES = ("train_loss", "train_acc", "val_loss", "val_acc")  # a member's, each epoch
# Models that learn by a rule of their own or in several fits (perceptron, rbm, dbn) do not stack.
STACKABLE_MODELS = ("mlp", "dnn", "cnn", "rnn")


def group_key(cfg: Config) -> str | None:
    """Jobs whose keys are equal train together as one stacked group; None: this job cannot
    be stacked (it trains alone, as the basic launcher would train it)."""
    why = why_alone(cfg)
    if why is not None:
        return None
    kept = {k: v for k, v in flatten(asdict(cfg)).items() if k not in MEMBER_KEYS}
    return repr(sorted(kept.items()))


def why_alone(cfg: Config) -> str | None:
    """Why a job trains alone rather than stacked with others; None when it can stack."""
    trainer = cfg.trainer
    reasons = [
        (cfg.model.name not in STACKABLE_MODELS, f"model={cfg.model.name} does not stack"),
        (cfg.ensemble.name != "none", "an ensemble stacks its own members"),
        (trainer.precision == "16-mixed", "trainer.precision=16-mixed skips steps for all"),
        (trainer.on_nan == "skip", "trainer.on_nan=skip skips steps for all"),
        (cfg.schedule.name == "plateau", "schedule=plateau follows one run's monitor"),
        (trainer.resume is not None, "trainer.resume continues one run"),
        (trainer.compile, "trainer.compile compiles one model"),
        (bool(cfg.diag.per_epoch or cfg.diag.decision_boundary), "diag measures one model"),
    ]
    return next((why for refused, why in reasons if refused), None)


def train_group(
    jobs: Sequence[tuple[Config, Path, str]],
    swept: Sequence[str] = (),
    job_log: Callable[[int], AbstractContextManager] = lambda index: nullcontext(),
) -> list[dict[str, Any] | BaseException]:
    """Train ``jobs`` — (validated config, run directory, name) each, as ``run.train`` takes
    them, all of one ``group_key`` — and write each job's run directory as ``run.train``
    would. Returns each job's metrics, or the exception that job failed with (a UserError
    for a mistake in its config). Lines about job ``i`` are logged inside ``job_log(i)`` (the
    launcher points them at that job's train.log)."""
    results: list[dict[str, Any] | BaseException | None] = [None] * len(jobs)
    prepared: list[tuple[int, DataSplits, Preprocessing]] = []
    data_cache: dict[str, tuple[DataSplits, Preprocessing]] = {}
    for index, (cfg, _, _) in enumerate(jobs):
        with job_log(index):
            try:
                key = repr(asdict(cfg.data))  # the jobs' data once per data config
                if key not in data_cache:
                    data_cache[key] = load_data(cfg)
                data, preprocessing = data_cache[key]
                prepared.append((index, data, preprocessing))
            except UserError as error:
                results[index] = error
    if len(prepared) == 1:  # nothing to stack it with
        index = prepared[0][0]
        cfg, run_dir, name = jobs[index]
        with job_log(index):
            results[index] = _train_alone(cfg, run_dir, name, swept)
    elif prepared:
        trained = _train_stacked([jobs[i] for i, _, _ in prepared], prepared, swept, job_log)
        for (index, _, _), result in zip(prepared, trained, strict=True):
            results[index] = result
    return [r for r in results if r is not None]


def _train_alone(
    cfg: Config, run_dir: Path, name: str, swept: Sequence[str]
) -> dict[str, Any] | BaseException:
    try:
        return train(cfg, run_dir, progress=False, name=name, swept=swept)
    except Exception as error:  # noqa: BLE001 - handed back as this job's result
        return error


def _train_stacked(
    jobs: Sequence[tuple[Config, Path, str]],
    prepared: Sequence[tuple[int, DataSplits, Preprocessing]],
    swept: Sequence[str],
    job_log: Callable[[int], AbstractContextManager],
) -> list[dict[str, Any]]:
    """The jobs as members of one StackedModel, fitted once; each job's run directory."""
    first = jobs[0][0]
    device = resolve_device(first.trainer.device)
    datas = [data for _, data, _ in prepared]
    own_data = any(data is not datas[0] for data in datas)  # data.seed differs: one split each
    data = _stack_splits(datas) if own_data else datas[0]
    spec = datas[0].spec
    members: list[Model] = []
    for cfg, _, _ in jobs:
        torch.manual_seed(cfg.trainer.seed)  # as run.train initialises its model
        members.append(build_model(cfg, spec))
    settings = [
        MemberSettings(
            cfg.trainer.seed, cfg.optim.lr, cfg.optim.weight_decay, cfg.reg.l1, cfg.reg.l2
        )
        for cfg, _, _ in jobs
    ]
    if not can_stack(members[0]):
        raise UserError(f"model={first.model.name} cannot be trained stacked")
    stacked = StackedModel(members, settings, own_data=own_data)
    objective = model_objective(first, members[0], spec)
    n_params = sum(p.numel() for p in members[0].parameters())
    threads = set_threads(first.trainer.threads, n_params * len(members), device, stacked=True)
    configs = [OmegaConf.to_yaml(asdict(cfg)) for cfg, _, _ in jobs]
    with ExitStack() as stack:
        interrupt = stack.enter_context(StopOnSignal())  # SIGINT/SIGTERM: stop between steps
        for _, run_dir, _ in jobs:  # no other process may write these directories meanwhile
            stack.enter_context(RunDirectoryLock(run_dir))
        for (_, _, preprocessing), (_, run_dir, _) in zip(prepared, jobs, strict=True):
            preprocessing.save(run_dir)
        loggers = [
            build_logger(cfg.logger.name, tensorboard_dir(run_dir, name))
            for cfg, run_dir, name in jobs
        ]
        group_dir = Path(tempfile.mkdtemp(prefix="dlbasics-stacked-"))
        stack.callback(shutil.rmtree, group_dir, ignore_errors=True)
        for logger in loggers:
            stack.callback(logger.close)
        for position, (index, _, _) in enumerate(prepared):
            with job_log(index):
                say(
                    f"model={first.model.name} ({n_params:,} parameters), stacked with "
                    f"{len(jobs) - 1} other jobs of the sweep (member {position}): "
                    f"trainer={first.trainer.mode} device={device} threads={threads}"
                )
        trainer = Trainer(
            first.trainer,
            first.optim,
            first.schedule,
            device,
            logger=MemberLoggers(loggers),
            checkpoint_dir=group_dir if first.trainer.checkpoints else None,
            config_yaml=configs[0],
            interrupt=interrupt,
        )
        fit = trainer.fit(stacked, data, MemberObjective(objective, settings))
        assert fit.members is not None
        last = load_checkpoint(group_dir / "last.pt") if first.trainer.checkpoints else None
        results = []
        for k, (cfg, run_dir, _) in enumerate(jobs):
            index, member_data, preprocessing = prepared[k]
            member, result = members[k], fit.members[k]
            member_fit = FitResult(
                epochs_run=result["epochs_run"],
                steps=result["steps"],
                stop_reason=result["stop_reason"],
                best_epoch=result["best_epoch"],
                best_monitor=result["best_monitor"],
                best_val_loss=result["best_val_loss"],
                fit_seconds=fit.fit_seconds / len(jobs),  # its share of the group's fit
                last={key: result.get(key) for key in MEASURES},
                message=result["message"],
                stop_signal=fit.stop_signal if result["stop_reason"] == "interrupted" else None,
            )
            metrics = FittedRun(
                cfg, member_fit, member, member_data, objective, preprocessing, n_params, device,
                threads, 1,
            ).metrics(trainer)  # fmt: skip
            metrics["stacked_with"] = len(jobs)  # jobs trained as one computation with it
            write_json(metrics, run_dir / "metrics.json")
            if last is not None:
                place = MemberPlace(k, *stacked.group_of(k), len(stacked.groups), len(jobs))
                _write_member_checkpoints(last, place, configs[k], run_dir / "checkpoints")
            loggers[k].log_hparams(hparams(cfg, first=swept), hparam_metrics(metrics))
            with job_log(index):
                say(test_line(metrics, f"the group's fit {fit.fit_seconds:.1f}s"))
                log.info(f"run directory: {shown_path(run_dir)}")
            results.append(metrics)
    return results


class MemberLoggers:
    """The Trainer's logger for a stacked group: each member's tags, ``member/<k>/…``, go to
    job k's own TensorBoard run under their usual names (loss/train, …); the group's means
    are no job's and are left out."""

    def __init__(self, loggers: Sequence[Logger]):
        self.loggers = list(loggers)

    def log_scalars(self, scalars: dict[str, float], step: int) -> None:
        routed: list[dict[str, float]] = [{} for _ in self.loggers]
        for tag, value in scalars.items():
            head, _, rest = tag.partition("/")
            if head == "member":
                k, _, name = rest.partition("/")
                routed[int(k)][name] = value
        for logger, scalars_k in zip(self.loggers, routed, strict=True):
            if scalars_k:
                logger.log_scalars(scalars_k, step)

    def log_images(self, images: dict[str, Tensor], step: int) -> None:
        pass  # stacked models draw no images (those that do, RBMs, do not stack)

    def log_histograms(self, values: dict[str, Tensor], step: int) -> None:
        pass

    def log_figure(self, tag: str, figure: Any, step: int) -> None:
        pass

    def log_text(self, tag: str, text: str, step: int) -> None:
        pass  # stacked models write no text (seq2seq models do not stack)

    def log_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        pass  # each job's, by train_group

    def close(self) -> None:
        pass  # each job's, by train_group


def _stack_splits(datas: Sequence[DataSplits]) -> DataSplits:
    """One split per member, stacked: tensors (K, n, …)."""
    stacked = {
        name: torch.stack([getattr(d, name) for d in datas])
        for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
    }
    return replace(datas[0], **stacked)


@dataclass(frozen=True)
class MemberPlace:
    """Where member ``k`` of a stacked group's ``size`` is in its optimizer: row ``row`` of
    the stacked tensors of parameter group ``group`` (of ``groups``)."""

    k: int
    group: int
    row: int
    groups: int
    size: int


def _write_member_checkpoints(
    group: dict[str, Any], place: MemberPlace, config_yaml: str, directory: Path
) -> None:
    """Job k's best.pt and last.pt from the group's last.pt: its member's weights, optimizer
    state, schedule, shuffle and early stopping, as a run of its own writes them."""
    k = place.k
    prefix = f"members.{k}."
    model = {key[len(prefix) :]: v for key, v in group["model"].items() if key.startswith(prefix)}
    record = group["members"][k]
    common = {"config": config_yaml, "monitor": group["monitor"]}
    stopper = record["early_stopping"]
    if record["best_model"] is not None:
        save_checkpoint(
            {
                **common,
                "epoch": stopper["best_epoch"],
                "value": stopper["best"],
                "model": record["best_model"],
            },
            directory / "best.pt",
        )
    training = dict(group["training"])
    training.update(
        epochs_done=record["epochs_run"],
        steps=record["steps"],
        best_model=record["best_model"],
        best_val_loss=record["best_val_loss"],
        first_loss=record["first_loss"],
        metrics=record["metrics"],
        fit_seconds=training["fit_seconds"] / place.size,
        epoch_in_progress=None,
    )
    save_checkpoint(
        {
            **common,
            "epoch": record["epochs_run"],
            "steps": record["steps"],
            "stop_reason": record["stop_reason"] or group["stop_reason"],
            "model": model,
            "optimizer": _member_optimizer(group["optimizer"], place, record["steps"]),
            "scheduler": _member_scheduler(group["scheduler"], place),
            "grad_scaler": group["grad_scaler"],
            "early_stopping": stopper,
            "rng": {"torch": group["rng"]["torch"], "shuffle": group["rng"]["shuffle"][k]},
            "training": training,
        },
        directory / "last.pt",
    )


def _member_optimizer(state: dict[str, Any], place: MemberPlace, steps: int) -> dict[str, Any]:
    """Member k's part of a stacked optimizer's state dict, numbered as the optimizer of a
    model of its own numbers it: its parameter group, and its row of every stacked state
    tensor. ``step`` (Adam's, …) counts the steps it took itself before it stopped."""
    group = dict(state["param_groups"][place.group])
    params = group["params"]
    group["params"] = list(range(len(params)))

    def own(key: str, value: Any) -> Any:
        if not torch.is_tensor(value) or value.ndim == 0:
            return torch.full_like(value, steps) if key == "step" else value
        return value[place.row].clone()

    return {
        "state": {
            i: {key: own(key, value) for key, value in state["state"][p].items()}
            for i, p in enumerate(params)
            if p in state["state"]
        },
        "param_groups": [group],
    }


def _member_scheduler(state: dict[str, Any] | None, place: MemberPlace) -> dict[str, Any] | None:
    """Member k's part of a schedule's state: its group's entry of each per-group list."""
    if state is None:
        return None
    own = dict(state)
    for key, value in state.items():
        if isinstance(value, list) and len(value) == place.groups:  # one entry per group
            own[key] = [value[place.group]]
    return own
