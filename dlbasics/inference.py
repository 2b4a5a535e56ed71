"""Using a trained run: ``dlbasics.load(run_dir)``, in scikit-learn's spirit.

A run directory holds what it takes: ``checkpoints/best.pt`` (the best epoch's weights and the
config they were trained with; ``last.pt`` also holds the training state) and
``preprocessing.json`` (what was done to the data, fitted on the training split). ``load``
rebuilds the model from the config, puts the weights in, and applies the preprocessing to
raw inputs, as the data source gives them::

    run = dlbasics.load("outputs/latest")
    run.predict(x)          # class labels (as the data names them), or values in raw units;
                            # x: arrays, or rows (a pandas DataFrame, a list of dicts)
    run.predict_proba(x)    # one column per class, in the order of run.classes_
    run.model               # the torch.nn.Module

A sequence-to-sequence run translates token sequences instead: ``translate(run,
source_tokens(lines, run.preprocessing, "input.txt"))``.
"""

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import Tensor

from dlbasics.checkpoint import BEST_PT, check_contents, load_checkpoint
from dlbasics.cli import describe_hydra_error
from dlbasics.config import Config, config_from_yaml, register_configs
from dlbasics.config_guard import harden_resolvers
from dlbasics.data import DATASETS, DataSplits, build_data
from dlbasics.data.core import DataConfig
from dlbasics.data.translation import PAD, SPECIALS, decode
from dlbasics.ensembles import Ensemble, build_ensemble
from dlbasics.errors import ConfigError, DataError
from dlbasics.inputs import named_rows
from dlbasics.latest import RUN, resolve_latest
from dlbasics.losses import Objective
from dlbasics.models import Model, build_model
from dlbasics.preprocessing import Preprocessing
from dlbasics.run import model_objective, resolve_device
from dlbasics.trainer import EVAL_CHUNK, Trainer

CHECKPOINTS = ("best", "last")  # checkpoints/<name>.pt
PROBABILITY_DIGITS = 6  # decimals of the probabilities prediction_table writes


@dataclass
class TrainedModel:
    """A trained run's model with its preprocessing: what ``dlbasics.load`` returns."""

    model: Model  # the network (an nn.Module), in eval mode
    preprocessing: Preprocessing
    config: Config  # what the run was trained with
    objective: Objective  # its loss and output activation
    run_dir: Path
    checkpoint: Path  # the file the weights came from
    epoch: int  # the epoch they are from

    @property
    def classes_(self) -> np.ndarray | None:
        """The class labels, in the order of predict_proba's columns; None for a regression."""
        classes = self.preprocessing.classes
        return None if classes is None else np.asarray(classes)

    @property
    def learns_features(self) -> bool:
        """Whether the model learned features of its inputs, not to predict (an RBM)."""
        spec = self.preprocessing.spec
        return self.model.fitted_spec(spec) != spec

    @torch.no_grad()
    def scores(self, x: Any) -> Tensor:
        """The model's scores (output layer before its activation) for raw inputs ``x``:
        arrays or tensors of samples, or rows of named columns (a pandas DataFrame, a list of
        dicts; a table run's columns as they were, encoded as training encoded them)."""
        inputs = self.preprocessing.inputs(named_rows(x, self.preprocessing))
        device = next(self.model.parameters()).device
        chunks = [self.model(chunk.to(device)).cpu() for chunk in inputs.split(EVAL_CHUNK)]
        return torch.cat(chunks) if chunks else torch.zeros(0, self.preprocessing.n_outputs)

    def predict(self, x: Any) -> np.ndarray:
        """For each sample of ``x``: its class label (classification), or its value(s) in the
        target's own units (regression)."""
        self._refuse_if_features("predict")
        scores = self.scores(x)
        if self.objective.task == "regression":
            values = self.preprocessing.values(self.objective.activate(scores))
            if values.ndim == 2 and values.shape[1] == 1:
                values = values[:, 0]
            return values.numpy()
        indices = self.objective.predict(scores).long().reshape(-1)
        return self.classes_[indices.numpy()]

    def predict_proba(self, x: Any) -> np.ndarray:
        """For each sample of ``x``, each class's probability (columns as ``classes_``)."""
        self._refuse_if_features("predict_proba")
        if self.objective.task == "regression":
            raise DataError(
                f"predict_proba: data={self.preprocessing.data} is a regression; there are no "
                "classes to give probabilities for (use predict)."
            )
        scores = self.scores(x)
        if self.objective.task == "binary":
            p = self.objective.activate(scores).reshape(-1, 1)
            return torch.cat([1 - p, p], dim=1).numpy()
        if self.objective.output_act == "softmax":
            return torch.softmax(scores, dim=1).numpy()
        outputs = self.objective.activate(scores).clamp(min=0)  # sigmoid or identity units
        return (outputs / outputs.sum(dim=1, keepdim=True).clamp(min=1e-12)).numpy()

    @torch.no_grad()
    def transform(self, x: Any) -> np.ndarray:
        """The features an RBM or DBN learned: its (top) hidden units' probabilities."""
        if not hasattr(self.model, "transform"):
            raise DataError(
                f"transform: model={self.config.model.name} has no learned features to give; "
                "model=rbm and model=dbn do."
            )
        device = next(self.model.parameters()).device
        inputs = self.preprocessing.inputs(named_rows(x, self.preprocessing))
        return self.model.transform(inputs.to(device)).cpu().numpy()

    def _refuse_if_features(self, method: str) -> None:
        if self.learns_features:
            raise DataError(
                f"{method}: model={self.config.model.name} learned features of its inputs, not "
                "to predict a target; use transform(x) for them."
            )


