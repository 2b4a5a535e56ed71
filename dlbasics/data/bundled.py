"""scikit-learn's bundled data sets: shipped inside the package, nothing is downloaded.

The CSV files are read directly from scikit-learn's data directory, found without importing
scikit-learn: importing it (with SciPy) takes about 1.5 s, more than a whole run of the digits
MLP. The values are those of ``sklearn.datasets.load_*`` (tests/test_bundled_data.py).
"""

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from dlbasics.config import BundledDataConfig
from dlbasics.data.core import DATASETS, DataSplits, split
from dlbasics.errors import DataError

# name → (file in sklearn/datasets/data, task); classification tasks are binary or multi-class
# by their labels.
BUNDLED = {
    "digits": ("digits.csv.gz", None),  # 1797 8×8 images of handwritten digits, 10 classes
    "iris": ("iris.csv", None),  # 150 flowers, 4 measurements, 3 species
    "wine": ("wine_data.csv", None),  # 178 wines, 13 chemical measurements, 3 cultivars
    "breast_cancer": ("breast_cancer.csv", None),  # 569 tumours, 30 features, binary
    "diabetes": ("diabetes_data_raw.csv.gz", "regression"),  # 442 patients, 10 features
}
# Images keep their shape, (channels, height, width), so a CNN sees pixels' neighbours; dense
# models flatten any sample.
IMAGE_SHAPES = {"digits": (1, 8, 8)}


def sklearn_data_file(file_name: str) -> Path:
    """A data file of scikit-learn's, located without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the bundled data sets (digits, iris, wine, breast_cancer, diabetes) come with "
            "scikit-learn, which is not installed; run `make install`."
        )
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / file_name
    if not path.is_file():
        raise DataError(f"scikit-learn's data file {path} is missing; reinstall scikit-learn.")
    return path


def read_bundled(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(features, targets) of a bundled data set, as scikit-learn's ``load_<name>()``."""
    file_name, _ = BUNDLED[name]
    path = sklearn_data_file(file_name)
    if name == "diabetes":  # features and target in two files; features centred and scaled
        x = np.loadtxt(path)
        y = np.loadtxt(sklearn_data_file("diabetes_target.csv.gz"))
        x = (x - x.mean(axis=0)) / x.std(axis=0) / len(x) ** 0.5  # as load_diabetes(scaled=True)
        return x, y
    opened = gzip.open(path, "rt") if path.suffix == ".gz" else path.open()
    with opened as rows:
        # The plain CSV files start with a row "n_samples,n_features,class names…".
        table = np.loadtxt(rows, delimiter=",", skiprows=0 if path.suffix == ".gz" else 1)
    return table[:, :-1], table[:, -1].astype(np.int64)


def bundled_tensors(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, labels) as tensors; images as (n, channels, height, width)."""
    x, y = read_bundled(name)
    features = torch.as_tensor(x, dtype=torch.get_default_dtype())
    if name in IMAGE_SHAPES:
        features = features.reshape(-1, *IMAGE_SHAPES[name])
    return features, torch.as_tensor(y)


def _load(cfg: BundledDataConfig) -> DataSplits:
    x, y = bundled_tensors(cfg.name)
    return split(cfg.name, x, y, cfg, task=BUNDLED[cfg.name][1])


for _name in BUNDLED:
    DATASETS.register(_name)(_load)
