"""dlbasics: the fundamentals of deep learning as a Hydra-configured PyTorch framework.

Start at ``dlbasics/run.py`` (one run, end to end) and ``dlbasics/trainer.py`` (the loop).
"""

__version__ = "0.1.0"
