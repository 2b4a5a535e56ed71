"""A trained RBM's (or DBN's) hidden units as features for another model.

    .venv/bin/python scripts/train.py model=rbm optim=momentum optim.lr=0.05

then, in Python, the run's own splits with every input replaced by P(h = 1 | x):

    from dlbasics.features import hidden_features
    from sklearn.linear_model import LogisticRegression

    features = hidden_features("outputs/latest")
    classifier = LogisticRegression(max_iter=2000).fit(features.x_train, features.y_train)
    classifier.score(features.x_test, features.y_test)

(For new inputs rather than the run's splits: ``dlbasics.load(run).transform(x)``.)
"""

from dataclasses import replace
from pathlib import Path

import torch

from dlbasics.data import DataSplits, build_data
from dlbasics.errors import DataError
from dlbasics.inference import load


@torch.no_grad()
def hidden_features(run: str | Path, checkpoint: str = "best") -> DataSplits:
    """The data splits of the run in directory ``run``, rebuilt from the config its checkpoint
    holds (the same split, scaling and labels), with each input replaced by the hidden-unit
    probabilities of its trained model: checkpoints/best.pt (``checkpoint="last"``: last.pt;
    or pass a .pt file as ``run``). Targets are unchanged."""
    path = Path(run)
    if path.is_file():  # <run dir>/checkpoints/<name>.pt
        path, checkpoint = path.parents[1], path.stem
    trained = load(path, checkpoint)
    if not hasattr(trained.model, "transform"):
        raise DataError(
            f"{path} holds a model={trained.config.model.name}, which has no hidden units to "
            "read as features; train model=rbm or model=dbn."
        )
    data = build_data(trained.config.data)
    features = {
        name: trained.model.transform(x)
        for name in ("x_train", "x_val", "x_test", "x_unlabelled")
        if (x := getattr(data, name)) is not None
    }
    n_hidden = features["x_train"].shape[1]
    spec = replace(data.spec, input_shape=(n_hidden,))
    return replace(data, spec=spec, feature_mean=None, feature_std=None, **features)
