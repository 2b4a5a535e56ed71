"""Training from Python, in a script or a notebook (docs/python.md)::

    import dlbasics
    result = dlbasics.train("model=mlp", "act=tanh", data=(X, y))
    result.metrics["test_acc"], result.run_dir, result.model.predict(X_new)

``train`` runs what ``scripts/train.py`` runs: the same overrides compose the same configs in
configs/ (through Hydra's compose API), checked the same way, trained by the same
``dlbasics.run.train``, into a run directory holding the same files (``.hydra/``,
``train.log``, ``metrics.json``, ``checkpoints/``, …). A mistake in the overrides raises
``ConfigError`` with the command line's one-line message; ``data=`` also takes what a Python
session holds: arrays ``(X, y)`` or a pandas DataFrame with ``target="column"``.
"""

import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from dlbasics.callbacks import Callback
from dlbasics.cli import describe_hydra_error
from dlbasics.config import register_configs, task_config, validate
from dlbasics.config_guard import harden_resolvers, refuse_code_in_arguments
from dlbasics.data.memory import HELD
from dlbasics.data.table import is_table
from dlbasics.errors import ConfigError
from dlbasics.inference import TrainedModel, load
from dlbasics.run import train as train_run

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
JOB_NAME = "train"  # scripts/train.py's: the run's log is train.log
# The formats of configs/hydra/job_logging/dlbasics.yaml: timed lines in train.log, plain ones
# on the console.
FILE_FORMAT = "[%(asctime)s] %(message)s"
CONSOLE_FORMAT = "%(message)s"

log = logging.getLogger("dlbasics")


@dataclass
class TrainResult:
    """A finished run: what ``dlbasics.train`` returns."""

    metrics: dict[str, Any]  # the run's metrics.json
    run_dir: Path  # the run directory

    @cached_property
    def model(self) -> TrainedModel:
        """The trained model, as ``dlbasics.load(run_dir)`` gives it (best.pt's weights, with
        the run's preprocessing): ``predict(x)``, ``predict_proba(x)``, ``.model``."""
        return load(self.run_dir)


