"""One job of a sweep (Hydra multirun): train it and record what happened in ``job.json``.

A job that fails (a bad combination of overrides, a diverged loss, an exception) is recorded as
failed and the sweep goes on. How a failure is handed back depends on the sweeper: Hydra's basic
sweeper ends the whole sweep on the first job that raises, so there the job returns NaN; the
Optuna sweeper (1.3) crashes on a NaN objective but records a job that raises as a failed trial
and carries on (up to ``hydra.sweeper.max_failure_rate``), so there the job raises JobFailed.
An interrupted job (Ctrl-C) ends the sweep; ``--resume`` reruns it later.

``run_sweep_job`` is the task function's part; its steps (``reused_result``, ``start_job``,
``end_job``) are also what the stacked launcher (hydra/launcher=stacked) does around each job
of a stack it trains.
"""

import json
import logging
import math
import os
import shutil
import signal
import time
import traceback
from dataclasses import dataclass
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
from dlbasics.sweeps.resume import RESUME_ENV

log = logging.getLogger("dlbasics")

# What an earlier attempt of this job may have left behind. Removed before the job runs again:
# two event files in one tb/<overrides>/ would show as one tangled run in TensorBoard.
PREVIOUS_ATTEMPT = ("tb", "checkpoints", "metrics.json")
FINISHED = ("max_epochs", "early_stopping")  # stop reasons of a run that went to its end
RAISING_SWEEPERS = ("hydra_plugins.hydra_optuna_sweeper.",)  # see the module's docstring


class JobFailed(Exception):
    """A job of a sweep failed; already recorded in its job.json."""


@dataclass
class SweepJob:
    """One job of a sweep as its launcher placed it: its run directory, its overrides and
    what names it."""

    run_dir: Path
    overrides: list[str]  # the job's own command-line overrides (hydra.overrides.task)
    num: int  # Hydra's job number within the sweep
    run_name: str  # hydra.job.override_dirname: names its TensorBoard run, tb/<run_name>
    swept: list[str]  # the keys the sweep varies, first in the HParams tab
    raises: bool  # a failure raises JobFailed (Optuna's sweeper) instead of returning NaN

    @classmethod
    def from_hydra(cls, run_dir: Path) -> "SweepJob":
        """The job whose config Hydra has set (HydraConfig) to run in ``run_dir``."""
        hydra = HydraConfig.get()
        sweeper = str(hydra.sweeper.get("_target_", ""))
        return cls(
            run_dir=run_dir,
            overrides=list(hydra.overrides.task),
            num=hydra.job.num,
            run_name=hydra.job.override_dirname,
            swept=swept_keys(sweep_task(Path(hydra.sweep.dir)), hydra.sweeper.get("params")),
            raises=sweeper.startswith(RAISING_SWEEPERS),
        )

    @property
    def name(self) -> str:
        """How messages name the job: its number and overrides."""
        return f"job {self.num} ({' '.join(self.overrides) or 'no overrides'})"


def run_sweep_job(cfg: DictConfig, run_dir: Path) -> float:
    """Train one job of a sweep in ``run_dir`` and return its best monitored metric (what
    Optuna optimises). A failed job returns NaN, or raises JobFailed under Optuna."""
    job = SweepJob.from_hydra(run_dir)
    reused = reused_result(job)
    if reused is not None:
        return reused
    record = start_job(job)
    try:
        # One line per job, not one per epoch; its TensorBoard run named by its overrides.
        outcome = train(validate(cfg), run_dir, progress=False, name=job.run_name, swept=job.swept)
    except (Exception, KeyboardInterrupt) as error:  # recorded by end_job
        outcome = error
    return end_job(job, record, outcome)


def reused_result(job: SweepJob) -> float | None:
    """On ``--resume``, the stored result of a job an earlier run of the sweep completed
    (and a line saying it is skipped); otherwise None."""
    if os.environ.get(RESUME_ENV) != "1":
        return None
    reused = completed_result(job.run_dir, job.overrides)
    if reused is not None:
        log.info(f"{job.name}: completed in an earlier run of this sweep, skipped")
    return reused


def start_job(job: SweepJob) -> JobRecord:
    """What comes before a job trains: its first line on the console (its values of what the
    sweep varies), the previous attempt's files removed, and job.json saying it runs."""
    shown = job_values(job.overrides, job.swept) or job.overrides
    log.info(f"job {job.num}: {' '.join(shown) or 'no overrides'}")
    _remove_previous_attempt(job.run_dir)
    record = new_record(job.overrides, job.num, time.time())
    write_record(job.run_dir, record)
    return record


def end_job(job: SweepJob, record: JobRecord, outcome: dict[str, Any] | BaseException) -> float:
    """Record how a job ended — ``outcome`` is its metrics, or what it raised — and return
    its best monitored metric. A failed job returns NaN (raises JobFailed under Optuna); a
    job stopped by a signal raises SystemExit, which ends the sweep."""
    if isinstance(outcome, KeyboardInterrupt):
        _stop_sweep(job, record, "interrupted (SIGINT)", "SIGINT")
    if isinstance(outcome, UserError):
        return _fail(job, record, str(outcome))
    if isinstance(outcome, BaseException):  # a bug or a numerical failure: keep the traceback
        record.traceback = "".join(traceback.format_exception(outcome))
        return _fail(job, record, f"{type(outcome).__name__}: {outcome}")

    stop_reason = outcome["stop_reason"]
    if stop_reason == "diverged":
        return _fail(job, record, outcome["message"])
    if stop_reason not in FINISHED:  # stopped by a signal the trainer handled: not completed
        signal_name = outcome.get("stop_signal") or "SIGINT"
        _stop_sweep(job, record, f"stopped by {signal_name}", signal_name)
    _finish(job.run_dir, record, COMPLETED)
    best = outcome["best_monitor"]
    return math.nan if best is None else best


def completed_result(run_dir: Path, overrides: list[str]) -> float | None:
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


def _fail(job: SweepJob, record: JobRecord, message: str) -> float:
    _finish(job.run_dir, record, FAILED, message)
    log.error(f"{job.name} failed: {message}")
    if job.raises:
        raise JobFailed(message)
    return math.nan


def _stop_sweep(job: SweepJob, record: JobRecord, why: str, signal_name: str) -> NoReturn:
    """An interrupted job ends the sweep (the user asked for it), without a traceback, with
    the exit status a shell reports for that signal (130 for SIGINT, 143 for SIGTERM)."""
    _finish(job.run_dir, record, INTERRUPTED, why)
    log.error(f"{job.name}: {why}; run the same command with --resume to finish the sweep")
    raise SystemExit(128 + signal.Signals[signal_name])


def _finish(run_dir: Path, record: JobRecord, status: str, error: str | None = None) -> None:
    record.status = status
    record.error = error
    record.seconds = round(time.time() - record.started, 3)
    write_record(run_dir, record)
