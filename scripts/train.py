"""Train a model from the config tree in configs/.

python scripts/train.py                           # MLP on digits
python scripts/train.py model=perceptron data=or optim=sgd
python scripts/train.py -m model=mlp act=relu,tanh   # a sweep (Hydra multirun)
python scripts/train.py -m model=mlp act=relu,tanh --resume   # finish that sweep
python scripts/train.py --help                    # groups and their choices
"""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from dlbasics.config import register_configs, validate
from dlbasics.errors import UserError
from dlbasics.sweeps.job import run_sweep_job
from dlbasics.sweeps.resume import resume_argv

register_configs()


@hydra.main(version_base="1.3", config_path="../configs", config_name="config")
def main(cfg: DictConfig) -> float | None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if HydraConfig.get().mode == RunMode.MULTIRUN:  # a failed job is recorded, the sweep goes on
        return run_sweep_job(cfg, run_dir)
    try:
        config = validate(cfg)
        from dlbasics.run import train  # imports torch: after the config is known to be good

        metrics = train(config, run_dir)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    return metrics["best_monitor"]  # what a sweeper (e.g. Optuna) optimises


if __name__ == "__main__":
    try:  # `-m … --resume`: finish an earlier sweep run with the same overrides
        sys.argv = resume_argv(sys.argv, config_name="config")
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    main()
