"""New inputs for a trained run, read from the files users have: a CSV table of feature rows
(a header naming the columns as in training; for a run trained on a table, its columns as
they were, encoded as training encoded them) or an MNIST-format (IDX) image file."""

import csv
import math
from pathlib import Path

import torch
from torch import Tensor

from dlbasics.data.idx import UNSIGNED_BYTE, read_idx
from dlbasics.data.table import column_kind, encode, read_table
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
    if preprocessing.table is not None:  # a table of numbers, categories and gaps
        return read_table_rows(path, preprocessing)
    return read_feature_table(path, preprocessing, ignored)


def read_table_rows(path: Path, preprocessing: Preprocessing) -> Tensor:
    """The rows of a table file as the features the run's table encoders make of them
    (preprocessing.json's ``table``): columns matched by name, the training target and the
    columns training did not use ignored, missing cells filled as in training."""
    fitted = preprocessing.table
    where = str(path)
    table = read_table(path, None, where)
    needed = [encoder["name"] for encoder in fitted["columns"]]
    ignored = {fitted["target"], *fitted["ignored"]}
    _check_columns(path, table.column_names, needed, ignored)
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


def _check_columns(path: Path, header: list[str], needed: list[str], ignored: set[str]) -> None:
    """Refuse a file that lacks a needed column or has one training did not have."""
    unknown = [name for name in header if name not in needed and name not in ignored]
    missing = [name for name in needed if name not in header]
    if unknown or missing:
        problems = []
        if missing:
            problems.append(f"lacks the feature column(s) {', '.join(_few(missing))}")
        if unknown:
            problems.append(f"has column(s) training did not have: {', '.join(_few(unknown))}")
        raise DataError(
            f"{path} {' and '.join(problems)}; it needs the {len(needed)} columns "
            f"{', '.join(_few(needed))} (in any order)."
        )


def read_feature_table(path: Path, preprocessing: Preprocessing, ignored: set[str]) -> Tensor:
    """The rows of a CSV table as (n, features), its columns matched to the training features
    by name (in any order); a missing feature or a column training did not have is refused."""
    header, rows = read_rows(path, _delimiter(path), str(path))
    features = preprocessing.features
    _check_columns(path, header, list(features), ignored)
    where = str(path)
    columns = [header.index(name) for name in features]
    values = [[parse_number(row[i], line, header[i], where) for i in columns] for line, row in rows]
    return torch.tensor(values, dtype=torch.get_default_dtype()).reshape(-1, len(features))


def read_rows(
    path: Path, delimiter: str, where: str | None = None
) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the (line number, fields) of every non-empty row; errors name the file
    as ``where`` (default: data.path=<path>)."""
    where = where or f"data.path={path}"
    if not path.exists():
        raise DataError(f"{where}: no such file (relative paths start in {Path.cwd()}).")
    if not path.is_file():
        raise DataError(f"{where} is a directory, not a CSV file.")
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            lines = [
                (n, fields) for n, fields in enumerate(csv.reader(file, delimiter=delimiter), 1)
            ]
    except UnicodeDecodeError:
        raise DataError(f"{where} is not a UTF-8 text file; is it really a CSV file?") from None
    except csv.Error as error:
        raise DataError(f"{where} cannot be read as CSV: {error}.") from None
    lines = [(n, fields) for n, fields in lines if any(field.strip() for field in fields)]
    if not lines:
        raise DataError(f"{where} is empty; it needs a header row and at least one data row.")
    (_, header), rows = lines[0], lines[1:]
    header = [name.strip() for name in header]
    if not rows:
        raise DataError(f"{where} has a header row but no data rows.")
    for line, fields in rows:
        if len(fields) != len(header):
            raise DataError(
                f"{where}, row {line}: {len(fields)} fields, but the header has {len(header)} "
                f"columns; check data.delimiter={delimiter!r} and quoting."
            )
    return header, rows


def parse_number(text: str, line: int, column: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        shown = f"{text!r} is not a number" if text.strip() else "is empty"
        raise DataError(
            f"{where}, row {line}, column {column!r}: {shown}; every feature column must be "
            "numeric (fill or drop such rows, or encode text as numbers)."
        ) from None
    if not math.isfinite(value):
        raise DataError(
            f"{where}, row {line}, column {column!r}: {text.strip()!r} is not a finite number; "
            "fill or drop rows with missing values."
        )
    return value


def _delimiter(path: Path) -> str:
    """Tab for .tsv files, else a comma."""
    return "\t" if path.suffix.lower() == ".tsv" else ","


def _few(names: list[str], shown: int = 8) -> list[str]:
    """The first ``shown`` names, and how many more there are."""
    return names if len(names) <= shown else [*names[:shown], f"… ({len(names) - shown} more)"]
