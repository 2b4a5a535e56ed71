"""The user's own table (`data=csv data.path=… data.target=…`): a CSV (or TSV) file with a
header row, numbers, text categories, true/false columns and gaps (dlbasics/data/table.py).

Errors name the file, the row (as a text editor numbers lines, the header being row 1) and the
column, so a bad cell can be found.
"""

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlbasics.data.core import (
    DATASETS,
    DataSpec,
    DataSplits,
    classification_spec,
    make_splits,
    split_indices,
)
from dlbasics.data.table import (
    check_names,
    column_kind,
    encode,
    encoded_names,
    fit_encoder,
    is_number,
    label_order,
    numbers,
    read_table,
    row_of,
    summary_lines,
)
from dlbasics.errors import DataError
from dlbasics.schemas.data import CsvDataConfig, TableDataConfig

log = logging.getLogger("dlbasics")

# A numeric target with at most this many distinct integer values is taken as class labels.
MAX_INFERRED_CLASSES = 20


@DATASETS.register("csv", CsvDataConfig)
def load_csv(cfg: CsvDataConfig) -> DataSplits:
    where = f"data.path={cfg.path}"
    return table_splits(read_table(Path(cfg.path).expanduser(), cfg.delimiter, where), cfg, where)


def table_splits(table: Any, cfg: TableDataConfig, where: str) -> DataSplits:
    """A table (a pyarrow Table: a CSV file's, or a pandas DataFrame's) as the splits of data
    set ``cfg.name``: features encoded by encoders fitted on the training rows, the target as
    class indices or values. ``where`` names the table in errors."""
    features = _feature_columns(cfg, table.column_names, where)
    # What each column is, judged on every row (errors name rows as the file numbers them).
    kinds = {
        name: column_kind(name, table.column(name), name in cfg.categorical, where)
        for name in features
    }
    kept = _rows_kept(table, cfg, features, where)
    if len(kept) < table.num_rows:
        table = table.take(kept)
    columns = {name: table.column(name) for name in features}
    ignored = [name for name in table.column_names if name not in features]

    y, task, classes = _targets(table.column(cfg.target), cfg, where, kept)
    train, val, test = split_indices(cfg.name, y, cfg, stratified=task == "classification")
    encoders = [
        fit_encoder(name, kinds[name], columns[name], train.numpy(), cfg.max_categories, where)
        for name in features
    ]
    lines = summary_lines(encoders, {name: columns[name].null_count for name in features})
    log.info(f"{where}: {table.num_rows} rows, {lines[0]}")
    for line in lines[1:]:
        log.info(line)
    del table
    # Each split encoded on its own: the encoded table is never held twice (whole, and split).
    parts = [
        (torch.from_numpy(encode(_take(columns, split), encoders, where)), y[split])
        for split in (train, val, test)
    ]
    del columns
    if task == "classification":
        spec = classification_spec(cfg.name, parts[0][0], y)
    else:
        spec = DataSpec(cfg.name, "regression", (parts[0][0].shape[1],), 1)
    data = make_splits(spec, *parts, cfg.standardize, bool(cfg.unit_range))
    names = tuple(name for encoder in encoders for name in encoded_names(encoder))
    fitted = {"target": cfg.target, "ignored": ignored, "columns": encoders, "missing": cfg.missing}
    return replace(data, feature_names=names, class_names=classes, table=fitted)


def _feature_columns(cfg: TableDataConfig, names: list[str], where: str) -> list[str]:
    """The feature columns: data.columns, else every column but the target and data.drop."""
    if cfg.target not in names:
        raise DataError(
            f"data.target={cfg.target!r} is not a column of {where}; its columns are: "
            f"{', '.join(names)}."
        )
    for key in ("drop", "categorical", "columns"):
        check_names(list(getattr(cfg, key) or []), names, f"data.{key}", where)
    chosen = cfg.columns if cfg.columns is not None else [n for n in names if n not in cfg.drop]
    features = [name for name in chosen if name != cfg.target]
    if not features:
        raise DataError(f"{where} has no feature columns besides data.target={cfg.target!r}.")
    return features


def _rows_kept(table: Any, cfg: TableDataConfig, features: list[str], where: str) -> np.ndarray:
    """The indices of the rows to learn from: those with a target (the others are counted in
    the log) and, with data.missing=drop, no gap; data.missing=error refuses the first gap."""
    keep = np.asarray(table.column(cfg.target).is_valid())
    if not keep.all():
        log.info(f"{where}: {int((~keep).sum())} rows without a value of {cfg.target!r} dropped")
    gaps = np.zeros(table.num_rows, bool)
    for name in features:
        gaps |= np.asarray(table.column(name).is_null())
    gaps &= keep
    if cfg.missing == "error" and gaps.any():
        row = int(np.flatnonzero(gaps)[0])
        name = next(n for n in features if not table.column(n)[row].is_valid)
        raise DataError(
            f"{where}, row {row_of(row)}, column {name!r} is empty (a missing value); fill it, "
            "or choose data.missing=impute or drop."
        )
    if cfg.missing == "drop" and gaps.any():
        log.info(f"{where}: {int(gaps.sum())} rows with missing values dropped")
        keep &= ~gaps
    if not keep.any():
        raise DataError(f"{where} has no row with a value for every column it needs.")
    return np.flatnonzero(keep)


def _take(columns: dict[str, Any], rows: torch.Tensor) -> dict[str, Any]:
    """The cells of ``rows`` of every column."""
    indices = rows.numpy()
    return {name: column.take(indices) for name, column in columns.items()}


def _targets(
    column: Any, cfg: TableDataConfig, where: str, rows: np.ndarray
) -> tuple[torch.Tensor, str, Any]:
    """The target column as class indices (and the class names) or as numbers; the task.
    ``rows``: each value's row index in the file, for errors."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
    distinct = pc.unique(column).to_pylist()
    if cfg.task == "regression" or (cfg.task == "auto" and numeric and not _few_integers(distinct)):
        if not numeric:
            values = column.to_pylist()
            bad = next(i for i, v in enumerate(values) if not is_number(v))
            raise DataError(
                f"{where}, row {row_of(int(rows[bad]))}, column {cfg.target!r} (the target): "
                f"{values[bad]!r} is not a number; data.task=regression needs numbers."
            )
        values = numbers(column)
        infinite = np.flatnonzero(~np.isfinite(values))
        if len(infinite):
            raise DataError(
                f"{where}, row {row_of(int(rows[infinite[0]]))}, column {cfg.target!r} (the "
                f"target) is {values[infinite[0]]}, not a finite number."
            )
        return torch.from_numpy(values).to(torch.get_default_dtype()), "regression", None
    # Labels as text (3.0 → "3", True → "true"), numbered in sorted order.
    labels = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
    classes = sorted(pc.unique(labels).to_pylist(), key=label_order)
    if len(classes) < 2:
        raise DataError(
            f"data.target={cfg.target!r} in {where} has a single value ({classes[0]!r}): nothing "
            "to classify; for numbers to predict use data.task=regression."
        )
    index = pc.index_in(labels, value_set=pa.array(classes, pa.string()))
    return torch.from_numpy(np.asarray(index, np.int64)), "classification", tuple(classes)


def _few_integers(distinct: list[Any]) -> bool:
    """Whether numbers are class labels: whole numbers, at most MAX_INFERRED_CLASSES of them."""
    return len(distinct) <= MAX_INFERRED_CLASSES and all(float(v).is_integer() for v in distinct)
