"""The jobs of a sweep read back from their run directories, and seed groups aggregated.

Everything comes from files each job writes as it goes (``.hydra/``, ``job.json``,
``metrics.json``), so a sweep can be read while it runs, after it failed in part, or after it
was killed.
"""

import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from dlbasics.early_stopping import EarlyStoppingConfig
from dlbasics.errors import ConfigError
from dlbasics.sweeps.record import COMPLETED, FAILED, UNFINISHED, live_status, read_record

SEED_KEYS = ("seed", "data.seed", "trainer.seed")  # overrides that only change the seed
DEFAULT_MONITOR = EarlyStoppingConfig().monitor  # val_loss


@dataclass
class JobResult:
    name: str  # the run directory relative to the sweep directory ("0", "1", …)
    run_dir: Path
    overrides: dict[str, str]  # key → value as typed on the command line
    status: str  # completed | failed | running | interrupted | unfinished
    metrics: dict[str, Any]  # metrics.json; empty until the job has finished training
    monitor: str  # trainer.early_stopping.monitor
    mode: str  # min | max: which way the monitored metric improves
    error: str | None

    @property
    def best(self) -> float | None:
        """Best value of the monitored metric: what Optuna optimises."""
        return self.metrics.get("best_monitor")

    @property
    def fit_seconds(self) -> float | None:
        """Time spent fitting the model (metrics.json): what compares between jobs."""
        return self.metrics.get("fit_seconds")


@dataclass
class Ranking:
    """What a sweep's jobs are ranked by: a metrics.json key, shown as ``column``."""

    column: str  # final_val_acc, best_val_loss, best_val_pll, …
    key: str  # its metrics.json key
    mode: str  # min | max: which way is better
    why: str  # a few words on what it is, for the report's summary

    def value(self, job: JobResult) -> float | None:
        value = job.metrics.get(self.key)
        return value if _is_number(value) else None


def choose_ranking(jobs: list[JobResult]) -> Ranking:
    """The monitored metric of the sweep (its first completed job's), except for classifiers
    monitored by the default val_loss: they rank by validation accuracy, which compares
    across loss functions where losses do not (cross-entropy against MSE)."""
    reference = next((job for job in jobs if job.status == COMPLETED), jobs[0])
    classifiers = any(job.metrics.get("task") not in (None, "regression") for job in jobs)
    if reference.monitor == DEFAULT_MONITOR and classifiers:
        why = "validation accuracy of the weights each run ends with"
        return Ranking("final_val_acc", "final_val_acc", "max", why)
    why = f"best trainer.early_stopping.monitor={reference.monitor}"
    return Ranking(f"best_{reference.monitor}", "best_monitor", reference.mode, why)


def loss_functions(jobs: list[JobResult]) -> list[str]:
    """The loss functions the sweep's completed jobs trained with (loss=auto resolved)."""
    found = {job.metrics.get("loss") for job in jobs if job.status == COMPLETED}
    return sorted(loss for loss in found if loss)


@dataclass
class SeedGroup:
    """The jobs of one configuration that differ only in their seed."""

    overrides: dict[str, str]  # without the seed keys
    jobs: list[JobResult] = field(default_factory=list)

    def values(self, key: str) -> list[float]:
        """``key`` of metrics.json over the group's completed jobs."""
        found = [job.metrics.get(key) for job in self.jobs if job.status == COMPLETED]
        return [value for value in found if value is not None]

    def mean_std(self, key: str) -> tuple[float | None, float | None]:
        values = self.values(key)
        if not values:
            return None, None
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def collect_jobs(sweep_dir: Path) -> list[JobResult]:
    """Every job below ``sweep_dir`` that Hydra started (it has ``.hydra/overrides.yaml``)."""
    run_dirs = {marker.parent.parent for marker in sweep_dir.rglob(".hydra/overrides.yaml")}
    jobs = [read_job(run_dir, run_dir.relative_to(sweep_dir).as_posix()) for run_dir in run_dirs]
    return sorted((job for job in jobs if job), key=lambda job: _natural_key(job.name))


def read_job(run_dir: Path, name: str) -> JobResult | None:
    """The job in ``run_dir``; None while Hydra is still writing its ``.hydra/`` files."""
    try:
        overrides = [str(line) for line in OmegaConf.load(run_dir / ".hydra/overrides.yaml")]
        config = OmegaConf.load(run_dir / ".hydra/config.yaml")
    except (OSError, yaml.YAMLError):
        return None
    stopping = OmegaConf.select(config, "trainer.early_stopping") or {}
    monitor = stopping.get("monitor", "val_loss")
    try:
        mode = EarlyStoppingConfig(monitor=monitor, mode=stopping.get("mode", "auto")).resolved_mode
    except ConfigError:  # a job that failed on a bad monitor or mode: it is not sorted anyway
        mode = "min"
    metrics_file = run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    record = read_record(run_dir)
    if record is not None:
        status, error = live_status(record), record.error
    elif metrics:  # a run directory from before job.json
        status = FAILED if metrics.get("stop_reason") == "diverged" else COMPLETED
        error = None
    else:
        status, error = UNFINISHED, None
    return JobResult(
        name=name,
        run_dir=run_dir,
        overrides=dict(_split_override(line) for line in overrides),
        status=status,
        metrics=metrics,
        monitor=monitor,
        mode=mode,
        error=error,
    )


def rank_jobs(jobs: list[JobResult], ranking: Ranking) -> list[JobResult]:
    """Completed jobs best first by ``ranking``, then the others in job order."""
    ranked = [job for job in jobs if job.status == COMPLETED and ranking.value(job) is not None]
    others = [job for job in jobs if job not in ranked]
    sign = 1 if ranking.mode == "min" else -1
    return sorted(ranked, key=lambda job: sign * ranking.value(job)) + others


def group_by_seed(jobs: list[JobResult], ranking: Ranking) -> list[SeedGroup]:
    """Jobs grouped by their overrides less the seed, best mean first by ``ranking``; empty
    when no job overrides a seed."""
    if not any(key in job.overrides for job in jobs for key in SEED_KEYS):
        return []
    groups: dict[tuple, SeedGroup] = {}
    for job in jobs:
        rest = {k: v for k, v in job.overrides.items() if k not in SEED_KEYS}
        groups.setdefault(tuple(sorted(rest.items())), SeedGroup(rest)).jobs.append(job)
    ranked = [group for group in groups.values() if group.values(ranking.key)]
    others = [group for group in groups.values() if group not in ranked]
    sign = 1 if ranking.mode == "min" else -1
    ranked.sort(key=lambda group: sign * group.mean_std(ranking.key)[0])
    return ranked + others


def varying_keys(jobs: list[JobResult]) -> list[str]:
    """Override keys whose value differs between jobs (or that some jobs lack), in the order
    they were given."""
    keys = list(dict.fromkeys(key for job in jobs for key in job.overrides))
    return [key for key in keys if len({job.overrides.get(key) for job in jobs}) > 1]


def _split_override(line: str) -> tuple[str, str]:
    key, _, value = line.partition("=")
    return key.lstrip("+~"), value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
