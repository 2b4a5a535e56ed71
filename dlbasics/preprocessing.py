"""What a run did to its data before the model saw it, kept as ``preprocessing.json`` in the run
directory so that new inputs can be treated the same way (scripts/predict.py, dlbasics.load).

Everything here was fitted on the training split only: the inputs' standardisation (mean and
standard deviation, per feature or per image channel) or unit range (minimum and range, per
feature), a regression target's standardisation, and what the data source calls its features
and classes. The file is JSON, never pickle, and versioned: later versions may add encoders
(text categories of a table) or vocabularies (tokens of a sequence) beside these keys.

    {"format": "dlbasics-preprocessing", "version": 3,
     "data": "digits", "task": "multiclass", "input_shape": [1, 8, 8], "n_outputs": 10,
     "per_step": false, "features": ["pixel_0_0", ...], "classes": [0, 1, ..., 9],
     "inputs": {"scaling": "standardize", "shift": [[[8.1...]]], "scale": [[[6.0...]]]},
     "target": null, "table": null, "vocabulary": null, "target_length": 0}

``inputs``: the model sees ``(x − shift) / scale`` ("standardize"), the same clipped into
[0, 1] ("unit_range"), or ``x`` itself ("none"); ``shift`` and ``scale`` have a shape that
broadcasts over one sample. ``target``: a regression target standardised the same way, so
predictions are mapped back with ``y · scale + shift``; null otherwise. ``table``: for a
CSV table, its target, the columns that are not features (``ignored``), and per feature
column its encoder (type, fill for missing cells, "_missing" indicator, categories), which
turn raw rows into ``features`` before the scaling above. ``vocabulary`` (seq2seq): the
tokens in the order of their indices, which new sources are written in and predictions read
from; ``target_length``: the longest target the model decodes, in tokens.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dlbasics.checkpoint import atomic_write
from dlbasics.data.core import DataSpec, DataSplits, unit_scale
from dlbasics.errors import DataError

FILE_NAME = "preprocessing.json"
FORMAT = "dlbasics-preprocessing"
# 2: a table's encoders ("table"); 3: a seq2seq vocabulary and target length. Older versions
# are read as they are (no table, no vocabulary).
VERSION = 3
SCALINGS = ("none", "standardize", "unit_range")


@dataclass
class Preprocessing:
    """How raw inputs become a model's inputs, and how its outputs read, for one run."""

    data: str  # the data set's name (data=…)
    task: str  # binary | multiclass | regression
    input_shape: tuple[int, ...]  # one sample, as the model sees it
    n_outputs: int
    per_step: bool  # sequences with a target after every step
    features: tuple[str, ...]  # the input features' names, in order (flattened samples)
    classes: tuple[Any, ...] | None  # class labels in the order of the class indices
    scaling: str  # none | standardize | unit_range
    shift: Tensor | None  # mean (standardize) or minimum (unit_range)
    scale: Tensor | None  # standard deviation (standardize) or range (unit_range)
    target_shift: Tensor | None = None  # a regression target's mean …
    target_scale: Tensor | None = None  # … and standard deviation
    # A table's column encoders (data/table.py): how raw rows become the features; None for
    # data that comes as numbers.
    table: dict[str, Any] | None = None
    # seq2seq: the tokens by index (<pad>, <bos>, <eos> first), and the longest target.
    vocabulary: tuple[str, ...] | None = None
    target_length: int = 0

    # --- from a run's data, to JSON, and back ----------------------------------------------

    @classmethod
    def from_splits(cls, data: DataSplits) -> "Preprocessing":
        spec = data.spec
        n_features = spec.n_features
        features = data.feature_names or tuple(f"x{i}" for i in range(1, n_features + 1))
        classes = None
        if spec.task in ("binary", "multiclass"):  # a seq2seq task's are its vocabulary
            classes = labels(data.class_names or tuple(str(i) for i in range(spec.n_classes)))
        return cls(
            data=spec.name,
            task=spec.task,
            input_shape=tuple(spec.input_shape),
            n_outputs=spec.n_outputs,
            per_step=spec.per_step,
            features=tuple(features),
            classes=classes,
            scaling=data.scaling,
            shift=data.feature_mean,
            scale=data.feature_std,
            target_shift=data.target_mean,
            target_scale=data.target_std,
            table=data.table,
            vocabulary=data.vocabulary,
            target_length=spec.target_length,
        )

    def to_dict(self) -> dict[str, Any]:
        inputs = {"scaling": self.scaling}
        if self.scaling != "none":
            inputs |= {"shift": _as_list(self.shift), "scale": _as_list(self.scale)}
        target = None
        if self.target_shift is not None:
            target = {"shift": _as_list(self.target_shift), "scale": _as_list(self.target_scale)}
        return {
            "format": FORMAT,
            "version": VERSION,
            "data": self.data,
            "task": self.task,
            "input_shape": list(self.input_shape),
            "n_outputs": self.n_outputs,
            "per_step": self.per_step,
            "features": list(self.features),
            "classes": None if self.classes is None else list(self.classes),
            "inputs": inputs,
            "target": target,
            "table": self.table,
            "vocabulary": None if self.vocabulary is None else list(self.vocabulary),
            "target_length": self.target_length,
        }

    def save(self, run_dir: Path) -> None:
        """Write ``run_dir/preprocessing.json`` atomically."""
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"
        atomic_write(run_dir / FILE_NAME, text.encode())

    @classmethod
    def read(cls, run_dir: Path) -> "Preprocessing":
        """The preprocessing of the run in ``run_dir``; a DataError names what is wrong."""
        path = Path(run_dir) / FILE_NAME
        if not path.is_file():
            raise DataError(
                f"{path} is missing: the run was trained by an older dlbasics, or its "
                "directory is incomplete; train it again to use it on new data."
            )
        try:
            saved = json.loads(path.read_text())
            if saved.get("format") != FORMAT:
                raise ValueError(f"format {saved.get('format')!r}, not {FORMAT!r}")
            if not isinstance(saved.get("version"), int) or saved["version"] > VERSION:
                raise ValueError(
                    f"version {saved.get('version')!r}: written by a newer dlbasics, which this "
                    f"one (version {VERSION}) cannot read"
                )
            inputs, target = saved["inputs"], saved["target"]
            if inputs["scaling"] not in SCALINGS:
                raise ValueError(f"inputs.scaling {inputs['scaling']!r}")
            scaled = inputs["scaling"] != "none"
            return cls(
                data=str(saved["data"]),
                task=str(saved["task"]),
                input_shape=tuple(int(n) for n in saved["input_shape"]),
                n_outputs=int(saved["n_outputs"]),
                per_step=bool(saved["per_step"]),
                features=tuple(str(name) for name in saved["features"]),
                classes=None if saved["classes"] is None else tuple(saved["classes"]),
                scaling=inputs["scaling"],
                shift=torch.tensor(inputs["shift"]) if scaled else None,
                scale=torch.tensor(inputs["scale"]) if scaled else None,
                target_shift=torch.tensor(target["shift"]) if target else None,
                target_scale=torch.tensor(target["scale"]) if target else None,
                table=saved.get("table"),
                vocabulary=_tokens(saved.get("vocabulary")),
                target_length=int(saved.get("target_length", 0)),
            )
        except (ValueError, KeyError, TypeError) as error:  # JSONDecodeError is a ValueError
            raise DataError(f"{path} cannot be used: {error}.") from None

    # --- what it does -----------------------------------------------------------------------

    @property
    def spec(self) -> DataSpec:
        """The data spec the run's model was built for."""
        n_classes = 0 if self.classes is None else len(self.classes)
        if self.vocabulary is not None:
            n_classes = len(self.vocabulary)
        return DataSpec(
            self.data,
            self.task,
            self.input_shape,
            self.n_outputs,
            n_classes,
            self.per_step,
            self.target_length,
        )

    @property
    def n_features(self) -> int:
        return math.prod(self.input_shape)

    def as_samples(self, x: Any, where: str = "the inputs") -> Tensor:
        """Raw inputs as a float tensor of shape (n, *input_shape): rows of ``n_features``
        values (a table, scikit-learn's flat digit rows) or samples of the input shape (images
        of 1×8×8); ``where`` names them in the error for any other shape."""
        if isinstance(x, np.ndarray) and not x.flags.writeable:  # pandas' .values, say
            x = x.copy()  # (torch warns about a tensor sharing a read-only array's memory)
        x = torch.as_tensor(x, dtype=torch.get_default_dtype())
        if x.ndim >= 1 and tuple(x.shape[1:]) == self.input_shape:
            return x
        if x.ndim == 2 and x.shape[1] == self.n_features:
            return x.reshape(-1, *self.input_shape)
        shape = "×".join(map(str, self.input_shape))
        rows = f" or rows of {self.n_features} features" if len(self.input_shape) > 1 else ""
        raise DataError(
            f"{where} have shape {tuple(x.shape)}, but the model of data={self.data} takes "
            f"samples of {shape}{rows}."
        )

    def inputs(self, x: Any, where: str = "the inputs") -> Tensor:
        """Raw inputs as the model sees them: shaped (``as_samples``), then scaled with the
        training split's statistics."""
        x = self.as_samples(x, where)
        if self.scaling == "standardize":
            return (x - self.shift) / self.scale
        if self.scaling == "unit_range":
            return unit_scale(x, self.shift, self.scale)
        return x

    def targets(self, y: Tensor) -> Tensor:
        """A regression's raw targets on the scale the model was trained on."""
        if self.target_shift is None:
            return y
        return (y - self.target_shift) / self.target_scale

    def values(self, outputs: Tensor) -> Tensor:
        """A regression model's outputs back in the target's own units."""
        if self.target_shift is None:
            return outputs
        return outputs * self.target_scale + self.target_shift


def labels(names: tuple[str, ...]) -> tuple[Any, ...]:
    """Class names as labels: integers where every name is one ("0" … "9"), else the names."""
    try:
        return tuple(int(name) for name in names)
    except ValueError:
        return names


def _tokens(saved: Any) -> tuple[str, ...] | None:
    return None if saved is None else tuple(str(token) for token in saved)


def _as_list(tensor: Tensor | None) -> Any:
    return None if tensor is None else tensor.tolist()
