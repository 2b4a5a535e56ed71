"""Train a model from the config tree in configs/.

python scripts/train.py                           # MLP on digits
python scripts/train.py model=perceptron data=or optim=sgd
python scripts/train.py -m model=mlp act=relu,tanh   # a sweep (Hydra multirun)
python scripts/train.py --help                    # groups and their choices

Exit status (dlbasics/cli.py): 0 done, 2 a mistake in the input (one line on stderr),
130/143 stopped by SIGINT/SIGTERM after saving checkpoints/last.pt, 1 a bug.
"""

import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from dlbasics.cli import run_app, task
from dlbasics.config import register_configs, validate

register_configs()


@hydra.main(version_base="1.3", config_path="../configs", config_name="config")
@task
def main(cfg: DictConfig) -> dict[str, Any]:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    config = validate(cfg)
    from dlbasics.run import train  # imports torch: after the config is known to be good

    return train(config, run_dir)


if __name__ == "__main__":
    run_app(main, sys.argv[1:])
