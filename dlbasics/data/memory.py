"""Data a Python session holds, handed to ``dlbasics.train(data=…)`` (dlbasics/api.py):
arrays ``(X, y)`` (data=arrays) or a pandas DataFrame with a target column (data=dataframe).

Such data is not a file: the run records what it was (its config, ``preprocessing.json``),
not the data itself. ``dlbasics.train`` puts it in ``HELD`` for the length of the run, where
the data set's builder finds it; anywhere else (``scripts/train.py data=arrays``,
``scripts/evaluate.py`` on such a run) the builder says to pass data instead.

A DataFrame is encoded exactly as data=csv encodes a file (data/tabular.py): the same column
types, encoders, missing cells and target rules. Arrays follow the target rules too: y of
text, true/false or at most 20 distinct integers holds class labels, anything else values.
"""

from contextvars import ContextVar
from typing import Any

import numpy as np
import torch

from dlbasics.data.core import DATASETS, DataSplits, split
from dlbasics.data.table import arrow_table, label_order
from dlbasics.data.tabular import MAX_INFERRED_CLASSES, table_splits
from dlbasics.errors import DataError
from dlbasics.schemas.data import ArrayDataConfig, DataFrameConfig

# The data of the run under way in this thread (dlbasics.train sets it); None outside one.
HELD: ContextVar[Any] = ContextVar("dlbasics_held_data", default=None)


def held_data(name: str) -> Any:
    """The data ``dlbasics.train`` holds for the run under way, or a DataError saying where
    data=``name`` comes from and what to pass instead."""
    held = HELD.get()
    if held is None:
        raise DataError(
            f"data={name} is data a Python session held (dlbasics.train(data=…)); it is not "
            "saved with a run. Pass the data to use: data=NAME or data=csv data.path=… "
            "on the command line, or dlbasics.load(run).predict(X) in Python."
        )
    return held


@DATASETS.register("arrays", ArrayDataConfig)
def load_arrays(cfg: ArrayDataConfig) -> DataSplits:
    x, y = held_data(cfg.name)
    return array_splits(x, y, cfg)


@DATASETS.register("dataframe", DataFrameConfig)
def load_dataframe(cfg: DataFrameConfig) -> DataSplits:
    where = "data (the DataFrame)"
    return table_splits(arrow_table(held_data(cfg.name), where), cfg, where)


# --- arrays ------------------------------------------------------------------------------------


def array_splits(x: Any, y: Any, cfg: ArrayDataConfig) -> DataSplits:
    """``(X, y)`` as the splits of data=arrays: X's rows (or samples of any shape) as float
    inputs, standardised as cfg says; y as class indices (with their labels) or values."""
    names = None
    if hasattr(x, "columns"):  # a DataFrame of features: its column names name them
        names = tuple(str(name) for name in x.columns)
    inputs = torch.tensor(_numbers(x, "X"), dtype=torch.get_default_dtype())
    targets = _numbers(y, "y", numeric=False)
    if inputs.ndim < 2 or len(inputs) != len(targets):
        raise DataError(
            f"data=(X, y): X has shape {tuple(inputs.shape)} and y {targets.shape}; X needs "
            "one sample per row (n, features) and y one label or value per sample (n,)."
        )
    bad = (~torch.isfinite(inputs)).flatten(1).any(dim=1).nonzero()
    if len(bad):
        raise DataError(
            f"data=(X, y): X[{int(bad[0])}] holds NaN or infinite values; fill or drop such "
            "rows, or give a DataFrame with target=… (its gaps are filled as data=csv's)."
        )
    y_tensor, task, classes = array_targets(targets, cfg.task)
    if task == "classification":
        return split(cfg.name, inputs, y_tensor, cfg, feature_names=names, class_names=classes)
    return split(cfg.name, inputs, y_tensor, cfg, task="regression", feature_names=names)


def array_targets(y: np.ndarray, task: str) -> tuple[torch.Tensor, str, tuple[str, ...] | None]:
    """y as class indices (classification; labels as text, ordered as data=csv orders them)
    or float values (regression), and which task it is; ``task`` auto decides as data=csv."""
    numeric = y.dtype.kind in "iuf"
    values = np.unique(y) if y.ndim == 1 else None
    few_integers = (
        values is not None
        and len(values) <= MAX_INFERRED_CLASSES
        and bool(np.all(np.mod(values, 1) == 0) if numeric else False)
    )
    if task == "regression" or (task == "auto" and numeric and not few_integers):
        if not numeric:
            raise DataError(
                f"data=(X, y): y holds {y.dtype} values; data.task=regression needs numbers."
            )
        if not np.isfinite(y).all():
            raise DataError("data=(X, y): y holds NaN or infinite values; drop such samples.")
        return torch.as_tensor(y, dtype=torch.get_default_dtype()), "regression", None
    if values is None:
        raise DataError(f"data=(X, y): y has shape {y.shape}; classes need one label per sample.")
    values, inverse = np.unique(y, return_inverse=True)
    names = [_label_text(value) for value in values]
    if len(names) < 2:
        raise DataError(
            f"data=(X, y): y has a single value ({names[0]!r}): nothing to classify; for "
            "numbers to predict use data.task=regression."
        )
    order = sorted(range(len(names)), key=lambda i: label_order(names[i]))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    indices = torch.from_numpy(rank[inverse.reshape(-1)])
    return indices, "classification", tuple(names[i] for i in order)


def _label_text(value: Any) -> str:
    """A class label as text, as data=csv writes its target's: 3.0 → "3", True → "true"."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _numbers(values: Any, what: str, numeric: bool = True) -> np.ndarray:
    """A NumPy array, a torch tensor, a pandas object or a list as a NumPy array (of numbers,
    where ``numeric``); ``what`` names it in errors."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if numeric and array.dtype.kind not in "biuf":
        raise DataError(
            f"data=(X, y): {what} holds {array.dtype} values, not numbers; a table of text "
            "columns is given as one DataFrame with its target: data=frame, target='column'."
        )
    return array