def train(
    *overrides: str,
    data: Any = None,
    target: str | None = None,
    run_dir: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train one run, as ``scripts/train.py <overrides>`` does, and return its result.

    ``overrides``: the command line's, e.g. ``"model=dnn"``, ``"optim.lr=0.01"``.
    ``data``: ``"digits"`` (a data set's name, as ``data=digits``), arrays ``(X, y)`` (NumPy,
    torch or lists: data=arrays), or a pandas DataFrame (or a list of dicts, one per row)
    whose ``target`` column is predicted (data=dataframe, encoded as data=csv encodes a file).
    ``run_dir``: where the run is written; None: a new directory under outputs/, as the
    command line's (unique, also for two runs started in the same second).
    ``callbacks``: your own (dlbasics/callbacks.py, docs/callbacks.md), called in every fit.

    Raises ConfigError for a mistake in the overrides (before anything is written, as far as
    the config alone tells it) and DataError for data that cannot be used: as the command
    line, such a run directory keeps only .hydra/ and train.log."""
    overrides = [*overrides, *data_overrides(data, target, overrides)]
    refuse_code_in_arguments(overrides)  # what the command line refuses before Hydra reads it
    composed = compose_config(overrides)
    run_config = task_config(composed)
    try:
        cfg = validate(run_config)
    except OmegaConfBaseException as error:
        raise ConfigError(describe_hydra_error(error, overrides)) from None
    directory = make_run_dir(run_dir, composed, overrides)
    write_hydra_files(directory, composed, run_config)
    held = HELD.set(None if isinstance(data, str) else data)
    try:
        with run_log(directory / f"{JOB_NAME}.log"), torch_settings_kept():
            name = composed.hydra.job.override_dirname  # names its TensorBoard run, tb/<name>
            metrics = train_run(cfg, directory, name=name, callbacks=callbacks)
    finally:
        HELD.reset(held)
    return TrainResult(metrics, directory.resolve())


def data_overrides(data: Any, target: str | None, overrides: Sequence[str]) -> list[str]:
    """The overrides ``data=`` and ``target=`` stand for: ``data=NAME`` for a name,
    ``data=arrays`` for ``(X, y)``, ``data=dataframe data.target=…`` for a DataFrame."""
    if data is None:
        if target is not None:
            raise ConfigError(f"target={target!r} names a column of data=DataFrame; give one.")
        return []
    if any(override.split("=")[0].lstrip("+~") == "data" for override in overrides):
        raise ConfigError("data is chosen twice: by an override data=… and by data=; keep one.")
    if isinstance(data, str):
        return [f"data={data}"]
    if is_table(data):
        if target is None:
            raise ConfigError(
                "data=DataFrame needs target='column': the column to predict; the others are "
                "the features (data.drop=[…] leaves some out)."
            )
        return ["data=dataframe", f"data.target={quoted(target)}"]
    if target is not None:
        raise ConfigError(
            f"target={target!r} names a column of a DataFrame; with data=(X, y) y is the target."
        )
    if not (isinstance(data, tuple) and len(data) == 2):
        raise ConfigError(
            f"data={type(data).__name__} is not something dlbasics trains on: give a data set's "
            "name (data='iris'), arrays (X, y), or a pandas DataFrame with target='column'."
        )
    return ["data=arrays"]


def quoted(text: str) -> str:
    """``text`` as a quoted value of a Hydra override (any characters, quotes included)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def compose_config(overrides: list[str]) -> DictConfig:
    """The config Hydra composes from configs/ for ``overrides``, with its ``hydra`` node (the
    run directory's pattern, the job's name); ConfigError with the command line's message for
    a mistake."""
    register_configs()
    harden_resolvers()  # as every entry point: no interpolation makes a dict or a list
    try:
        with hydra_on_dlbasics_configs():
            return compose(config_name="config", overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(describe_hydra_error(error, overrides)) from None


@contextmanager
def hydra_on_dlbasics_configs() -> Iterator[None]:
    """Hydra's compose API set up on configs/ for the ``with`` block, leaving Hydra's global
    state as it was: a Hydra that a notebook had set up before (its own ``initialize()``) is
    set aside and put back afterwards."""
    global_hydra = GlobalHydra.instance()
    before = global_hydra.hydra if global_hydra.is_initialized() else None
    global_hydra.clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3", job_name=JOB_NAME):
            yield
    finally:
        if before is not None:
            GlobalHydra.instance().clear()
            GlobalHydra.instance().initialize(before)


def make_run_dir(run_dir: str | Path | None, composed: DictConfig, overrides: list[str]) -> Path:
    """The run directory, created: ``run_dir``, ``hydra.run.dir=…`` of the overrides, or a new
    directory by the command line's pattern (outputs/<date>/<time>), with ``-2``, ``-3``, …
    added when that one exists (another run started in the same second)."""
    if run_dir is not None or any(o.startswith("hydra.run.dir=") for o in overrides):
        directory = Path(run_dir if run_dir is not None else composed.hydra.run.dir)
        directory.mkdir(parents=True, exist_ok=True)
        return directory
    pattern = Path(composed.hydra.run.dir)  # ${now:…} resolved now
    pattern.parent.mkdir(parents=True, exist_ok=True)
    for number in range(1, 10_000):
        directory = pattern if number == 1 else pattern.with_name(f"{pattern.name}-{number}")
        try:
            directory.mkdir()  # atomic: of two runs, one creates it and the other goes on
            return directory
        except FileExistsError:
            continue
    raise FileExistsError(f"{pattern}: no free name for a new run directory")


def write_hydra_files(run_dir: Path, composed: DictConfig, task_config: DictConfig) -> None:
    """``.hydra/`` as Hydra writes it for a run of the command line: the config
    (config.yaml), Hydra's own (hydra.yaml) and the overrides (overrides.yaml)."""
    hydra = OmegaConf.masked_copy(composed, ["hydra"])
    if hydra.hydra.output_subdir is None:
        return
    with open_dict(hydra):
        hydra.hydra.runtime.output_dir = str(run_dir.resolve())
    where = run_dir / hydra.hydra.output_subdir
    where.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(task_config, where / "config.yaml")
    OmegaConf.save(hydra, where / "hydra.yaml")
    OmegaConf.save(hydra.hydra.overrides.task, where / "overrides.yaml")


@contextmanager
def run_log(path: Path) -> Iterator[None]:
    """The dlbasics logger's lines of the run in ``path`` (train.log), and on the screen where
    nothing shows them yet (a notebook, a script without logging set up). What was set up
    before (a notebook's handlers, the logger's level) stays as it was."""
    handlers: list[logging.Handler] = [logging.FileHandler(path, encoding="utf-8")]
    handlers[0].setFormatter(logging.Formatter(FILE_FORMAT))
    if not log.hasHandlers():  # nothing on the logger or above it prints its lines
        handlers.append(logging.StreamHandler(sys.stdout))
        handlers[1].setFormatter(logging.Formatter(CONSOLE_FORMAT))
    level = log.level
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    for handler in handlers:
        log.addHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            log.removeHandler(handler)
            handler.close()
        log.setLevel(level)


@contextmanager
def torch_settings_kept() -> Iterator[None]:
    """torch's thread count and deterministic mode as they were before the run (a run sets
    them for itself: trainer.threads, trainer.deterministic)."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
