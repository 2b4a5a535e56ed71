"""dlbasics: the fundamentals of deep learning as a Hydra-configured PyTorch framework.

Start at ``dlbasics/run.py`` (one run, end to end) and ``dlbasics/trainer.py`` (the loop).
Use a trained run with ``dlbasics.load(run_dir)`` (``dlbasics/inference.py``).
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["load"]


def load(run_dir: Any, checkpoint: str = "best", device: str = "cpu") -> Any:
    """The trained model of the run in ``run_dir``, ready for ``predict(x)``,
    ``predict_proba(x)`` and ``.model``: see ``dlbasics.inference.load``. (Imported on first
    use: ``import dlbasics`` stays free of torch.)"""
    from dlbasics.inference import load as load_run

    return load_run(run_dir, checkpoint, device)
