"""scikit-learn's bundled data sets: shipped inside the package, nothing is downloaded."""

import torch

from dlbasics.config import BundledDataConfig
from dlbasics.data.core import DATASETS, DataSplits, split

# name → (scikit-learn loader, task); classification tasks are binary or multi-class by labels.
BUNDLED = {
    "digits": ("load_digits", None),  # 1797 8×8 images of handwritten digits, 10 classes
    "iris": ("load_iris", None),  # 150 flowers, 4 measurements, 3 species
    "wine": ("load_wine", None),  # 178 wines, 13 chemical measurements, 3 cultivars
    "breast_cancer": ("load_breast_cancer", None),  # 569 tumours, 30 features, binary
    "diabetes": ("load_diabetes", "regression"),  # 442 patients, 10 features, progression
}
# Images keep their shape, (channels, height, width), so a CNN sees pixels' neighbours; dense
# models flatten any sample.
IMAGE_SHAPES = {"digits": (1, 8, 8)}


def _load(cfg: BundledDataConfig) -> DataSplits:
    from sklearn import datasets  # imported here: it is slow to import and only these need it

    loader, task = BUNDLED[cfg.name]
    bunch = getattr(datasets, loader)()
    x = torch.as_tensor(bunch.data, dtype=torch.get_default_dtype())
    if cfg.name in IMAGE_SHAPES:
        x = x.reshape(-1, *IMAGE_SHAPES[cfg.name])
    y = torch.as_tensor(bunch.target)
    return split(cfg.name, x, y, cfg, task=task)


for _name in BUNDLED:
    DATASETS.register(_name)(_load)
