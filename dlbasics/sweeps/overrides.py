"""What a sweep varies: the overrides that give several values to a key (``act=relu,tanh``,
``range(1,4)``, ``choice(…)``, ``interval(…)``), typed on the command line or set in
``hydra.sweeper.params`` (a preset's grid, an Optuna search space)."""

import functools
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import OmegaConf

SWEEP_FILE = "multirun.yaml"  # the sweep's config, written by Hydra's grid sweeper as it starts


def sweep_overrides(task: list[str], params: Any) -> dict[str, Override]:
    """The sweep's overrides by key: the preset's (``hydra.sweeper.params``), overridden key by
    key by the command line's (``task``), in that order."""
    lines = [f"{key}={value}" for key, value in (params or {}).items()]
    by_key = {}
    for override in OverridesParser.create().parse_overrides([*lines, *task]):
        by_key[override.get_key_element()] = override  # the command line's wins
    return by_key


def swept_keys(task: list[str], params: Any) -> list[str]:
    """The keys the sweep gives several values (without a leading ``+``, ``++`` or ``~``)."""
    return [
        override.key_or_group
        for override in sweep_overrides(task, params).values()
        if override.is_sweep_override()
    ]


def sweep_task(sweep_dir: Path) -> list[str]:
    """The command line's overrides of the sweep in ``sweep_dir`` (as typed: ``act=relu,tanh``),
    from its multirun.yaml; empty without one (Optuna's sweeper writes none: its search space
    is in ``hydra.sweeper.params``)."""
    path = sweep_dir / SWEEP_FILE
    if not path.is_file():
        return []
    return list(_task_of(path, path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=8)
def _task_of(path: Path, mtime_ns: int) -> tuple[str, ...]:
    """multirun.yaml's task overrides, read once per version of the file: the whole sweep's
    config, which every job of a sweep run in one process would otherwise parse again."""
    return tuple(str(line) for line in OmegaConf.load(path).hydra.overrides.task)


def job_values(overrides: list[str], keys: list[str]) -> list[str]:
    """This job's overrides (``hydra.overrides.task``) of ``keys``, in the order of ``keys``."""
    by_key = {}
    for line in overrides:
        key, _, value = line.partition("=")
        by_key[key.lstrip("+~")] = f"{key.lstrip('+~')}={value}"
    return [by_key[key] for key in keys if key in by_key]
