"""What a sweep varies: the overrides that give several values to a key (``act=relu,tanh``,
``range(1,4)``, ``choice(…)``, ``interval(…)``), typed on the command line or set in
``hydra.sweeper.params`` (a preset's grid, an Optuna search space)."""

import functools
from collections.abc import Collection
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.errors import HydraException
from omegaconf import OmegaConf

from dlbasics.config_guard import parse_hydra_args

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


def keys_beside_swept_groups(argv: list[str], groups: Collection[str]) -> list[str]:
    """A sweep's command line with each key of a swept group (``optim.momentum=0.5`` beside
    ``optim=momentum,nesterov``) set as a sweep of one value (``optim.momentum=choice(0.5)``);
    with ``experiment=…`` swept, the keys of every group (a preset may choose any).

    Hydra composes a sweep's base config, from the groups' defaults, before it expands the
    sweep: there the key may not exist (optim=adam has no momentum) and the sweep would be
    refused for a choice nobody picked. A sweep's values are set per job instead, where each
    job's own choice is checked (and a job whose choice lacks the key is refused, before any
    job runs: sweeps/callback.py). ``argv`` is returned as it is outside a sweep."""
    parsed = parse_hydra_args(argv[1:])
    if parsed is None or not parsed.multirun:
        return argv
    try:
        overrides = OverridesParser.create().parse_overrides(parsed.overrides)
    except HydraException:
        return argv  # Hydra says what is wrong with it
    swept = {o.key_or_group for o in overrides if o.is_sweep_override()} & set(groups)
    if "experiment" in swept:
        swept |= set(groups)
    deferred = {
        o.input_line: f"{o.key_or_group}=choice({o.input_line.partition('=')[2]})"
        for o in overrides
        if o.key_or_group.partition(".")[0] in swept
        and "." in o.key_or_group
        and o.type == OverrideType.CHANGE
        and not o.is_sweep_override()
    }
    return [argv[0], *(deferred.get(arg, arg) for arg in argv[1:])]
