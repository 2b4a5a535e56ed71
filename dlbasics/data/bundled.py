"""scikit-learn's bundled data sets: shipped inside the package, nothing is downloaded.

The arrays come from scikit-learn's public loaders (``sklearn.datasets.load_<name>()``), which
are imported only when a set is not in the cache yet: each set's ``data``, ``target``,
``feature_names`` and ``target_names`` (the class names; none for a regression) are then kept
as ``<cache>/bundled/<name>-sklearn<version>-v<format>.npz`` and read from there on
later runs, without importing scikit-learn or SciPy. ``<cache>`` is ``$DLBASICS_CACHE``, else
``$XDG_CACHE_HOME/dlbasics``, else ``~/.cache/dlbasics``. A cache file that is missing,
unreadable or holds the wrong arrays is rebuilt; one that cannot be written is skipped, and
the set is then loaded from scikit-learn on every run.
"""

import io
import logging
import os
import secrets
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from dlbasics.data.core import DATASETS, DataSplits, split
from dlbasics.errors import DataError
from dlbasics.schemas.data import BundledDataConfig

log = logging.getLogger("dlbasics")

# name → (scikit-learn's loader, task); classification tasks are binary or multi-class by their
# labels.
BUNDLED = {
    "digits": ("load_digits", None),  # 1797 8×8 images of handwritten digits, 10 classes
    "iris": ("load_iris", None),  # 150 flowers, 4 measurements, 3 species
    "wine": ("load_wine", None),  # 178 wines, 13 chemical measurements, 3 cultivars
    "breast_cancer": ("load_breast_cancer", None),  # 569 tumours, 30 features, binary
    "diabetes": ("load_diabetes", "regression"),  # 442 patients, 10 features (scaled)
}
# Images keep their shape, (channels, height, width), so a CNN sees pixels' neighbours; dense
# models flatten any sample.
IMAGE_SHAPES = {"digits": (1, 8, 8)}

CACHE_ENV = "DLBASICS_CACHE"
# Raised whenever what a cache file holds, or how it is read, changes: files of other formats
# are then never read, only left behind.
CACHE_FORMAT = 2
CACHED = ["data", "feature_names", "target", "target_names"]  # the arrays of a cache file
_NO_SKLEARN = (
    "the bundled data sets (digits, iris, wine, breast_cancer, diabetes) come with "
    "scikit-learn, which is not installed; run `make install`."
)


def cache_dir() -> Path | None:
    """dlbasics' cache directory: $DLBASICS_CACHE, else $XDG_CACHE_HOME/dlbasics, else
    ~/.cache/dlbasics; None where there is no home directory to put it in."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec: a relative path is to be ignored
        return Path(xdg) / "dlbasics"
    try:
        return Path.home() / ".cache" / "dlbasics"
    except RuntimeError:  # no $HOME and no user database entry
        return None


def cache_file(name: str) -> Path | None:
    """Where the arrays of bundled data set ``name`` are cached; None where they cannot be
    (no home directory, or no installed scikit-learn to name the file by)."""
    try:
        # Read from the installed distribution's metadata, without importing scikit-learn. The
        # version is part of the name because the data are scikit-learn's: a release that
        # corrects a set (as 0.20 did iris) or a loader's defaults then gets its own file,
        # instead of runs silently training on the arrays of the previous one.
        version = metadata.version("scikit-learn")
    except metadata.PackageNotFoundError:  # not installed, or without its metadata: no key
        return None
    directory = cache_dir()
    if directory is None:
        return None
    return directory / "bundled" / f"{name}-sklearn{version}-v{CACHE_FORMAT}.npz"


@dataclass(frozen=True)
class BundledSet:
    """A bundled set's arrays as scikit-learn's loader gives them."""

    data: np.ndarray  # (samples, features), float64
    target: np.ndarray  # (samples,): class indices, or values for a regression
    feature_names: np.ndarray  # (features,) of str
    target_names: np.ndarray  # (classes,) of str; empty for a regression


def _read_cache(path: Path) -> BundledSet | None:
    """The cached arrays, or None if the file is missing or not a valid cache file."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array")
        with loaded:
            if sorted(loaded.files) != CACHED:
                raise ValueError(f"it holds {loaded.files}")
            # Reading each array whole makes zipfile check its CRC: a corrupt file fails here.
            arrays = BundledSet(**{name: loaded[name] for name in CACHED})
        x, y = arrays.data, arrays.target
        if x.ndim != 2 or x.dtype != np.float64 or y.shape != x.shape[:1]:
            raise ValueError(f"it holds data {x.dtype}{x.shape}, target {y.dtype}{y.shape}")
        if arrays.feature_names.shape != x.shape[1:] or arrays.target_names.ndim != 1:
            raise ValueError("its names do not match its data")
    except FileNotFoundError:
        return None
    # Whatever goes wrong reading a cache file (truncated, overwritten, a header that makes
    # numpy allocate terabytes) means only that it is rebuilt from scikit-learn.
    except Exception as error:
        log.debug("bundled data cache %s is unusable (%s); rebuilding it", path, error)
        return None
    return arrays


