"""What a data set is: its task and shapes (DataSpec) and its three splits (DataSplits)."""

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from dlbasics.errors import ConfigError
from dlbasics.schemas.data import DATASETS, DataConfig, SplitDataConfig

# seq2seq: a sequence of tokens in, another out (translation; data/translation.py)
TASKS = ("binary", "multiclass", "regression", "seq2seq")


@dataclass(frozen=True)
class DataSpec:
    """What a model must fit: the task, one sample's shape and the number of output units."""

    name: str
    task: str  # binary | multiclass | regression | seq2seq
    input_shape: tuple[int, ...]
    n_outputs: int  # 1 (binary), one per class (multiclass), one per target (regression)
    n_classes: int = 0  # 0 for regression
    # Sequences (input_shape (T, F)) may carry a target after every time step (many-to-many):
    # targets of shape (n, T, n_outputs) instead of (n, n_outputs).
    per_step: bool = False
    # seq2seq: the longest target in tokens (with its <eos>), which may differ from the
    # source's length; its scores are (target_length, n_outputs), n_outputs the vocabulary's size.
    target_length: int = 0

    @property
    def n_features(self) -> int:
        return math.prod(self.input_shape)


@dataclass
class DataSplits:
    """Training, validation and test tensors. Targets: class indices (int64, shape (n,)) for
    multi-class, 0/1 floats of shape (n, 1) for binary, floats of shape (n, k) for regression
    (or (n, T, k) for per-step regression)."""

    spec: DataSpec
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    # Standardisation fitted on the training split, to map learned values back to raw units
    # (raw = x · std + mean; with data.unit_range, mean and std are the minimum and range).
    feature_mean: Tensor | None = None
    feature_std: Tensor | None = None
    # Training inputs whose labels were dropped (data.labels_per_class): unsupervised
    # pre-training uses them besides x_train; supervised training does not.
    x_unlabelled: Tensor | None = None
    # How feature_mean and feature_std were used: "standardize", "unit_range" or "none".
    scaling: str = "none"
    # A regression target's standardisation (raw = y · target_std + target_mean), or None.
    target_mean: Tensor | None = None
    target_std: Tensor | None = None
    # What the source calls its input features (table columns) and its classes, in the order
    # of the features and of the class indices; None where it names neither.
    feature_names: tuple[str, ...] | None = None
    class_names: tuple[str, ...] | None = None
    # A table's encoders, fitted on the training rows (data/table.py): how its columns became
    # the features, for new rows to become them too. Plain values: saved as JSON.
    table: dict[str, Any] | None = None
    # seq2seq: the tokens, in the order of their indices (<pad>, <bos>, <eos> first).
    vocabulary: tuple[str, ...] | None = None

    def every_training_input(self) -> Tensor:
        """The training inputs, labelled or not: what learning without labels may use."""
        if self.x_unlabelled is None:
            return self.x_train
        return torch.cat([self.x_train, self.x_unlabelled])

    def to_raw(self, x: Tensor) -> Tensor:
        """Inputs in the data's own units (cm, say): the standardisation undone."""
        if self.feature_mean is None or self.feature_std is None:
            return x
        return x * self.feature_std.to(x.device) + self.feature_mean.to(x.device)

    def from_raw(self, x: Tensor) -> Tensor:
        """Inputs in the data's own units, standardised as the model sees them."""
        if self.feature_mean is None or self.feature_std is None:
            return x
        return (x - self.feature_mean.to(x.device)) / self.feature_std.to(x.device)


def build_data(cfg: DataConfig) -> DataSplits:
    data = DATASETS.get(cfg.name)(cfg)
    if getattr(cfg, "labels_per_class", None) is not None:
        data = keep_labels_per_class(data, cfg.labels_per_class, cfg.seed)
    return data


def classification_spec(name: str, x: Tensor, y: Tensor) -> DataSpec:
    n_classes = int(y.max()) + 1
    task = "binary" if n_classes == 2 else "multiclass"
    n_outputs = 1 if task == "binary" else n_classes
    return DataSpec(name, task, tuple(x.shape[1:]), n_outputs, n_classes)


def as_targets(y: Tensor, task: str) -> Tensor:
    if task == "multiclass":
        return y.long()
    y = y.to(torch.get_default_dtype())
    return y.unsqueeze(1) if y.ndim == 1 else y


def split(
    name: str,
    x: Tensor,
    y: Tensor,
    cfg: SplitDataConfig,
    task: str | None = None,
    feature_names: tuple[str, ...] | None = None,
    class_names: tuple[str, ...] | None = None,
) -> DataSplits:
    """Shuffle, split into train/val/test (stratified for classes) and standardise.

    ``task`` defaults to classification, binary or multi-class from the number of labels.
    ``feature_names`` and ``class_names``: what the source calls them, when it does.
    """
    spec = (
        classification_spec(name, x, y)
        if task is None
        else DataSpec(
            name, task, tuple(x.shape[1:]), 1 if y.ndim == 1 else y.shape[-1], per_step=y.ndim == 3
        )
    )
    train, val, test = split_indices(name, y, cfg, stratified=task is None)
    data = make_splits(
        spec,
        (x[train], y[train]),
        (x[val], y[val]),
        (x[test], y[test]),
        cfg.standardize,
        cfg.unit_range,
    )
    return replace(data, feature_names=feature_names, class_names=class_names)


