"""The user's own table (`data=csv data.path=… data.target=…`): a CSV file with a header row.

Every column but the target is a numeric feature. Errors name the file, the row (as a text
editor numbers lines, the header being line 1) and the column, so a bad cell can be found.
"""

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import MISSING

from dlbasics.data.core import DATASETS, DataSplits, SplitDataConfig, split
from dlbasics.errors import DataError
from dlbasics.schema import check, check_choice

# A numeric target with at most this many distinct integer values is taken as class labels.
MAX_INFERRED_CLASSES = 20
CSV_TASKS = ("auto", "classification", "regression")


@dataclass
class CsvDataConfig(SplitDataConfig):
    """The user's own table: a CSV file with a header row, one column of which is the target."""

    name: str = "csv"
    path: str = MISSING  # the CSV file; relative paths start in the current directory
    target: str = MISSING  # name of the column to predict; every other column is a feature
    # auto: classification when the target holds text or at most 20 distinct integers,
    # regression otherwise.
    task: str = "auto"
    delimiter: str = ","

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("data.task", self.task, CSV_TASKS)
        check(len(self.delimiter) == 1, "data.delimiter", self.delimiter, "one character")


@DATASETS.register("csv", CsvDataConfig)
def load_csv(cfg: CsvDataConfig) -> DataSplits:
    header, rows = read_rows(Path(cfg.path), cfg.delimiter)
    where = f"data.path={cfg.path}"
    if cfg.target not in header:
        raise DataError(
            f"data.target={cfg.target!r} is not a column of {where}; its columns are: "
            f"{', '.join(header)}."
        )
    if len(header) < 2:
        raise DataError(f"{where} has no feature columns besides data.target={cfg.target!r}.")
    target_column = header.index(cfg.target)
    features = [i for i in range(len(header)) if i != target_column]

    x = torch.tensor(
        [[parse_number(row[i], line, header[i], where) for i in features] for line, row in rows],
        dtype=torch.get_default_dtype(),
    )
    targets = [(line, row[target_column]) for line, row in rows]
    names = tuple(header[i] for i in features)
    task = cfg.task if cfg.task != "auto" else _infer_task(targets)
    if task == "regression":
        y = torch.tensor(
            [parse_number(value, line, cfg.target, where) for line, value in targets],
            dtype=torch.get_default_dtype(),
        )
        return split("csv", x, y, cfg, task="regression", feature_names=names)
    labels, classes = _class_indices(targets, cfg.target, where)
    return split("csv", x, labels, cfg, feature_names=names, class_names=classes)


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


def _infer_task(targets: list[tuple[int, str]]) -> str:
    try:
        values = {float(value) for _, value in targets}
    except ValueError:
        return "classification"  # text labels
    integers = all(math.isfinite(v) and v == int(v) for v in values)
    return "classification" if integers and len(values) <= MAX_INFERRED_CLASSES else "regression"


def _class_indices(
    targets: list[tuple[int, str]], column: str, where: str
) -> tuple[torch.Tensor, tuple[str, ...]]:
    """Labels (text or numbers) as class indices 0…k−1, in sorted order of the labels, and
    the labels in that order."""
    for line, value in targets:
        if not value.strip() or value.strip().lower() in ("nan", "inf", "-inf"):
            shown = repr(value.strip()) if value.strip() else "empty"
            raise DataError(
                f"{where}, row {line}, column {column!r} (the target) is {shown}; "
                "fill or drop rows with missing values."
            )
    labels = sorted({value.strip() for _, value in targets}, key=_label_order)
    if len(labels) < 2:
        raise DataError(
            f"data.target={column!r} in {where} has a single value ({labels[0]!r}): nothing "
            "to classify; for numbers to predict use data.task=regression."
        )
    index = {label: i for i, label in enumerate(labels)}
    return torch.tensor([index[value.strip()] for _, value in targets]), tuple(labels)


def _label_order(label: str) -> tuple[int, float, str]:
    """Numbers in numeric order (2 before 10), then text labels alphabetically."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)
