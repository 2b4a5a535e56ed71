"""Tables as people have them: numbers, text categories, true/false columns and empty cells,
read with pyarrow's CSV reader (multi-threaded, typed columns) and turned into a matrix of
numbers by encoders fitted on the training rows alone (docs/your-data.md).

A column is
- numeric: numbers; a column whose cells are nearly all numbers (at least NUMERIC_SHARE, or
  all but one) is numeric, and its few text cells are errors naming their row: a stray typo
  must not turn a column of numbers into categories;
- boolean: true/false;
- categorical: text (or any column listed in ``data.categorical``), one-hot encoded: one 0/1
  column per category of the training rows; a category the training rows never had encodes
  as all zeros;
- a date: refused (drop it, or derive numbers from it).

Missing cells (empty, NA, N/A, nan, null, …) are filled with the training rows' median
(numbers) or most frequent value (booleans, categories), and a column with gaps in training
gains a 0/1 "<name>_missing" column; or they are refused, or their rows dropped
(``data.missing``). What is fitted is plain JSON, saved in the run's preprocessing.json and
applied to new rows by scripts/predict.py.
"""

import csv
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from dlbasics.errors import DataError

# Cells that mean "no value", as most tools write them.
NA_VALUES = ["", "NA", "N/A", "n/a", "na", "NaN", "nan", "NAN", "null", "NULL", "None", "none"]
NUMERIC_SHARE = 0.95  # a text column whose cells are this much numbers holds typos, not categories
SNIFF_BYTES = 64 * 1024  # of the file's start, to find its delimiter and header
DELIMITERS = ",;\t"
SNIFF_LINES = 20  # lines the delimiter must split alike
QUICK_LOOK = 1000  # first cells of a text column: mostly words there, and it is categorical
KINDS = ("numeric", "boolean", "categorical")
# A date written with / . or - between day, month and year, maybe with a time after it.
DATE = re.compile(r"\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2})?)?")


def pyarrow_csv() -> Any:
    """pyarrow's CSV module, imported only when a table is read."""
    try:
        from pyarrow import csv as arrow_csv
    except ImportError:
        raise DataError(
            "reading tables needs pyarrow, which is not installed; run `make install`."
        ) from None
    return arrow_csv


