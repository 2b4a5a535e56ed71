"""Data sets by name (`data=digits`): whole splits as tensors, ready to move to the device."""

from dlbasics.data.core import DATASETS, DataSpec, DataSplits, build_data

# Importing the modules registers their data sets.
from dlbasics.data import bundled, idx, memory, sequences, tabular, toy, translation  # noqa: E402,F401  isort: skip

__all__ = ["DATASETS", "DataSpec", "DataSplits", "build_data"]
