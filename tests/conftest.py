"""Shared helpers: compose configs the way scripts/train.py does, and run the real CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

from dlbasics.config import Config, register_configs, validate

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
TRAIN_SCRIPT = ROOT / "scripts" / "train.py"

register_configs()


def make_config(*overrides: str) -> Config:
    """The validated config `python scripts/train.py <overrides>` would train with."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return validate(compose(config_name="config", overrides=list(overrides)))


def train_in_process(run_dir: Path, *overrides: str) -> dict:
    """Train with these overrides in this process (no Hydra app, no subprocess start-up)."""
    from dlbasics.run import train

    return train(make_config(*overrides), run_dir, progress=False)


def cli_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def run_cli(
    *args: str, timeout: float = 300, cwd: Path = ROOT, **popen
) -> subprocess.CompletedProcess:
    """Run scripts/train.py as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT), *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        **popen,
    )


def start_cli(*args: str) -> subprocess.Popen:
    """Start scripts/train.py in the background (to signal or kill it), stdout as text lines."""
    return subprocess.Popen(
        [sys.executable, str(TRAIN_SCRIPT), *args],
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())