def read_table(path: Path, delimiter: str | None, where: str) -> Any:
    """The whole file as a pyarrow Table of typed columns. ``delimiter``: None to find it
    from the file's first lines (`,`, `;` or tab). Errors name the file as ``where``."""
    if not path.exists():
        raise DataError(f"{where}: no such file (relative paths start in {Path.cwd()}).")
    if not path.is_file():
        raise DataError(f"{where} is a directory, not a CSV file.")
    with open(path, "rb") as file:
        start = file.read(SNIFF_BYTES)
    try:
        sample = start.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        if error.start < len(start) - 4:  # not a character cut at the sample's end
            raise DataError(f"{where} is not a UTF-8 text file; is it really a CSV file?") from None
        sample = start[: error.start].decode("utf-8-sig")
    lines = [line for line in sample.splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{where} is empty; it needs a header row and at least one data row.")
    delimiter = delimiter or sniff_delimiter(sample)
    header = next(csv.reader([lines[0]], delimiter=delimiter))
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DataError(
            f"{where}: the header names {', '.join(map(repr, duplicates))} more than once; "
            "each column needs a name of its own."
        )
    arrow_csv = pyarrow_csv()
    bad_rows: list[Any] = []

    def refuse_row(row: Any) -> str:
        bad_rows.append(row)
        return "error"

    import pyarrow as pa

    try:
        table = arrow_csv.read_csv(
            path,
            parse_options=arrow_csv.ParseOptions(
                delimiter=delimiter, invalid_row_handler=refuse_row
            ),
            convert_options=arrow_csv.ConvertOptions(
                null_values=NA_VALUES,
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as error:
        if bad_rows:
            row = bad_rows[0]
            line = row.number or _line_with_fields(path, delimiter, row.actual_columns)
            raise DataError(
                f"{where}, row {line}: {row.actual_columns} fields, but the header has "
                f"{row.expected_columns} columns; check data.delimiter={delimiter!r} and quoting."
            ) from None
        message = str(error).splitlines()[0]
        if "UTF8" in message or "utf8" in message.lower():
            raise DataError(f"{where} is not a UTF-8 text file; is it really a CSV file?") from None
        raise DataError(f"{where} cannot be read as CSV: {message}.") from None
    if table.num_rows == 0:
        raise DataError(f"{where} has a header row but no data rows.")
    # The reader's buffers (about twice the file) go back to the system: what follows (the
    # encoded matrix) then fits where they were.
    pa.default_memory_pool().release_unused()
    return table.rename_columns([name.strip() for name in table.column_names])


def _line_with_fields(path: Path, delimiter: str, count: int) -> int | str:
    """The first row (as an editor numbers lines) of ``count`` fields, for an error message:
    pyarrow's multi-threaded reader does not know a bad row's number."""
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as file:
        reader = csv.reader(file, delimiter=delimiter)
        for fields in reader:
            if len(fields) == count and any(field.strip() for field in fields):
                return reader.line_num
    return "?"


def is_table(x: Any) -> bool:
    """Whether ``x`` is rows of named columns held in Python: a pandas DataFrame, or a list
    of dicts (one per row)."""
    if isinstance(x, list):
        return bool(x) and all(isinstance(row, dict) for row in x)
    return type(x).__name__ == "DataFrame" and type(x).__module__.startswith("pandas")


def arrow_table(rows: Any, where: str) -> Any:
    """A pandas DataFrame, or a list of dicts, as a pyarrow Table of typed columns, as
    ``read_table`` gives a file's: missing values (NaN, None) as missing cells, a pandas
    category column as its values. Errors name the rows as ``where``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        if isinstance(rows, list):
            table = pa.Table.from_pylist(rows)
        else:
            table = pa.Table.from_pandas(rows, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as error:
        raise DataError(f"{where} cannot be read as a table: {error}.") from None
    if table.num_rows == 0:
        raise DataError(f"{where} holds no rows.")
    columns = [
        pc.cast(column, column.type.value_type) if pa.types.is_dictionary(column.type) else column
        for column in table.columns
    ]
    return pa.table(columns, names=[str(name).strip() for name in table.column_names])


def sniff_delimiter(sample: str) -> str:
    """The delimiter of a CSV sample: of `,`, `;` and tab, the one that splits its first lines
    (quotes respected) into the same number of fields, more than one, the most; `,` if none
    does."""
    lines = [line for line in sample.splitlines() if line.strip()][:SNIFF_LINES]
    if len(lines) > 1 and not sample.endswith("\n"):
        lines = lines[:-1]  # cut at the sample's end
    best, best_fields = ",", 1
    for delimiter in DELIMITERS:
        counts = {len(fields) for fields in csv.reader(lines, delimiter=delimiter)}
        if len(counts) == 1 and (fields := counts.pop()) > best_fields:
            best, best_fields = delimiter, fields
    return best


def row_of(index: int) -> int:
    """A data row's number as an editor shows the line (the header is row 1; blank lines are
    not counted)."""
    return index + 2


# --- what each column is -----------------------------------------------------------------------


def column_kind(name: str, column: Any, categorical: bool, where: str) -> str:
    """numeric, boolean or categorical (``categorical``: the user said so); a date column, or
    a column of numbers with a few text cells (typos), is a DataError naming them."""
    import pyarrow as pa

    kind = column.type
    if categorical:
        return "categorical"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
        infinite = np.flatnonzero(np.isinf(values))
        if len(infinite):
            raise DataError(
                f"{where}, row {row_of(int(infinite[0]))}, column {name!r}: "
                f"{values[infinite[0]]} is not a finite number; fill or drop such rows."
            )
        return "numeric"
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_temporal(kind):
        raise DataError(
            f"{where}: column {name!r} holds dates or times, which are not features as they are; "
            f"drop it (data.drop=[{name}]) or derive numbers from it (a year, a day of the week)."
        )
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise DataError(f"{where}: column {name!r} has values of type {kind}, not supported.")
    head = [text for text in column.slice(0, QUICK_LOOK).to_pylist() if text is not None]
    if head and sum(bool(DATE.fullmatch(text.strip())) for text in head) >= NUMERIC_SHARE * len(
        head
    ):  # dates pyarrow does not read as dates (01/02/2024, 2.1.2024)
        raise DataError(
            f"{where}: column {name!r} holds dates ({head[0]!r}, …), which are not features as "
            f"they are; drop it (data.drop=[{name}]) or derive numbers from it (a year, a day "
            "of the week)."
        )
    if sum(map(is_number, head)) < len(head) / 2:  # mostly words: categories, at a glance
        return "categorical"
    texts = column.to_pylist()
    cells = [(i, text) for i, text in enumerate(texts) if text is not None]
    not_numbers = [(i, text) for i, text in cells if not is_number(text)]
    if cells and len(not_numbers) < len(cells) and (
        len(not_numbers) <= max(1, (1 - NUMERIC_SHARE) * len(cells))
    ):
        index, text = not_numbers[0]
        raise DataError(
            f"{where}, row {row_of(index)}, column {name!r}: {text!r} is not a number, in a "
            f"column of numbers ({len(cells) - len(not_numbers)} of its {len(cells)} cells); "
            "correct or empty the cell, or list the column in data.categorical."
        )
    return "categorical"


def is_number(value: Any) -> bool:
    """Whether ``value`` reads as a number ("3", "-2.5e3", "inf")."""
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


# --- encoders: fitted on the training rows, applied to any rows -------------------------------
# Each column is handled whole by pyarrow's compute functions and NumPy: no Python loop over
# cells, so a million rows take seconds, not minutes.


def fit_encoder(
    name: str, kind: str, column: Any, train: np.ndarray, max_categories: int, where: str
) -> dict[str, Any]:
    """How column ``name`` of kind ``kind`` becomes numbers, fitted on the ``train`` rows: the
    fill for missing cells, whether a "<name>_missing" column is added, a categorical
    column's categories. Plain values only: it is saved as JSON."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = column.take(pa.array(train))
    encoder: dict[str, Any] = {"name": name, "type": kind, "indicator": rows.null_count > 0}
    if kind == "categorical":
        counts = pc.value_counts(pc.cast(rows, "string").drop_null())
        categories = counts.field("values").to_pylist()
        if len(categories) > max_categories:
            raise DataError(
                f"{where}: column {name!r} has {len(categories)} categories in the training "
                f"rows, more than data.max_categories={max_categories}; an identifier column "
                f"should be dropped (data.drop=[{name}]), or raise data.max_categories."
            )
        frequency = counts.field("counts").to_pylist()
        most = categories[frequency.index(max(frequency))] if categories else None
        encoder["categories"] = sorted(categories)
        encoder["fill"] = most
        return encoder
    values = numbers(rows)
    known = values[~np.isnan(values)]
    if kind == "numeric":
        encoder["fill"] = float(np.median(known)) if len(known) else 0.0
    else:  # boolean: the more frequent of the two
        encoder["fill"] = bool(known.mean() >= 0.5) if len(known) else False
    return encoder


def encoded_names(encoder: dict[str, Any]) -> list[str]:
    """The names of the matrix columns one column's encoder gives."""
    name = encoder["name"]
    if encoder["type"] == "categorical":
        names = [f"{name}={category}" for category in encoder["categories"]]
    else:
        names = [name]
    return names + ([f"{name}_missing"] if encoder["indicator"] else [])


def encode(
    columns: dict[str, Any],
    encoders: list[dict[str, Any]],
    where: str,
    refuse_missing: bool = False,
) -> np.ndarray:
    """The rows of ``columns`` (name → pyarrow column) as a float32 matrix, column by column
    as ``encoders`` say. ``refuse_missing``: a missing cell is a DataError naming its row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(next(iter(columns.values()))) if columns else 0
    width = sum(len(encoded_names(e)) for e in encoders)
    matrix = np.zeros((n, width), dtype=np.float32)
    at = 0
    for encoder in encoders:
        column, name = columns[encoder["name"]], encoder["name"]
        missing = np.asarray(column.is_null(), dtype=bool) if column.null_count else None
        if refuse_missing and missing is not None:
            raise DataError(
                f"{where}, row {row_of(int(np.flatnonzero(missing)[0]))}, column {name!r} is "
                "empty (a missing value); fill it, or choose data.missing=impute or drop."
            )
        if encoder["type"] == "categorical":
            categories = encoder["categories"]
            filled = pc.fill_null(pc.cast(column, "string"), encoder["fill"] or "")
            found = pc.index_in(filled, value_set=pa.array(categories, pa.string()))
            # a category the training rows never had: no index, all zeros
            positions = np.asarray(found.fill_null(-1), dtype=np.int64)
            seen = np.flatnonzero(positions >= 0)
            matrix[seen, at + positions[seen]] = 1.0
            at += len(categories)
        else:
            values = numbers(column)
            if missing is not None:
                values[missing] = float(encoder["fill"])
            matrix[:, at] = values
            at += 1
        if encoder["indicator"]:
            if missing is not None:
                matrix[:, at] = missing
            at += 1
    return matrix


def numbers(column: Any) -> np.ndarray:
    """A numeric or boolean column as float64, NaN where a cell is missing."""
    import pyarrow.compute as pc

    return np.array(pc.cast(column, "float64").to_numpy(zero_copy_only=False), np.float64)


def summary_lines(
    encoders: list[dict[str, Any]], missing_counts: dict[str, int], shown: int = 20
) -> list[str]:
    """One line per feature (the first ``shown``): name, type, missing cells, categories; and
    the counts by type."""
    by_kind = {kind: sum(e["type"] == kind for e in encoders) for kind in KINDS}
    counts = ", ".join(f"{count} {kind}" for kind, count in by_kind.items() if count)
    lines = [f"{len(encoders)} features: {counts}"]
    for encoder in encoders[:shown]:
        extra = ""
        if "categories" in encoder:
            count = len(encoder["categories"])
            extra = f", {count} {'category' if count == 1 else 'categories'}"
        gaps = missing_counts.get(encoder["name"], 0)
        lines.append(f"  {encoder['name']}: {encoder['type']}{extra}, {gaps} missing")
    if len(encoders) > shown:
        lines.append(f"  … and {len(encoders) - shown} more")
    return lines


def check_names(names: list[str], columns: list[str], key: str, where: str) -> None:
    """Every name of ``key`` (data.drop, data.columns, …) is a column of the table."""
    unknown = [name for name in names if name not in columns]
    if unknown:
        raise DataError(
            f"{key} names {', '.join(map(repr, unknown))}, not a column of {where}; its columns "
            f"are: {', '.join(columns)}."
        )


def label_order(label: str) -> tuple[int, float, str]:
    """Numbers in numeric order (2 before 10), then text labels alphabetically."""
    try:
        number = float(label)
    except ValueError:
        return (1, 0.0, label)
    return (0, number if math.isfinite(number) else 0.0, label)

