"""MNIST-format (IDX) files from a directory on disk (`data=idx data.root=DIR`).

The four files of MNIST and Fashion-MNIST, gzipped or not::

    train-images-idx3-ubyte   train-labels-idx1-ubyte   (the training file, split into
    t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte     training and validation sets; the
                                                         t10k files are the test set)

An IDX file is a big-endian header, then the values: two zero bytes, a type code (0x08 for
unsigned bytes), the number of dimensions, one 32-bit size per dimension. Nothing is
downloaded: the user's files are read as they are, and a file that does not follow the format
is named in a DataError.
"""

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dlbasics.data.core import (
    DATASETS,
    DataSplits,
    classification_spec,
    held_out_count,
    make_splits,
    stratified_order,
)
from dlbasics.errors import ConfigError, DataError
from dlbasics.schemas.data import IdxDataConfig

UNSIGNED_BYTE = 0x08
# What the two kinds of file hold: (number of dimensions, description for messages).
KINDS = {"images": (3, "images: count × rows × columns"), "labels": (1, "labels: count")}


def read_idx(path: Path, kind: str) -> Tensor:
    """Read one MNIST-format file of unsigned bytes.

    Parameters
    ----------
    path : Path
        The file; gzip-compressed content is recognised by its first bytes, whatever the name.
    kind : {"images", "labels"}
        Images must have 3 dimensions (count, rows, columns), labels 1 (count).

    Returns
    -------
    Tensor of dtype uint8 with the shape the header gives.
    """
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip's own magic number
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(
                f"{path}: cannot decompress it ({error}); is it truncated or damaged?"
            ) from None
    ndim, description = KINDS[kind]
    expected_magic = UNSIGNED_BYTE << 8 | ndim
    if len(raw) < 4:
        raise DataError(f"{path} is truncated: {len(raw)} bytes, not even the 4-byte magic number.")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != expected_magic:
        raise DataError(
            f"{path}: wrong magic number {magic:#010x}; an MNIST {kind} file starts with "
            f"{expected_magic:#010x} (unsigned bytes, {description}). Is it the right file?"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated inside its header ({len(raw)} of {header} bytes).")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    size = header + math.prod(shape)
    if len(raw) != size:
        problem = "is truncated" if len(raw) < size else "has extra bytes at the end"
        raise DataError(
            f"{path} {problem}: its header promises {kind} of shape {shape}, {size} bytes in "
            f"all, but the file holds {len(raw)} bytes."
        )
    values = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
    return torch.from_numpy(values.copy())


def find_file(root: Path, split: str, kind: str) -> Path:
    """The file of one split ("train" or "t10k") and kind, under the names MNIST is shipped
    with: ``train-images-idx3-ubyte`` or ``train-images.idx3-ubyte``, each maybe ``.gz``."""
    ndim = KINDS[kind][0]
    stem = f"{split}-{kind}"
    candidates = [
        root / f"{stem}{sep}idx{ndim}-ubyte{gz}" for sep in ("-", ".") for gz in ("", ".gz")
    ]
    for path in candidates:
        if path.is_file():
            return path
    raise DataError(
        f"data=idx: {candidates[0]} (or .gz) is missing; data.root={root} must hold the four "
        "MNIST-format files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, gzipped or not."
    )


def _read_pair(root: Path, split: str) -> tuple[Tensor, Tensor]:
    images_path, labels_path = find_file(root, split, "images"), find_file(root, split, "labels")
    images, labels = read_idx(images_path, "images"), read_idx(labels_path, "labels")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} "
            "labels; they must be the same count."
        )
    # Samples as (channels, height, width) images; values as floats, labels as class indices.
    return images.unsqueeze(1).to(torch.get_default_dtype()), labels.long()


def _check_the_splits_match(
    root: Path, x: Tensor, y: Tensor, x_test: Tensor, y_test: Tensor
) -> None:
    """The test images have the training images' size, and the test labels the training
    labels' classes: found here, not as a shape error at the end of a fit."""
    train_file, test_file = (find_file(root, split, "images") for split in ("train", "t10k"))
    if x.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{test_file} holds images of {x_test.shape[2]}×{x_test.shape[3]} pixels, but "
            f"{train_file} of {x.shape[2]}×{x.shape[3]}; both must be of the same size."
        )
    labels = find_file(root, "t10k", "labels")
    unseen = sorted(set(y_test.unique().tolist()) - set(y.unique().tolist()))
    if unseen:
        raise DataError(
            f"{labels} holds test labels of classes {unseen[:10]} that no training label of "
            f"{find_file(root, 'train', 'labels')} has; a model cannot learn them."
        )


@DATASETS.register("idx", IdxDataConfig)
def _idx(cfg: IdxDataConfig) -> DataSplits:
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DataError(f"data.root={cfg.root}: no such directory.")
    x, y = _read_pair(root, "train")
    x_test, y_test = _read_pair(root, "t10k")
    _check_the_splits_match(root, x, y, x_test, y_test)
    if cfg.limit is not None:
        x, y = x[: cfg.limit], y[: cfg.limit]

    n_val = held_out_count(cfg.val_size, len(x))
    if not 1 <= n_val < len(x):
        raise ConfigError(
            f"data.val_size={cfg.val_size} holds out {n_val} of the {len(x)} samples in the "
            "training file; it must leave at least one for validation and one for training."
        )
    order = stratified_order(y, torch.Generator().manual_seed(cfg.seed))
    val, train = order[:n_val], order[n_val:]
    spec = classification_spec(cfg.name, x, torch.cat([y, y_test]))  # classes of both files
    return make_splits(
        spec,
        (x[train], y[train]),
        (x[val], y[val]),
        (x_test, y_test),
        cfg.standardize,
        cfg.unit_range,
    )
