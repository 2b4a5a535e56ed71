"""Checks that need the data or the model, made before the first step: a mistake found here
costs the user seconds, not a run that fails (or quietly does something else) later."""

import shutil
from pathlib import Path

import torch

from dlbasics.checkpoint import atomic_write
from dlbasics.errors import ConfigError, OutputError
from dlbasics.losses import has_accuracy
from dlbasics.trainer import TrainerConfig

# Bytes written per byte of parameters, at most: last.pt holds the weights, the best weights
# and up to two optimizer slots (Adam), best.pt the best weights; while a checkpoint is being
# replaced the old and the new file both exist.
CHECKPOINT_BYTES_PER_PARAM_BYTE = 2 * (4 + 1)
LOG_BYTES = 1 << 20  # metrics.json, train.log and TensorBoard events of a short run


def check_batch_size(cfg: TrainerConfig, n_train: int, data_name: str) -> None:
    """Refuse a chosen mini-batch larger than the training set: every step would quietly be a
    full-batch step. The preset's default is capped without fuss (a logic gate has 4 rows)."""
    chosen = cfg.batch_size != TrainerConfig.batch_size
    if cfg.mode == "minibatch" and chosen and cfg.batch_size > n_train:
        raise ConfigError(
            f"trainer.batch_size={cfg.batch_size} is larger than the {n_train} training samples "
            f"of data={data_name}; choose 1 to {n_train}, or trainer=batch to take the whole "
            "training set in every step."
        )


def check_monitor(cfg: TrainerConfig, task: str, data_name: str) -> None:
    """An accuracy cannot be monitored on a regression task: it has none."""
    monitor = cfg.early_stopping.monitor
    if task == "seq2seq" and monitor in ("train_acc", "val_acc"):
        raise ConfigError(
            f"trainer.early_stopping.monitor={monitor}: data={data_name} is a "
            f"sequence-to-sequence task; monitor {monitor.replace('_acc', '_exact')} (whole "
            f"sequences right) or {monitor.replace('_acc', '_token_acc')} instead."
        )
    if task == "regression" and monitor.endswith("_acc"):
        raise ConfigError(
            f"trainer.early_stopping.monitor={monitor}: data={data_name} is a regression task, "
            f"which has no accuracy; monitor {monitor.replace('_acc', '_loss')} instead."
        )


def check_reported_monitor(
    cfg: TrainerConfig, task: str, model_name: str, model_metrics: tuple[str, ...]
) -> None:
    """The monitor must be something the model reports: loss and accuracy (classification),
    plus the model's own measures (an RBM's pseudo-log-likelihood and free energy)."""
    reported = ["train_loss", "val_loss"]
    if has_accuracy(task):
        reported += ["train_acc", "val_acc"]
    reported += model_metrics
    monitor = cfg.early_stopping.monitor
    if monitor not in reported:
        raise ConfigError(
            f"trainer.early_stopping.monitor={monitor}: model={model_name} does not report it; "
            f"it reports {', '.join(reported)}."
        )


def check_resumable(cfg: TrainerConfig, what: str, resumable: bool) -> None:
    """``what`` (model=dbn, ensemble=boosting) trains in several fits when not ``resumable``."""
    if cfg.resume is not None and not resumable:
        raise ConfigError(
            f"trainer.resume={cfg.resume}: {what} trains in several fits (pre-training then "
            "fine-tuning, or one member after another), which cannot be resumed; run it again "
            "without trainer.resume."
        )


def check_precision(
    cfg: TrainerConfig, device: torch.device, model_name: str, learns_by_backprop: bool
) -> None:
    """Mixed precision needs hardware that computes in it, and a model trained by
    backpropagation (the others write their updates in float32 themselves)."""
    precision = cfg.precision
    if precision == "32":
        return
    where = f"trainer.precision={precision}"
    if not learns_by_backprop:
        raise ConfigError(
            f"{where}: model={model_name} learns (or pre-trains) by a rule of its own, not by "
            "backpropagation, and computes it in float32; use trainer.precision=32."
        )
    if precision == "16-mixed" and device.type != "cuda":
        raise ConfigError(
            f"{where} (float16 with a gradient scaler) needs a CUDA device, but this run is on "
            f"{device.type}; on a CPU use trainer.precision=bf16 (bfloat16) or 32."
        )
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(
            f"{where}: this GPU does not compute in bfloat16 (it needs an Ampere or newer "
            "GPU); use trainer.precision=16-mixed or 32."
        )


def check_output(run_dir: Path, param_bytes: int) -> None:
    """The run directory takes files, and its disk has room for the checkpoints and logs."""
    atomic_write(run_dir / ".write-test", b"dlbasics")  # raises OutputError when it cannot
    (run_dir / ".write-test").unlink()
    check_free_space(run_dir, CHECKPOINT_BYTES_PER_PARAM_BYTE * param_bytes + LOG_BYTES)


def check_free_space(directory: Path, needed: int) -> None:
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise OutputError(
            f"the disk of {directory} has {free / 2**20:.1f} MiB free, but this run's "
            f"checkpoints and logs need about {needed / 2**20:.1f} MiB; free some space or "
            "choose another run directory with hydra.run.dir=…"
        )
