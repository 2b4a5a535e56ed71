"""New inputs for a trained run, read from the files users have: a CSV table of feature rows
(a header naming the columns as in training) or an MNIST-format (IDX) image file."""

from pathlib import Path

import torch
from torch import Tensor

from dlbasics.data.idx import UNSIGNED_BYTE, read_idx
from dlbasics.data.tabular import parse_number, read_rows
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
    return read_feature_table(path, preprocessing, ignored)


def read_feature_table(path: Path, preprocessing: Preprocessing, ignored: set[str]) -> Tensor:
    """The rows of a CSV table as (n, features), its columns matched to the training features
    by name (in any order); a missing feature or a column training did not have is refused."""
    header, rows = read_rows(path, _delimiter(path), str(path))
    features = preprocessing.features
    unknown = [name for name in header if name not in features and name not in ignored]
    missing = [name for name in features if name not in header]
    if unknown or missing:
        problems = []
        if missing:
            problems.append(f"lacks the feature column(s) {', '.join(_few(missing))}")
        if unknown:
            problems.append(f"has column(s) training did not have: {', '.join(_few(unknown))}")
        raise DataError(
            f"{path} {' and '.join(problems)}; it needs the {len(features)} columns "
            f"{', '.join(_few(list(features)))} (in any order)."
        )
    where = str(path)
    columns = [header.index(name) for name in features]
    values = [[parse_number(row[i], line, header[i], where) for i in columns] for line, row in rows]
    return torch.tensor(values, dtype=torch.get_default_dtype()).reshape(-1, len(features))


def _delimiter(path: Path) -> str:
    """Tab for .tsv files, else a comma."""
    return "\t" if path.suffix.lower() == ".tsv" else ","


def _few(names: list[str], shown: int = 8) -> list[str]:
    """The first ``shown`` names, and how many more there are."""
    return names if len(names) <= shown else [*names[:shown], f"… ({len(names) - shown} more)"]
