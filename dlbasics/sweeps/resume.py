"""``--resume``: run a sweep again with the same command and finish what it left undone.

Hydra gives every sweep a new directory (``multirun/<date>/<time>/``), so a rerun cannot find the
old one by itself. With ``--resume`` we look it up before Hydra starts: the newest directory
under ``multirun/`` whose ``multirun.yaml`` (written by Hydra when the sweep began) records the
same config name and the same task overrides in the same order (the order fixes the job numbers,
hence each job's directory). A command that names its own ``hydra.sweep.dir=…`` resumes that
directory. The jobs then see ``DLBASICS_RESUME=1`` (set through ``hydra.job.env_set``, so it
reaches jobs run by any launcher) and skip those that completed (job.py).
"""

from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf

from dlbasics.config_guard import parse_hydra_args
from dlbasics.errors import ConfigError

RESUME_FLAG = "--resume"
RESUME_ENV = "DLBASICS_RESUME"  # "1" in every job of a sweep run with --resume (job.py)
DEFAULT_SWEEPS_ROOT = Path("multirun")  # Hydra's default: multirun/<date>/<time>/
SWEEP_DIR_KEY = "hydra.sweep.dir"


def resume_argv(argv: list[str], config_name: str) -> list[str]:
    """``argv`` unchanged without ``--resume``; with it, ``argv`` less the flag, plus the
    overrides that point Hydra at the sweep to resume and tell its jobs to skip completed ones.
    Raises ConfigError when there is nothing to resume."""
    if RESUME_FLAG not in argv[1:]:
        return argv
    args = [arg for arg in argv[1:] if arg != RESUME_FLAG]
    parsed = parse_hydra_args(args)
    if parsed is None:  # malformed command line: let Hydra report it
        return [argv[0], *args]
    if not parsed.multirun:
        raise ConfigError(f"{RESUME_FLAG} continues a sweep; add -m (--multirun).")
    resume_env = f"++hydra.job.env_set.{RESUME_ENV}=1"
    try:
        overrides = OverridesParser.create().parse_overrides(parsed.overrides)
    except HydraException:
        return [argv[0], *args]
    task = [o.input_line for o in overrides if not o.is_hydra_override()]
    named = [o for o in overrides if o.key_or_group == SWEEP_DIR_KEY]
    if named:  # the command names its sweep directory: that one, if it ran these overrides
        sweep_dir = Path(str(named[-1].value()))
        if not (sweep_dir / "multirun.yaml").is_file():
            raise ConfigError(
                f"{RESUME_FLAG}: {SWEEP_DIR_KEY}={sweep_dir} holds no earlier sweep "
                "(no multirun.yaml); run the sweep without --resume to start it."
            )
        recorded = list(OmegaConf.load(sweep_dir / "multirun.yaml").hydra.overrides.task)
        if recorded != task:  # job n's directory holds what that sweep's job n trained
            raise ConfigError(
                f"{RESUME_FLAG}: the sweep in {sweep_dir} ran {' '.join(recorded) or 'none'}, "
                f"not {' '.join(task) or 'none'}; resume it with the same overrides in the "
                "same order (its multirun.yaml lists them), or start a new sweep."
            )
        resumed = [argv[0], *args, resume_env]
    else:
        sweep_dir = find_previous_sweep(
            DEFAULT_SWEEPS_ROOT, parsed.config_name or config_name, task
        )
        if sweep_dir is None:
            raise ConfigError(
                f"{RESUME_FLAG}: no sweep under {DEFAULT_SWEEPS_ROOT}/ was run with these "
                f"overrides ({' '.join(task) or 'none'}) in this order; give the same overrides "
                f"as the sweep to resume, or name its directory with {SWEEP_DIR_KEY}=<dir>."
            )
        resumed = [argv[0], *args, f"{SWEEP_DIR_KEY}={sweep_dir}", resume_env]
    print(f"resuming the sweep in {sweep_dir}")
    return resumed


def find_previous_sweep(root: Path, config_name: str, task_overrides: list[str]) -> Path | None:
    """The newest sweep directory below ``root`` run with this config and these overrides."""
    matches = []
    for marker in root.glob("*/*/multirun.yaml"):
        recorded = OmegaConf.load(marker).hydra
        same_config = recorded.job.config_name == config_name
        if same_config and list(recorded.overrides.task) == task_overrides:
            matches.append(marker)
    if not matches:
        return None
    return max(matches, key=lambda marker: marker.stat().st_mtime).parent