def split_indices(
    name: str, y: Tensor, cfg: SplitDataConfig, stratified: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """The indices of the training, validation and test samples: a random order by
    ``cfg.seed`` (``stratified``: every class spread evenly, for class labels ``y``), cut into
    the test set, the validation set and the rest, of which ``data.train_size`` trains."""
    n = len(y)
    n_val, n_test = held_out_count(cfg.val_size, n), held_out_count(cfg.test_size, n)
    if n - n_val - n_test < 1:
        raise ConfigError(
            f"data.val_size={cfg.val_size} and data.test_size={cfg.test_size} leave no "
            f"training samples out of {n} in data={name}."
        )
    generator = torch.Generator().manual_seed(cfg.seed)
    order = stratified_order(y, generator) if stratified else torch.randperm(n, generator=generator)
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    if cfg.train_size is not None:
        train = train[: _train_count(cfg.train_size, len(train), n, name)]
    return train, val, test


def make_splits(
    spec: DataSpec,
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    standardize: bool,
    unit_range: bool | None = False,
) -> DataSplits:
    """Turn (inputs, labels) pairs into DataSplits: targets in the task's form and, with
    ``standardize``, every input feature (and a regression target) scaled by the training
    split's mean and standard deviation; with ``unit_range`` instead, every feature scaled to
    [0, 1] by the training split's minimum and range.

    The inputs are scaled in place, so that a large table is not held twice: pass tensors of
    your own (index copies such as ``x[train]``, as ``split`` does), never one tensor as two
    splits."""
    x_train, x_val, x_test = train[0], val[0], test[0]
    y_train, y_val, y_test = (as_targets(pair[1], spec.task) for pair in (train, val, test))
    mean = std = y_mean = y_std = None
    scaling = "unit_range" if unit_range else "standardize" if standardize else "none"
    if unit_range:
        mean, std = _min_and_range(x_train)
        for v in (x_train, x_val, x_test):
            v.sub_(mean).div_(std).clamp_(0, 1)  # as unit_scale, in place
    elif standardize:
        mean, std = _moments(x_train)
        for v in (x_train, x_val, x_test):
            v.sub_(mean).div_(std)
        if spec.task == "regression":  # targets on a unit scale too, so lr defaults carry over
            y_mean, y_std = _moments(y_train)
            y_train, y_val, y_test = ((v - y_mean) / y_std for v in (y_train, y_val, y_test))
    return DataSplits(
        spec,
        *(x_train, y_train, x_val, y_val, x_test, y_test),
        feature_mean=mean,
        feature_std=std,
        scaling=scaling,
        target_mean=y_mean,
        target_std=y_std,
    )


def unit_scale(x: Tensor, low: Tensor, span: Tensor) -> Tensor:
    """``x`` scaled to [0, 1] by the training split's minimum and range; values beyond the
    training split's are clipped into [0, 1]."""
    return ((x - low) / span).clamp(0, 1)


def held_out_count(size: float, n: int) -> int:
    return int(size) if size >= 1 else round(size * n)


def _train_count(train_size: float, available: int, n: int, name: str) -> int:
    """How many of the ``available`` training samples ``data.train_size`` keeps (a fraction of
    all ``n`` samples, or a count). The order is stratified, so any prefix keeps the classes
    in proportion."""
    count = held_out_count(train_size, n)
    if not 1 <= count <= available:
        raise ConfigError(
            f"data.train_size={train_size:g} asks for {count} training samples, but data={name} "
            f"leaves {available} after the validation and test splits; choose 1 to "
            f"{available} (or a fraction of the {n} samples), or null for all of them."
        )
    return count


def _moments(x: Tensor) -> tuple[Tensor, Tensor]:
    # Images (n, channels, height, width) get one mean and std per channel, so every pixel
    # keeps the same scale, as a convolution's shared kernels expect; other data, one per
    # feature (per pixel and step of a sequence).
    dims = (0, 2, 3) if x.ndim == 4 else (0,)
    mean = x.mean(dim=dims, keepdim=True)[0]
    std = x.std(dim=dims, unbiased=False, keepdim=True)[0]
    return mean, torch.where(std > 0, std, torch.ones_like(std))  # constant pixels


def _min_and_range(x: Tensor) -> tuple[Tensor, Tensor]:
    low, high = x.min(dim=0).values, x.max(dim=0).values
    return low, torch.where(high > low, high - low, torch.ones_like(low))  # constant pixels


def stratified_order(y: Tensor, generator: torch.Generator) -> Tensor:
    """A random order in which every class is spread evenly, so any prefix (the test set,
    then the validation set) holds each class in proportion, within one sample."""
    perm = torch.randperm(len(y), generator=generator)
    position = torch.empty(len(y))
    for label in y.unique():
        members = perm[y[perm] == label]
        position[members] = (torch.arange(len(members)) + 0.5) / len(members)
    return perm[torch.argsort(position[perm], stable=True)]


def keep_labels_per_class(data: DataSplits, per_class: int, seed: int) -> DataSplits:
    """Keep the labels of ``per_class`` training samples of each class, drawn at random; the
    other training inputs move to ``x_unlabelled``. Validation and test sets keep theirs."""
    where = f"data.labels_per_class={per_class}"
    if data.spec.task == "regression":
        raise ConfigError(
            f"{where} needs class labels, but data={data.spec.name} is a regression task."
        )
    labels = data.y_train.reshape(-1).long()  # binary targets are 0./1. floats of shape (n, 1)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    kept = []
    for label in range(data.spec.n_classes):
        members = order[labels[order] == label]
        if len(members) < per_class:
            raise ConfigError(
                f"{where}: class {label} of data={data.spec.name} has only {len(members)} "
                f"training samples; choose at most {len(members)}."
            )
        kept.append(members[:per_class])
    keep = torch.zeros(len(labels), dtype=torch.bool)
    keep[torch.cat(kept)] = True
    return replace(
        data,
        x_train=data.x_train[keep],
        y_train=data.y_train[keep],
        x_unlabelled=data.x_train[~keep],
    )
