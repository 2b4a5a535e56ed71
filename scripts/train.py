"""Train a model from the config tree in configs/.

.venv/bin/python scripts/train.py                           # MLP on digits
.venv/bin/python scripts/train.py model=perceptron data=or optim=sgd
.venv/bin/python scripts/train.py -m model=mlp act=relu,tanh   # a sweep (Hydra multirun)
.venv/bin/python scripts/train.py -m model=mlp act=relu,tanh --resume   # finish that sweep
.venv/bin/python scripts/train.py --help                    # groups, choices, their keys
.venv/bin/python scripts/train.py --help model=cnn          # the keys of model=cnn
torchrun --standalone --nproc_per_node=2 scripts/train.py   # data-parallel (distributed.py)

Exit status (dlbasics/cli.py): 0 done, 2 a mistake in the input (one line on stderr),
130/143 stopped by SIGINT/SIGTERM (after saving checkpoints/last.pt once training has begun),
1 a bug. A sweep exits 0 when every job finished, 1 when some failed, 2 for a mistake found
before any job ran (dlbasics/sweeps/callback.py).

Torch (seconds to load) is imported only once a run is about to be built: ``--help`` and a
mistake in the config answer without it.
"""

import os
import signal
import sys
from pathlib import Path
from typing import Any

# Ctrl-C is held back while the script starts, Hydra composes the config and torch loads, then
# interrupts (cli.interrupt_on_ctrl_c): a KeyboardInterrupt raised in the middle of OmegaConf's
# updates comes out as another error, with a traceback, and one raised while torch imports
# numpy is lost (the run goes on).
if hasattr(signal, "pthread_sigmask"):  # POSIX
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from dlbasics.cli import fail, interrupt_on_ctrl_c, run_app, task  # noqa: E402
from dlbasics.config import register_configs, validate  # noqa: E402
from dlbasics.config_guard import harden_resolvers, refuse_code_in_arguments  # noqa: E402
from dlbasics.errors import UserError  # noqa: E402
from dlbasics.help import group_choices, help_text  # noqa: E402
from dlbasics.sweeps.overrides import keys_beside_swept_groups  # noqa: E402
from dlbasics.sweeps.resume import resume_argv  # noqa: E402

register_configs()
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
GROUPS = list(group_choices(CONFIGS))  # the config groups: model, optim, experiment, …

# Under torchrun every rank runs this script. Rank 0 writes the run directory; the others write
# nothing: no directory of their own (their clocks could name another), no .hydra/, no train.log.
OTHER_RANKS = ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=stdout"]


@task
def train_one(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    config = validate(cfg)
    from dlbasics.run import train  # torch: now that the config is known to be right

    interrupt_on_ctrl_c()

    # Its TensorBoard run, tb/<overrides>, is named as a sweep's jobs are (sweeps/job.py):
    # `tensorboard --logdir outputs` tells runs apart by what they changed.
    return train(config, run_dir, name=HydraConfig.get().job.override_dirname)


@hydra.main(version_base="1.3", config_path="../configs", config_name="config")
def main(cfg: DictConfig) -> float | None:
    harden_resolvers()  # again: a launcher's worker process (joblib, submitit) starts here
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if HydraConfig.get().mode == RunMode.MULTIRUN:  # a failed job is recorded, the sweep goes on
        if "RANK" in os.environ:
            fail(
                "-m (a sweep) under torchrun would run every job of the sweep on every rank; "
                "torchrun trains one run across its processes. Start torchrun once per "
                "configuration, or sweep with one process per job (e.g. "
                "hydra/launcher=submitit_slurm on a cluster)."
            )
        from dlbasics.sweeps.job import run_sweep_job  # torch, as train_one's

        interrupt_on_ctrl_c()
        return run_sweep_job(cfg, run_dir)
    return train_one(cfg, run_dir)


if __name__ == "__main__":
    harden_resolvers()  # no interpolation makes a dict or a list (config_guard.py)
    try:
        # What the user typed may not run code or reach hydra.* beyond its allowlist; the
        # overrides added below are this script's own.
        refuse_code_in_arguments(sys.argv[1:])
        # -m optim=momentum,nesterov optim.momentum=0.5: the key set in each job, where the
        # job's own choice of its group is known (not in the sweep's base config)
        sys.argv = keys_beside_swept_groups(sys.argv, GROUPS)
        # `-m … --resume`: finish an earlier sweep run with the same overrides
        sys.argv = resume_argv(sys.argv, config_name="config")
        if {"--help", "-h"} & set(sys.argv[1:]):  # ours, from the schemas; --hydra-help: Hydra's
            print(help_text(CONFIGS, sys.argv[1:]))
            sys.exit(0)
    except UserError as error:
        fail(str(error))
    if os.environ.get("RANK", "0") != "0":
        sys.argv += OTHER_RANKS
    run_app(main, sys.argv[1:])  # exits 2 on a mistake, 130/143 on a signal (dlbasics/cli.py)
