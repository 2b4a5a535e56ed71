"""Shared helpers: compose configs the way scripts/train.py does, and run the real CLI."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from dlbasics.cli import describe_hydra_error, key_of_a_left_out_group
from dlbasics.config import Config, register_configs, validate
from dlbasics.config_guard import harden_resolvers, refuse_code_in_arguments
from dlbasics.errors import UserError
from dlbasics.run import train

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
TRAIN_SCRIPT = ROOT / "scripts" / "train.py"

register_configs()
harden_resolvers()


@pytest.fixture(scope="session", autouse=True)
def _bundled_data_cache(tmp_path_factory):
    """The bundled data sets are cached in the test session's directory, not the user's: also
    for the runs started as subprocesses, which inherit the environment."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DLBASICS_CACHE", str(tmp_path_factory.mktemp("dlbasics-cache")))
        yield


def compose_only(*overrides: str) -> DictConfig:
    """The config Hydra composes for these overrides (what `--cfg job` shows), unvalidated."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def make_config(*overrides: str) -> Config:
    """The validated config `python scripts/train.py <overrides>` would train with."""
    return validate(compose_only(*overrides))


def train_in_process(run_dir: Path, *overrides: str) -> dict:
    """Train with these overrides in this process (no Hydra app, no subprocess start-up)."""
    return train(make_config(*overrides), run_dir, progress=False)


def cli_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def run_cli(
    *args: str, timeout: float = 300, cwd: Path = ROOT, env: dict | None = None, **popen
) -> subprocess.CompletedProcess:
    """Run scripts/train.py as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT), *args],
        cwd=cwd,
        env=env or cli_env(),
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


def train_or_refuse(overrides: list[str], run_dir: Path) -> str:
    """What `python scripts/train.py <overrides>` does, in this process: "trained" after one
    epoch ("diverged" if the loss blew up in it: exit 0 too), or the one-line message it would
    exit 2 with. Anything else raises (a bug)."""
    try:
        refuse_code_in_arguments(overrides)  # as scripts/train.py does first
        config = make_config(*overrides)
    except (HydraException, OmegaConfBaseException) as error:
        return describe_hydra_error(error, overrides)
    except AssertionError as error:  # OmegaConf's, for a key under a group left out
        if not key_of_a_left_out_group(error):
            raise
        return describe_hydra_error(error, overrides)
    except UserError as error:
        return str(error)
    threads = torch.get_num_threads()
    try:
        metrics = train(config, run_dir, progress=False)
    except UserError as error:
        return str(error)
    finally:  # the run may change process-wide torch settings
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
    if metrics["stop_reason"] == "diverged":
        return "diverged"
    assert metrics["epochs_run"] == 1 and metrics["steps"] >= 1, metrics
    return "trained"


# --- comparing runs that compute the same thing in another order of arithmetic ----------------
#
# A stacked job and the same job run alone (or one process and two under torchrun) sum in
# another order: their numbers agree to float32 rounding after one step, and after a fit to
# wherever many steps carry that rounding, which depends on the CPU and has no derivable bound.
# So a fit's results are compared by what holds whatever the rounding: the same keys, the same
# counts and choices (epochs, steps, stop reason), finite numbers where the other has them, and
# each run nearest its own counterpart among all the runs (another seed, learning rate or data
# moves every weight; rounding moves them in their last bits).


def best_weights(run_dir: Path) -> torch.Tensor:
    """The run's checkpoints/best.pt weights, flattened into one float64 vector."""
    from dlbasics.checkpoint import load_checkpoint

    state = load_checkpoint(run_dir / "checkpoints" / "best.pt")["model"]
    return torch.cat([value.double().flatten() for value in state.values()])


def assert_each_nearest_its_own(found: dict[str, Path], expected: dict[str, Path]) -> None:
    """Each run of ``found`` ends nearer its namesake in ``expected`` than any other run there
    (distance between their best.pt weights): the same run computed in another order."""
    weights = {name: best_weights(run_dir) for name, run_dir in expected.items()}
    for name, run_dir in found.items():
        own = best_weights(run_dir)
        distances = {other: (own - w).norm().item() for other, w in weights.items()}
        assert min(distances, key=distances.get) == name, (name, distances)


def assert_same_kind(found: object, expected: object, where: str) -> None:
    """Equal through dicts and lists, except floats: finite where the other is finite."""
    if isinstance(expected, dict):
        assert isinstance(found, dict) and set(found) == set(expected), where
        for key in expected:
            assert_same_kind(found[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert isinstance(found, type(expected)) and len(found) == len(expected), where
        for index, (one, other) in enumerate(zip(found, expected, strict=True)):
            assert_same_kind(one, other, f"{where}[{index}]")
    elif isinstance(expected, float):
        assert isinstance(found, float) and math.isfinite(found) == math.isfinite(expected), where
    else:
        assert found == expected, where
