"""A sweep's start and end, as Hydra's callbacks: every job checked before the first runs, and
at the end one line per failed job and the exit status.

Registered in ``configs/config.yaml`` under ``hydra.callbacks``; Hydra calls it in the process
that launches the sweep, before the first job and after every job has returned (whatever the
launcher). The exit status: 0 when every job finished, 1 when some failed, 2 when a job could
not even start (a mistake in the sweep's overrides), found before any job ran.
"""

import itertools
import sys
from pathlib import Path
from typing import Any

from hydra import compose
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from dlbasics.cli import USER_ERROR, describe_hydra_error
from dlbasics.config import validate
from dlbasics.errors import UserError
from dlbasics.sweeps.overrides import sweep_overrides
from dlbasics.sweeps.record import COMPLETED, JOB_FILE, read_record
from hydra_plugins.dlbasics_stacked_launcher.config import StackedLauncherConf

SOME_FAILED = 1


# How config.validate refuses a key the job's choice of a group does not take.
NOT_THIS_CHOICE = "does not apply to"


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A grid sweep's jobs are all known before it runs: compose and validate each, and
        stop before the first when any cannot run (left to the stacked launcher, which does
        it as it composes them: checks_its_jobs). Optuna draws its trials one at a time: a
        trial that cannot run is recorded as failed, and the search goes on."""
        if not is_grid(config) or checks_its_jobs(config):
            return
        jobs = grid_jobs(list(config.hydra.overrides.task), config.hydra.sweeper.get("params"))
        refuse_jobs(
            {
                number: (overrides, problem)
                for number, overrides in enumerate(jobs)
                if (problem := why_not(config.hydra.job.config_name, overrides)) is not None
            },
            len(jobs),
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if summarize(Path(config.hydra.sweep.dir)):
            sys.exit(SOME_FAILED)


def checks_its_jobs(config: DictConfig) -> bool:
    """Whether the launcher composes and checks every job of the grid itself before running
    any (the stacked launcher, given the whole grid as one batch), so that composing each job
    here too would only double the sweep's start."""
    stacked = config.hydra.launcher.get("_target_") == StackedLauncherConf._target_
    return is_grid(config) and stacked and config.hydra.sweeper.get("max_batch_size") is None


def is_grid(config: DictConfig) -> bool:
    """Whether the sweep is a grid: Hydra's default sweeper, hydra/sweeper=basic, as Hydra
    records the choice (not Optuna's, which draws its trials one at a time)."""
    return config.hydra.runtime.choices.get("hydra/sweeper") == "basic"


def refuse_jobs(problems: dict[int, tuple[list[str], str]], total: int) -> None:
    """Exit 2, with a line for each job that cannot run (its number: its overrides and the
    problem), when there is any, before any job has run."""
    if not problems:
        return
    print(
        f"error: {len(problems)} of the sweep's {total} jobs cannot run, so none was started:",
        *(
            f"  job {number} ({' '.join(overrides)}): {problem}"
            for number, (overrides, problem) in sorted(problems.items())
        ),
        sep="\n",
        file=sys.stderr,
    )
    if any(NOT_THIS_CHOICE in problem for _, problem in problems.values()):
        print(
            "A key set beside a swept group applies to every job whose choice takes it; sweep "
            "the choices that do not take it in a sweep of their own, without the key.",
            file=sys.stderr,
        )
    sys.exit(USER_ERROR)


def grid_jobs(task: list[str], params: Any) -> list[list[str]]:
    """The override lists of a grid sweep's jobs, in Hydra's order: the preset's sweep
    (``hydra.sweeper.params``), overridden key by key by the command line, then every
    combination of the swept values."""
    by_key = sweep_overrides(task, params)
    values = [
        [f"{key}={value}" for value in override.sweep_string_iterator()]
        if override.is_sweep_override()
        else [override.input_line]
        for key, override in by_key.items()
    ]
    return [list(job) for job in itertools.product(*values)]


def why_not(config_name: str, overrides: list[str]) -> str | None:
    """The one line a job with these overrides would be refused with, or None."""
    try:
        validate(compose(config_name=config_name, overrides=overrides))
    except UserError as error:
        return str(error)
    except (HydraException, OmegaConfBaseException) as error:
        return describe_hydra_error(error, overrides)
    return None


def summarize(sweep_dir: Path) -> int:
    """Print how the sweep's jobs ended; return how many did not complete."""
    records = [read_record(path.parent) for path in sorted(sweep_dir.glob(f"*/{JOB_FILE}"))]
    records = [record for record in records if record is not None]
    not_completed = [record for record in records if record.status != COMPLETED]
    print(
        f"sweep: {len(records) - len(not_completed)} of {len(records)} jobs completed, "
        f"{len(not_completed)} failed  ({sweep_dir})"
    )
    for record in sorted(not_completed, key=lambda record: record.job or 0):
        print(f"  job {record.job} ({' '.join(record.overrides)}): {record.status}: {record.error}")
    print(f"report: .venv/bin/python scripts/report.py {sweep_dir}")
    return len(not_completed)
