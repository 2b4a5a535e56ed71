"""dlbasics: the fundamentals of deep learning as a Hydra-configured PyTorch framework.

Start at ``dlbasics/run.py`` (one run, end to end) and ``dlbasics/trainer.py`` (the loop).
Use a trained run with ``dlbasics.load(run_dir)`` (``dlbasics/inference.py``); train one from
Python with ``dlbasics.train(*overrides, data=…)`` (``dlbasics/api.py``).
"""

from typing import Any

from dlbasics.errors import ConfigError, DataError

__version__ = "0.1.0"
__all__ = ["ConfigError", "DataError", "load", "train"]


def train(*overrides: str, **options: Any) -> Any:
    """Train one run from Python, as ``scripts/train.py <overrides>`` does: see
    ``dlbasics.api.train`` (``data=``, ``target=``, ``run_dir=``, ``callbacks=``). Returns
    its result: ``.metrics``, ``.run_dir``, ``.model``. (torch is imported on first use.)"""
    from dlbasics.api import train as train_run

    return train_run(*overrides, **options)


def load(run_dir: Any, checkpoint: str = "best", device: str = "cpu") -> Any:
    """The trained model of the run in ``run_dir``, ready for ``predict(x)``,
    ``predict_proba(x)`` and ``.model``: see ``dlbasics.inference.load``. (Imported on first
    use: ``import dlbasics`` stays free of torch.)"""
    from dlbasics.inference import load as load_run

    return load_run(run_dir, checkpoint, device)
