"""`trainer.resume=<run dir or last.pt>`: find the checkpoint and check this run can continue it.

A resumed run must be the same run: its config may differ from the checkpoint's only in the
keys below, which change where or how long it runs, not what it computes.
"""

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from dlbasics.checkpoint import LAST_PT, check_contents, load_checkpoint
from dlbasics.config import Config, flatten
from dlbasics.errors import ConfigError, DataError
from dlbasics.latest import resolve_latest

MAY_DIFFER = (
    "trainer.resume",
    "trainer.epochs",  # to train a finished run for longer
    "trainer.checkpoint_every",
    "trainer.device",
    "trainer.threads",
    "trainer.on_nan",
    "trainer.distributed_timeout",
    "trainer.compile",  # the same computation, compiled or not
    "logger.name",
)


def load_resume_checkpoint(cfg: Config, config_yaml: str) -> dict[str, Any] | None:
    """The ``last.pt`` payload to continue from, or None when ``trainer.resume`` is null."""
    if cfg.trainer.resume is None:
        return None
    where = f"trainer.resume={cfg.trainer.resume}"
    path = checkpoint_path(cfg.trainer.resume)
    try:
        checkpoint = load_checkpoint(path)
        if "training" in checkpoint:
            check_contents(checkpoint, LAST_PT, path)
    except DataError as error:
        raise DataError(f"{where}: {error}") from None
    if "training" not in checkpoint:
        raise DataError(
            f"{where}: {path} holds no training state (it is a best.pt, or a last.pt of an "
            "older dlbasics); resuming needs the optimizer, schedule and RNG states that "
            "checkpoints/last.pt holds."
        )
    differences = [
        f"{key}={ours!r} here but {theirs!r} in the checkpoint"
        for key, (ours, theirs) in config_differences(config_yaml, checkpoint["config"]).items()
    ]
    if differences:
        raise ConfigError(
            f"{where}: a resumed run needs the settings it was started with, but "
            f"{'; '.join(differences)}. Repeat the original overrides (the run directory's "
            ".hydra/overrides.yaml lists them) and add trainer.resume."
        )
    in_progress = checkpoint["training"]["epoch_in_progress"] is not None
    if checkpoint["stop_reason"] == "early_stopping":
        raise ConfigError(f"{where}: that run stopped early (early_stopping); it is finished.")
    if checkpoint["epoch"] >= cfg.trainer.epochs and not in_progress:
        raise ConfigError(
            f"{where}: that run has already trained {checkpoint['epoch']} epochs; raise "
            f"trainer.epochs above {checkpoint['epoch']} to train it further."
        )
    return checkpoint


def checkpoint_path(resume: str) -> Path:
    """A run directory means its checkpoints/last.pt; a file is taken as it is;
    ``outputs/latest``, the newest run under outputs/ that wrote a last.pt."""
    path = resolve_latest(Path(resume), "checkpoints/last.pt", "run with a checkpoints/last.pt")
    for candidate in (path / "checkpoints" / "last.pt", path / "last.pt"):
        if path.is_dir() and candidate.is_file():
            return candidate
    if path.is_dir():
        raise DataError(
            f"trainer.resume={resume}: no checkpoints/last.pt in that directory (a run writes "
            "it every trainer.checkpoint_every epochs, and when it stops, unless "
            "trainer.checkpoints=false, as with debug=fast)."
        )
    if not path.exists():
        raise DataError(f"trainer.resume={resume}: no such file or directory.")
    return path


def config_differences(ours: str, theirs: str) -> dict[str, tuple[Any, Any]]:
    """Keys (outside MAY_DIFFER) whose values differ between two configs, as YAML."""
    mine, other = (flatten(OmegaConf.to_container(OmegaConf.create(y))) for y in (ours, theirs))
    return {
        key: (mine.get(key), other.get(key))
        for key in sorted(set(mine) | set(other))
        if key not in MAY_DIFFER and mine.get(key) != other.get(key)
    }
