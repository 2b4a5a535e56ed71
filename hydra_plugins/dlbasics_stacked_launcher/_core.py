"""What the stacked launcher does with a batch of a sweep's jobs.

Each job is composed as Hydra's basic launcher composes it. Jobs with equal stack keys
(dlbasics.stacked_runs.group_key, plus the environment Hydra sets for them) train as one stack
through ``stacked_runs.train_group``; the launcher writes around them what Hydra's ``run_job``
writes for a job (``.hydra/``, the job's log file, the callbacks, a JobReturn) and what
``dlbasics.sweeps.job`` records (``job.json``). A job that cannot stack, or has no partner,
runs alone through Hydra's ``run_job`` and the task function, exactly as the basic launcher
runs it.
"""

import copy
import logging
import os
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import (
    JobReturn,
    JobRuntime,
    JobStatus,
    configure_log,
    env_override,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from dlbasics import stacked_runs
from dlbasics.cli import interrupt_on_ctrl_c
from dlbasics.config import Config, task_config, validate
from dlbasics.config_guard import harden_resolvers
from dlbasics.errors import UserError
from dlbasics.sweeps.callback import checks_its_jobs, refuse_jobs
from dlbasics.sweeps.job import SweepJob, completed_result, end_job, start_job
from dlbasics.sweeps.record import JobRecord
from dlbasics.sweeps.resume import RESUME_ENV

from .stacked_launcher import StackedLauncher

log = logging.getLogger(__name__)


@dataclass
class _Job:
    """One job of the batch, composed, and what decides whether it stacks."""

    index: int  # its place in the batch: the JobReturns come back in this order
    config: DictConfig  # its whole config, Hydra's node included, as run_job takes it
    cfg: Config | None  # its validated config; None if validate refused it
    key: Hashable | None  # jobs with equal keys train as one stack; None: it runs alone
    problem: str | None = None  # why validate refused it (a mistake in its config)

    @property
    def num(self) -> int:
        return self.config.hydra.job.num

    @property
    def run_dir(self) -> Path:
        return Path(self.config.hydra.runtime.output_dir)

    @property
    def overrides(self) -> list[str]:
        return list(self.config.hydra.overrides.task)


def launch(
    launcher: StackedLauncher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> Sequence[JobReturn]:
    """Run the batch's jobs, stacked where their keys are equal, and return one JobReturn per
    job in the batch's order. A job stopped by a signal ends the sweep (SystemExit), after
    the rest of its stack is recorded."""
    harden_resolvers()  # before any job's config is composed and resolved here
    setup_globals()
    assert launcher.config is not None and launcher.hydra_context is not None
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    Path(str(launcher.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    jobs = [
        _compose(launcher, initial_job_idx + index, index, overrides)
        for index, overrides in enumerate(job_overrides)
    ]
    if checks_its_jobs(launcher.config):  # a grid's mistakes stop it before any job runs
        problems = {job.num: (job.overrides, job.problem) for job in jobs if job.problem}
        refuse_jobs(problems, len(jobs))
    interrupt_on_ctrl_c()  # every job composed (scripts/train.py held Ctrl-C back until now)
    stacks = _stacks(jobs)
    stacked = [stack for stack in stacks if len(stack) > 1]
    alone = len(jobs) - sum(len(stack) for stack in stacked)
    log.info(f"Launching {len(jobs)} jobs locally: {len(stacked)} stack(s), {alone} alone")
    returns: dict[int, JobReturn] = {}
    for stack in stacks:
        if len(stack) == 1:
            returns[stack[0].index] = _run_alone(launcher, stack[0])
        else:
            returns.update(_run_stack(launcher, stack))
        configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    return [returns[job.index] for job in jobs]


# --- composing the jobs and grouping them ------------------------------------------------------


def _compose(launcher: StackedLauncher, num: int, index: int, overrides: Sequence[str]) -> _Job:
    """The job's config as the basic launcher composes it, its run directory resolved as
    run_job resolves it, and its stack key."""
    config = launcher.hydra_context.config_loader.load_sweep_config(
        launcher.config, list(overrides)
    )
    with open_dict(config):
        config.hydra.job.id = num
        config.hydra.job.num = num
    with _hydra_config(config):
        output_dir = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
        output_dir /= str(OmegaConf.select(config, "hydra.sweep.subdir"))
        with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
            config.hydra.runtime.output_dir = os.path.abspath(output_dir)
    with _hydra_config(config):
        cfg, problem = _validated(config)
        return _Job(index, config, cfg, _stack_key(config, cfg), problem)


def _validated(config: DictConfig) -> tuple[Config | None, str | None]:
    """The job's config as the task function would validate it, or None and why (a
    UserError's message) when validate refuses it: the job then runs alone, and its failure
    is recorded there (a grid sweep stops before it, in launch)."""
    try:
        return validate(task_config(config)), None
    except UserError as error:
        return None, str(error)
    except Exception:  # noqa: BLE001 - recorded when the job runs alone
        return None, None


def _stack_key(config: DictConfig, cfg: Config | None) -> Hashable | None:
    """What must be equal for two jobs to train as one stack, or None for a job that runs
    alone: one that changes into its own directory (hydra.job.chdir), one that a resumed
    sweep skips, one whose config is refused, and one the trainer cannot stack."""
    if cfg is None or config.hydra.job.chdir:
        return None
    env = {**os.environ, **{k: str(v) for k, v in config.hydra.job.env_set.items()}}
    if env.get(RESUME_ENV) == "1":
        overrides = list(config.hydra.overrides.task)
        if completed_result(Path(config.hydra.runtime.output_dir), overrides) is not None:
            return None  # its task function only reports that it is skipped
    key = stacked_runs.group_key(cfg)
    if key is None:
        return None
    # Jobs of one stack share this process, so their environment too.
    return key, OmegaConf.to_yaml(config.hydra.job.env_set)


def _stacks(jobs: list[_Job]) -> list[list[_Job]]:
    """The jobs in stacks of equal keys (each job without a key a stack of its own), in the
    order of each stack's first job."""
    stacks: dict[Hashable, list[_Job]] = {}
    for job in jobs:
        key = ("alone", job.index) if job.key is None else ("stack", job.key)
        stacks.setdefault(key, []).append(job)
    return list(stacks.values())


# --- a job alone: the basic launcher's way ----------------------------------------------------


def _run_alone(launcher: StackedLauncher, job: _Job) -> JobReturn:
    log.info(f"\t#{job.num} : {' '.join(filter_overrides(job.overrides))}")
    return run_job(
        hydra_context=launcher.hydra_context,
        task_function=launcher.task_function,
        config=job.config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


# --- a stack of jobs: trained together, each written as run_job would ---------------------------


def _run_stack(launcher: StackedLauncher, jobs: list[_Job]) -> dict[int, JobReturn]:
    """Train ``jobs`` as one stack; each job's run directory, job.json, log file and
    JobReturn as if it had run alone. A job stopped by a signal ends the sweep (SystemExit)
    once every job of the stack is recorded."""
    for job in jobs:
        log.info(f"\t#{job.num} : {' '.join(filter_overrides(job.overrides))}")
    log.info(f"Stacking jobs {', '.join(f'#{job.num}' for job in jobs)}: trained together")
    callbacks = launcher.hydra_context.callbacks
    stack = _Stack(jobs)
    try:
        with env_override(_env_set(jobs[0].config)):
            for position, job in enumerate(jobs):
                with stack.as_job(position):
                    callbacks.on_job_start(config=job.config, task_function=launcher.task_function)
            _configure_console(jobs[0].config)
            sweep_jobs, records = _start_jobs(stack)
            outcomes = _train_stack(stack, sweep_jobs)
            returns, stopped = _end_jobs(stack, sweep_jobs, records, outcomes)
            for position, job in enumerate(jobs):
                if job.index in returns:
                    with stack.as_job(position):
                        callbacks.on_job_end(config=job.config, job_return=returns[job.index])
    finally:
        stack.close()
    if stopped is not None:
        raise stopped
    return returns


class _Stack:
    """The jobs of one stack, their run directories and ``.hydra/`` written and their log
    files open; ``as_job(i)`` switches to job i."""

    def __init__(self, jobs: list[_Job]) -> None:
        self.jobs = jobs
        self.logs: list[_JobLog] = []
        for job in jobs:
            _write_hydra_files(job.config)
            self.logs.append(_JobLog(job.config))

    @contextmanager
    def as_job(self, position: int) -> Iterator[None]:
        """Inside: job ``position``'s Hydra config is the current one (HydraConfig.get()), and
        what is logged goes to its log file too."""
        with _hydra_config(self.jobs[position].config), self.logs[position]:
            yield

    def close(self) -> None:
        for job_log in self.logs:
            job_log.close()


def _start_jobs(stack: _Stack) -> tuple[list[SweepJob], list[JobRecord]]:
    """Each job started as run_sweep_job starts it (its first line, job.json), and a line
    naming the jobs it is stacked with."""
    sweep_jobs, records = [], []
    for position, job in enumerate(stack.jobs):
        with stack.as_job(position):
            sweep_jobs.append(SweepJob.from_hydra(job.run_dir))
            records.append(start_job(sweep_jobs[-1]))
            others = [str(other.num) for other in stack.jobs if other is not job]
            log.info(f"job {job.num}: stacked with jobs {', '.join(others)}")
    return sweep_jobs, records


def _train_stack(stack: _Stack, sweep_jobs: list[SweepJob]) -> list[dict[str, Any] | BaseException]:
    """Each job's metrics, or what it failed with. What the stack raises as a whole (Ctrl-C,
    a bug) is every job's outcome."""
    members = [
        (job.cfg, job.run_dir, sweep.run_name)
        for job, sweep in zip(stack.jobs, sweep_jobs, strict=True)
    ]
    try:
        return stacked_runs.train_group(members, sweep_jobs[0].swept, stack.as_job)
    except (Exception, KeyboardInterrupt) as error:
        return [error] * len(stack.jobs)


def _end_jobs(
    stack: _Stack,
    sweep_jobs: list[SweepJob],
    records: list[JobRecord],
    outcomes: list[dict[str, Any] | BaseException],
) -> tuple[dict[int, JobReturn], SystemExit | None]:
    """Each job recorded as run_sweep_job records it, and its JobReturn as run_job makes it;
    with the SystemExit of the first job stopped by a signal (its JobReturn left out: the
    sweep ends)."""
    returns: dict[int, JobReturn] = {}
    stopped: SystemExit | None = None
    for position, job in enumerate(stack.jobs):
        with stack.as_job(position):
            ret = _job_return(job.config)
            try:
                ret.return_value = end_job(
                    sweep_jobs[position], records[position], outcomes[position]
                )
                ret.status = JobStatus.COMPLETED
            except SystemExit as stop:
                stopped = stopped or stop
                continue
            except Exception as error:  # noqa: BLE001 - as run_job: a failed job (Optuna's)
                ret.return_value = error
                ret.status = JobStatus.FAILED
        returns[job.index] = ret
    return returns, stopped


def _job_return(config: DictConfig) -> JobReturn:
    """The JobReturn run_job would make for this job, before its status and return value."""
    ret = JobReturn()
    ret.cfg = task_config(config)
    ret.hydra_cfg = copy.deepcopy(HydraConfig.instance().cfg)
    ret.overrides = OmegaConf.to_container(config.hydra.overrides.task)
    ret.working_dir = os.getcwd()
    ret.task_name = JobRuntime.instance().get("name")
    return ret


def _write_hydra_files(config: DictConfig) -> None:
    """The job's run directory and the files run_job saves in its ``.hydra/``: the task's
    config, Hydra's config and the job's overrides."""
    run_dir = Path(config.hydra.runtime.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if config.hydra.output_subdir is None:
        return
    hydra_dir = run_dir / str(config.hydra.output_subdir)
    hydra_dir.mkdir(parents=True, exist_ok=True)
    with _hydra_config(config):
        OmegaConf.save(task_config(config), hydra_dir / "config.yaml")
        OmegaConf.save(HydraConfig.instance().cfg, hydra_dir / "hydra.yaml")
        OmegaConf.save(config.hydra.overrides.task, hydra_dir / "overrides.yaml")


def _env_set(config: DictConfig) -> dict[str, str]:
    return {key: str(value) for key, value in config.hydra.job.env_set.items()}


@contextmanager
def _hydra_config(config: DictConfig) -> Iterator[None]:
    """Inside: ``config`` is the job config HydraConfig.get() returns. Set as run_job sets it,
    and left set after, as run_job leaves it (the basic launcher ends with the last job's)."""
    HydraConfig.instance().set_config(config)
    yield


# --- each job's log file -----------------------------------------------------------------------


def _job_logging(config: DictConfig) -> dict[str, Any] | None:
    """The job's hydra.job_logging config, resolved for this job (its file name)."""
    if config.hydra.job_logging is None:
        return None
    with _hydra_config(config):
        return OmegaConf.to_container(config.hydra.job_logging, resolve=True)


def _file_handlers(logging_config: dict[str, Any] | None) -> list[str]:
    """The handlers of a logging config that write a file (they have a file name)."""
    handlers = (logging_config or {}).get("handlers") or {}
    return [name for name, handler in handlers.items() if "filename" in handler]


def _configure_console(config: DictConfig) -> None:
    """The jobs' logging config less its log files: what a stack logs reaches the console,
    and each job's file only through that job's _JobLog."""
    logging_config = _job_logging(config)
    if logging_config is not None:
        files = set(_file_handlers(logging_config))
        for name in files:
            del logging_config["handlers"][name]
        loggers = [
            logging_config.get("root") or {},
            *(logging_config.get("loggers") or {}).values(),
        ]
        for logger in loggers:
            if "handlers" in logger:
                logger["handlers"] = [h for h in logger["handlers"] if h not in files]
        logging_config = OmegaConf.create(logging_config)
    configure_log(logging_config, config.hydra.verbose)


class _JobLog:
    """One job's log files (train.log), as its hydra.job_logging config makes them, attached
    to the loggers that config attaches them to while lines about this job are logged."""

    def __init__(self, config: DictConfig) -> None:
        logging_config = _job_logging(config) or {}
        formatters = logging_config.get("formatters") or {}
        made = {
            name: _make_handler(logging_config["handlers"][name], formatters)
            for name in _file_handlers(logging_config)
        }
        named = {"": logging_config.get("root") or {}, **(logging_config.get("loggers") or {})}
        self.attached = [
            (logging.getLogger(logger_name or None), made[handler])
            for logger_name, logger in named.items()
            for handler in logger.get("handlers") or []
            if handler in made
        ]
        self.handlers = list(made.values())

    def __enter__(self) -> "_JobLog":
        for logger, handler in self.attached:
            logger.addHandler(handler)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for logger, handler in self.attached:
            handler.flush()
            logger.removeHandler(handler)

    def close(self) -> None:
        for handler in self.handlers:
            handler.close()


def _make_handler(spec: dict[str, Any], formatters: dict[str, Any]) -> logging.Handler:
    """A logging handler from its entry in a logging config (``class``, ``formatter``,
    ``level``, the rest its arguments, e.g. ``filename``), as logging.config builds it."""
    arguments = {
        key: value
        for key, value in spec.items()
        if key not in ("class", "formatter", "level", "filters")
    }
    # The class a trusted config names (Hydra's configs, configs/hydra/job_logging/): what
    # Hydra's own logging setup imports too; dlbasics.config_guard keeps users' out.
    handler = get_class(spec["class"])(**arguments)
    formatter = formatters.get(spec.get("formatter")) or {}
    handler.setFormatter(
        logging.Formatter(
            formatter.get("format"), formatter.get("datefmt"), formatter.get("style", "%")
        )
    )
    if spec.get("level") is not None:
        handler.setLevel(spec["level"])
    return handler