def _write_cache(path: Path, arrays: BundledSet) -> None:
    """Write the arrays to ``path`` all or nothing; if that fails, say so at debug level.

    The file appears under its name only once complete (a temporary file of this process's own,
    renamed over it), so concurrent runs writing the same set never see each other's partial
    files; the last rename wins, with the same arrays."""
    buffer = io.BytesIO()
    np.savez(buffer, **vars(arrays))  # uncompressed: the quickest to read back
    # Not checkpoint.atomic_write: it deletes other writers' temporary files of the same name,
    # and a sweep's jobs may well fill the cache at the same moment.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(tmp, "xb") as file:
                file.write(buffer.getbuffer())
                file.flush()
                os.fsync(file.fileno())  # the data on disk before the name points to them
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as error:
        log.debug("bundled data not cached, %s: %s", path, error.strerror or error)


def _load_from_sklearn(name: str) -> BundledSet:
    try:
        from sklearn import datasets  # imported here: it takes longer than a digits run
    except ImportError:
        raise DataError(_NO_SKLEARN) from None
    bunch = getattr(datasets, BUNDLED[name][0])()
    return BundledSet(
        data=bunch.data,
        target=bunch.target,
        feature_names=np.asarray(bunch.feature_names, dtype=str),
        target_names=np.asarray(bunch.get("target_names", []), dtype=str),
    )


def read_bundled(name: str) -> BundledSet:
    """A bundled data set's arrays, as scikit-learn's ``load_<name>()`` returns them: from the
    cache, or from the loader, then cached."""
    path = cache_file(name)
    cached = _read_cache(path) if path is not None else None
    if cached is not None:
        return cached
    arrays = _load_from_sklearn(name)
    if path is not None:
        _write_cache(path, arrays)
    return arrays


def bundled_tensors(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, labels) as tensors; images as (n, channels, height, width)."""
    arrays = read_bundled(name)
    features = torch.as_tensor(arrays.data, dtype=torch.get_default_dtype())
    if name in IMAGE_SHAPES:
        features = features.reshape(-1, *IMAGE_SHAPES[name])
    return features, torch.as_tensor(arrays.target)


def bundled_names(name: str) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    """What scikit-learn calls the features and the classes (None for a regression)."""
    arrays = read_bundled(name)
    classes = tuple(arrays.target_names.tolist()) if arrays.target_names.size else None
    return tuple(arrays.feature_names.tolist()), classes


def _load(cfg: BundledDataConfig) -> DataSplits:
    x, y = bundled_tensors(cfg.name)
    features, classes = bundled_names(cfg.name)
    return split(cfg.name, x, y, cfg, BUNDLED[cfg.name][1], features, classes)


for _name in BUNDLED:
    DATASETS.register(_name, BundledDataConfig)(_load)