def load(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu") -> TrainedModel:
    """The model of the run in ``run_dir``, with the weights of ``checkpoints/<checkpoint>.pt``
    (best: the best epoch's; last: where training stopped), on ``device``. ``outputs/latest``
    names the newest run under outputs/ (dlbasics/latest.py)."""
    harden_resolvers()  # the run's config (and data=… composed for it) may come from anyone
    run_dir = resolve_latest(Path(run_dir), RUN, "run directory")
    if checkpoint not in CHECKPOINTS:
        raise ConfigError(f"checkpoint={checkpoint!r} is not allowed: choose best or last.")
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: no such run directory.")
    path = run_dir / "checkpoints" / f"{checkpoint}.pt"
    if not path.is_file():
        found = sorted(p.name for p in (run_dir / "checkpoints").glob("*.pt"))
        has = f"it has {', '.join(found)}" if found else "it has no checkpoint at all"
        raise DataError(
            f"{run_dir} has no checkpoints/{checkpoint}.pt ({has}); is it a run directory of "
            "a run that trained at least one epoch?"
        )
    payload = load_checkpoint(path)
    check_contents(payload, BEST_PT, path)
    preprocessing = Preprocessing.read(run_dir)
    config = config_from_yaml(payload["config"])
    spec = preprocessing.spec
    ensemble = config.ensemble.name != "none"
    with torch.random.fork_rng(devices=[]):  # building initialises weights: not the user's RNG
        model = build_ensemble(config, spec) if ensemble else build_model(config, spec)
    try:
        if isinstance(model, Ensemble):  # every member, and what combines them
            model.load_checkpoint(payload)
        else:
            model.load_state_dict(payload["model"])
    except RuntimeError as error:
        raise DataError(
            f"{path} does not fit the model its config describes "
            f"({str(error).splitlines()[0][:200]})."
        ) from None
    model.to(resolve_device(device)).eval()
    objective = model_objective(config, model, model.fitted_spec(spec))
    if isinstance(model, Ensemble):
        model.objective = objective  # the members' outputs, which the combination reads
    return TrainedModel(model, preprocessing, config, objective, run_dir, path, payload["epoch"])


# --- data to use it on -------------------------------------------------------------------------


def raw_splits(data_cfg: DataConfig) -> DataSplits:
    """A data set's splits with its values as the source gives them: neither standardised nor
    scaled (a run's own preprocessing is applied to them instead)."""
    unscaled = {"standardize": False, "unit_range": False}
    names = {f.name for f in fields(data_cfg)}
    return build_data(replace(data_cfg, **{k: v for k, v in unscaled.items() if k in names}))


def scaled_test_split(trained: TrainedModel, data_cfg: DataConfig) -> tuple[Tensor, Tensor]:
    """The test split of ``data_cfg`` as ``trained``'s model sees it: inputs scaled by the run's
    preprocessing, targets in the form its objective takes."""
    data = raw_splits(data_cfg)
    pre = trained.preprocessing
    where = f"the samples of data={data.spec.name}"
    x = pre.inputs(data.x_test, where)
    if trained.learns_features:  # an RBM is scored on reconstructing its inputs
        return x, x.flatten(1)
    if data.spec.task != pre.task:
        raise DataError(
            f"data={data.spec.name} is a {data.spec.task} task, but the run's model was trained "
            f"for a {pre.task} task (data={pre.data})."
        )
    if pre.task != "regression" and data.spec.n_classes > len(pre.classes):
        raise DataError(
            f"data={data.spec.name} has {data.spec.n_classes} classes, but the run's model knows "
            f"{len(pre.classes)} (data={pre.data})."
        )
    return x, pre.targets(data.y_test)


def evaluate(trained: TrainedModel, data_cfg: DataConfig, device: str = "auto") -> dict[str, Any]:
    """Test loss and accuracy of ``trained`` on the test split of ``data_cfg``, measured as the
    run measured its own (the same Trainer.evaluate, precision and loss)."""
    x, y = scaled_test_split(trained, data_cfg)
    cfg = trained.config
    trainer = Trainer(cfg.trainer, cfg.optim, cfg.schedule, resolve_device(device))
    trained.model.to(trainer.device)
    loss, accuracy = trainer.evaluate(trained.model, x, y, trained.objective)
    return {
        "test_loss": loss,
        "test_acc": accuracy,
        "n_test": len(x),
        "data": data_cfg.name,
        "checkpoint": str(trained.checkpoint),
        "epoch": trained.epoch,
    }


def data_config(trained: TrainedModel, overrides: Sequence[str], config_dir: Path) -> DataConfig:
    """The data config ``overrides`` describe: the run's own (same split seed and sizes),
    changed by ``data.KEY=VALUE``; or with ``data=NAME``, that data set's config in
    ``config_dir`` with the run's seed. Any other override is refused."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as error:
        raise ConfigError(describe_hydra_error(error, list(overrides))) from None
    choice = [o for o in parsed if o.key_or_group == "data"]
    keys = [o for o in parsed if o.key_or_group.startswith("data.")]
    others = [o.input_line for o in parsed if o not in choice and o not in keys]
    if others or len(choice) > 1:
        raise ConfigError(
            f"{(others or [choice[1].input_line])[0]}: only data=NAME and data.KEY=VALUE "
            "overrides choose the data here."
        )
    seed = trained.config.seed
    if choice and choice[0].value() != trained.config.data.name:
        name = choice[0].value()
        if name not in DATASETS.names():
            raise ConfigError(
                f"data={name} is not a choice of data; choose one of: "
                f"{', '.join(DATASETS.names())}."
            )
        register_configs()
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            node = compose(config_name="config", overrides=[f"data={name}", f"seed={seed}"]).data
    else:
        node = OmegaConf.structured(trained.config.data)
    try:
        for override in keys:
            OmegaConf.update(node, override.key_or_group[len("data.") :], override.value())
        OmegaConf.resolve(node)
        return OmegaConf.to_object(node)
    except OmegaConfBaseException as error:
        raise ConfigError(describe_hydra_error(error, list(overrides))) from None


def prediction_table(trained: TrainedModel, x: Any) -> tuple[list[str], list[list[Any]]]:
    """A CSV's header and rows for raw inputs ``x``: per sample, the prediction and each
    class's probability (classifiers), the value(s) (regression), or the learned features
    (an RBM: its hidden units' probabilities)."""
    if trained.learns_features:
        features = trained.transform(x)
        return [f"h{i}" for i in range(1, features.shape[1] + 1)], features.tolist()
    predictions = trained.predict(x)
    if trained.objective.task == "regression":
        values = predictions.reshape(len(predictions), -1)
        header = ["prediction"] if values.shape[1] == 1 else [
            f"prediction_{i}" for i in range(1, values.shape[1] + 1)
        ]
        return header, values.tolist()
    probabilities = trained.predict_proba(x)
    header = ["prediction", *(f"p_{label}" for label in trained.classes_.tolist())]
    rows = [
        [label, *(round(p, PROBABILITY_DIGITS) for p in row)]
        for label, row in zip(predictions.tolist(), probabilities.tolist(), strict=True)
    ]
    return header, rows


# --- sequence-to-sequence: token sequences in, token sequences out ----------------------------


def source_tokens(lines: Sequence[str], preprocessing: Preprocessing, where: str) -> Tensor:
    """Whitespace-separated token sequences, one per line (blank lines skipped), as the (n, S)
    indices a seq2seq model reads, padded with <pad>; a token the vocabulary lacks, or a
    sequence longer than the training sources, is a DataError naming it and its line."""
    vocabulary = preprocessing.vocabulary or ()
    index = {token: i for i, token in enumerate(vocabulary)}
    longest = preprocessing.input_shape[0]
    rows = []
    for number, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            continue
        for token in tokens:
            if token not in index or index[token] < len(SPECIALS):
                known = " ".join(t for t in vocabulary if t not in SPECIALS)
                raise DataError(
                    f"{where}, line {number}: unknown token {token!r}; the run's vocabulary "
                    f"is: {known}."
                )
        if len(tokens) > longest:
            raise DataError(
                f"{where}, line {number}: {len(tokens)} tokens, but the run was trained on "
                f"sources of at most {longest}."
            )
        rows.append([index[t] for t in tokens] + [PAD] * (longest - len(tokens)))
    if not rows:
        raise DataError(f"{where} holds no token sequence (one per line).")
    return torch.tensor(rows, dtype=torch.long)


def translate(trained: TrainedModel, sources: Tensor) -> list[str]:
    """A seq2seq run's greedy decoding of ``sources`` (n, S), as text up to each <eos>."""
    device = next(trained.model.parameters()).device
    with torch.no_grad():
        chunks = [trained.model(c.to(device)).argmax(dim=-1) for c in sources.split(EVAL_CHUNK)]
    return decode(torch.cat(chunks).cpu(), trained.preprocessing.vocabulary or ())
