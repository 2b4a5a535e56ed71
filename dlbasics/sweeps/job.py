"""One job of a sweep (Hydra multirun): train it and record what happened in ``job.json``.

A job that fails (a bad combination of overrides, a diverged loss, an exception) is recorded as
failed and the sweep goes on. How a failure is handed back depends on the sweeper: Hydra's basic
sweeper ends the whole sweep on the first job that raises, so there the job returns NaN; the
Optuna sweeper (1.3) crashes on a NaN objective but records a job that raises as a failed trial
and carries on (up to ``hydra.sweeper.max_failure_rate``), so there the job raises JobFailed.
An interrupted job (Ctrl-C) ends the sweep; ``--resume`` reruns it later.
"""

import json
import logging
import math
import os
import shutil
import signal
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from dlbasics.config import validate
from dlbasics.errors import UserError
from dlbasics.run import train
from dlbasics.sweeps.overrides import job_values, sweep_task, swept_keys
from dlbasics.sweeps.record import (
    COMPLETED,
    FAILED,
    INTERRUPTED,
    JobRecord,
    new_record,
    read_record,
    write_record,
)

log = logging.getLogger("dlbasics")

RESUME_ENV = "DLBASICS_RESUME"  # "1" in every job of a sweep run with --resume (resume.py)
# What an earlier attempt of this job may have left behind. Removed before the job runs again:
# two event files in one tb/<overrides>/ would show as one tangled run in TensorBoard.
PREVIOUS_ATTEMPT = ("tb", "checkpoints", "metrics.json")
FINISHED = ("max_epochs", "early_stopping")  # stop reasons of a run that went to its end
RAISING_SWEEPERS = ("hydra_plugins.hydra_optuna_sweeper.",)  # see the module's docstring


class JobFailed(Exception):
    """A job of a sweep failed; already recorded in its job.json."""


def run_sweep_job(cfg: DictConfig, run_dir: Path) -> float:
    """Train one job of a sweep in ``run_dir`` and return its best monitored metric (what
    Optuna optimises). A failed job returns NaN, or raises JobFailed under Optuna."""
    hydra = HydraConfig.get()
    overrides = list(hydra.overrides.task)
    name = f"job {hydra.job.num} ({' '.join(overrides) or 'no overrides'})"
    if os.environ.get(RESUME_ENV) == "1":
        reused = _completed_result(run_dir, overrides)
        if reused is not None:
            log.info(f"{name}: completed in an earlier run of this sweep, skipped")
            return reused

    swept = swept_keys(sweep_task(Path(hydra.sweep.dir)), hydra.sweeper.get("params"))
    # The job's first line on the console: its values of what the sweep varies.
    shown = job_values(overrides, swept) or overrides
    log.info(f"job {hydra.job.num}: {' '.join(shown) or 'no overrides'}")
    _remove_previous_attempt(run_dir)
    started = time.time()
    record = new_record(overrides, hydra.job.num, started)
    write_record(run_dir, record)
    try:
        metrics = _train(cfg, run_dir, hydra.job.override_dirname, swept)
    except KeyboardInterrupt:
        _stop_sweep(run_dir, record, started, name, "interrupted (SIGINT)", "SIGINT")
    except UserError as error:
        return _fail(run_dir, record, started, name, str(error))
    except Exception as error:  # a bug or a numerical failure: keep the traceback for the record
        record.traceback = traceback.format_exc()
        return _fail(run_dir, record, started, name, f"{type(error).__name__}: {error}")

    stop_reason = metrics["stop_reason"]
    if stop_reason == "diverged":
        return _fail(run_dir, record, started, name, metrics["message"])
    if stop_reason not in FINISHED:  # stopped by a signal the trainer handled: not completed
        signal_name = metrics.get("stop_signal") or "SIGINT"
        _stop_sweep(run_dir, record, started, name, f"stopped by {signal_name}", signal_name)
    _finish(run_dir, record, COMPLETED, started)
    best = metrics["best_monitor"]
    return math.nan if best is None else best


def _train(cfg: DictConfig, run_dir: Path, name: str, swept: list[str]) -> dict[str, Any]:
    """One line per job, not one per epoch; its TensorBoard run named by its overrides."""
    return train(validate(cfg), run_dir, progress=False, name=name, swept=swept)


def _completed_result(run_dir: Path, overrides: list[str]) -> float | None:
    """The stored result of this job if an earlier run of the sweep completed it."""
    record = read_record(run_dir)
    metrics_file = run_dir / "metrics.json"
    if record is None or record.status != COMPLETED or not metrics_file.is_file():
        return None
    if sorted(record.overrides) != sorted(overrides):  # the directory holds another job
        return None
    best = json.loads(metrics_file.read_text())["best_monitor"]
    return math.nan if best is None else best


def _remove_previous_attempt(run_dir: Path) -> None:
    for name in PREVIOUS_ATTEMPT:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _fail(run_dir: Path, record: JobRecord, started: float, name: str, message: str) -> float:
    _finish(run_dir, record, FAILED, started, message)
    log.error(f"{name} failed: {message}")
    sweeper = str(HydraConfig.get().sweeper.get("_target_", ""))
    if sweeper.startswith(RAISING_SWEEPERS):
        raise JobFailed(message)
    return math.nan


def _stop_sweep(
    run_dir: Path, record: JobRecord, started: float, name: str, why: str, signal_name: str
) -> NoReturn:
    """An interrupted job ends the sweep (the user asked for it), without a traceback, with
    the exit status a shell reports for that signal (130 for SIGINT, 143 for SIGTERM)."""
    _finish(run_dir, record, INTERRUPTED, started, why)
    log.error(f"{name}: {why}; run the same command with --resume to finish the sweep")
    raise SystemExit(128 + signal.Signals[signal_name])


def _finish(
    run_dir: Path, record: JobRecord, status: str, started: float, error: str | None = None
) -> None:
    record.status = status
    record.error = error
    record.seconds = round(time.time() - started, 3)
    write_record(run_dir, record)
