"""New inputs for a trained run, as users have them: a CSV table of feature rows (a header
naming the columns as in training; for a run trained on a table, its columns as they were,
encoded as training encoded them) or an MNIST-format (IDX) image file; in Python, the same
rows as a pandas DataFrame or a list of dicts."""

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dlbasics.data.idx import UNSIGNED_BYTE, read_idx
from dlbasics.data.table import (
    arrow_table,
    column_kind,
    encode,
    is_table,
    numbers,
    read_table,
    row_of,
)
from dlbasics.errors import DataError
from dlbasics.preprocessing import Preprocessing

IDX_IMAGES_MAGIC = (UNSIGNED_BYTE << 8 | 3).to_bytes(4, "big")  # unsigned bytes, 3 dimensions
GZIP_MAGIC = b"\x1f\x8b"


def read_inputs(path: Path, preprocessing: Preprocessing, ignored: set[str]) -> Tensor:
    """Raw inputs from ``path``: IDX images (gzipped or not) when the file starts as one does,
    else a CSV table whose columns are the training features (``ignored`` columns, such as the
    training target, are skipped)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: no such file (relative paths start in {Path.cwd()}).")
    with open(path, "rb") as file:
        start = file.read(4)
    if start[:2] == GZIP_MAGIC or start == IDX_IMAGES_MAGIC:
        images = read_idx(path, "images").unsqueeze(1).to(torch.get_default_dtype())
        return preprocessing.as_samples(images, f"the images of {path} ({images.shape[2]}×"
                                        f"{images.shape[3]} pixels)")
    table = read_table(path, None, str(path))
    if preprocessing.table is not None:  # a table of numbers, categories and gaps
        return table_rows(table, preprocessing, str(path))
    return feature_table(table, preprocessing, ignored, str(path))


def named_rows(x: Any, preprocessing: Preprocessing) -> Any:
    """What a Python user holds as a model's raw inputs: a pandas DataFrame or a list of
    dicts (rows of named columns) read as a CSV file of them is, columns matched by name
    (``read_inputs``); anything else (arrays, tensors, lists of numbers) as it is."""
    if not is_table(x):
        return x
    where = "the DataFrame" if not isinstance(x, list) else "the rows (a list of dicts)"
    table = arrow_table(x, where)
    if preprocessing.table is not None:
        return table_rows(table, preprocessing, where)
    return feature_table(table, preprocessing, set(), where)


def table_rows(table: Any, preprocessing: Preprocessing, where: str) -> Tensor:
    """The rows of a table (a pyarrow Table) as the features the run's table encoders make
    of them (preprocessing.json's ``table``): columns matched by name, the training target
    and the columns training did not use ignored, missing cells filled as in training.
    ``where`` names the table in errors."""
    fitted = preprocessing.table
    needed = [encoder["name"] for encoder in fitted["columns"]]
    ignored = {fitted["target"], *fitted["ignored"]}
    _check_columns(where, table.column_names, needed, ignored)
    columns = {}
    for encoder in fitted["columns"]:
        name, column = encoder["name"], table.column(encoder["name"])
        if column.null_count < len(column):  # a column of gaps only is any type
            kind = column_kind(name, column, encoder["type"] == "categorical", where)
            if kind != encoder["type"]:
                raise DataError(
                    f"{where}: column {name!r} holds {kind} values, but the model was trained "
                    f"on {encoder['type']} ones."
                )
        columns[name] = column
    refuse = fitted["missing"] == "error"  # as training did; impute and drop fill them
    return torch.from_numpy(encode(columns, fitted["columns"], where, refuse_missing=refuse))


def _check_columns(where: str, header: list[str], needed: list[str], ignored: set[str]) -> None:
    """Refuse a table that lacks a needed column or has one training did not have."""
    unknown = [name for name in header if name not in needed and name not in ignored]
    missing = [name for name in needed if name not in header]
    if unknown or missing:
        problems = []
        if missing:
            problems.append(f"lacks the feature column(s) {', '.join(_few(missing))}")
        if unknown:
            problems.append(f"has column(s) training did not have: {', '.join(_few(unknown))}")
        raise DataError(
            f"{where} {' and '.join(problems)}; it needs the {len(needed)} columns "
            f"{', '.join(_few(needed))} (in any order)."
        )


def feature_table(
    table: Any, preprocessing: Preprocessing, ignored: set[str], where: str
) -> Tensor:
    """The rows of a table of numbers (a pyarrow Table) as (n, features), its columns matched
    to the training features by name (in any order); a missing feature, a column training did
    not have, a cell that is not a number or an empty one is refused, naming it."""
    features = list(preprocessing.features)
    _check_columns(where, table.column_names, features, ignored)
    values = []
    for name in features:
        column = table.column(name)
        if column_kind(name, column, False, where) != "numeric":
            raise DataError(f"{where}: column {name!r} holds text; the model takes numbers.")
        if column.null_count:
            row = int(np.flatnonzero(np.asarray(column.is_null()))[0])
            raise DataError(f"{where}, row {row_of(row)}, column {name!r} is empty.")
        values.append(numbers(column))
    return torch.from_numpy(np.stack(values, axis=1)).to(torch.get_default_dtype())


def _few(names: list[str], shown: int = 8) -> list[str]:
    """The first ``shown`` names, and how many more there are."""
    return names if len(names) <= shown else [*names[:shown], f"… ({len(names) - shown} more)"]
