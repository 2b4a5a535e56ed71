"""A trained RBM's (or DBN's) hidden units as features for another model.

    python scripts/train.py model=rbm data.unit_range=true optim=momentum optim.lr=0.05

then, in Python, the run's own splits with every input replaced by P(h = 1 | x):

    from dlbasics.features import hidden_features
    from sklearn.linear_model import LogisticRegression

    features = hidden_features("outputs/2026-01-01/12-00-00")
    classifier = LogisticRegression(max_iter=2000).fit(features.x_train, features.y_train)
    classifier.score(features.x_test, features.y_test)
"""

from dataclasses import replace
from pathlib import Path

from omegaconf import OmegaConf

from dlbasics.checkpoint import BEST_PT, check_contents, load_checkpoint
from dlbasics.data import DataSplits, build_data
from dlbasics.errors import DataError
from dlbasics.models import MODELS


def hidden_features(run: str | Path, checkpoint: str = "best") -> DataSplits:
    """The data splits of the run in directory ``run``, rebuilt from the config its checkpoint
    holds (the same split, scaling and labels), with each input replaced by the hidden-unit
    probabilities of its trained model: checkpoints/best.pt (``checkpoint="last"``: last.pt;
    or pass a .pt file as ``run``). Targets are unchanged."""
    path = Path(run)
    if path.is_dir():
        path = path / "checkpoints" / f"{checkpoint}.pt"
    payload = load_checkpoint(path)
    check_contents(payload, BEST_PT, path)
    # Read back duck-typed: the config was validated when the run was made.
    cfg = OmegaConf.create(payload["config"])
    data = build_data(cfg.data)
    model = MODELS.get(cfg.model.name)(cfg, data.spec)
    if not hasattr(model, "transform"):
        raise DataError(
            f"{path} holds a model={cfg.model.name}, which has no hidden units to read as "
            "features; train model=rbm or model=dbn."
        )
    model.load_state_dict(payload["model"])
    model.eval()
    features = {
        name: model.transform(x)
        for name in ("x_train", "x_val", "x_test", "x_unlabelled")
        if (x := getattr(data, name)) is not None
    }
    n_hidden = features["x_train"].shape[1]
    spec = replace(data.spec, input_shape=(n_hidden,))
    return replace(data, spec=spec, feature_mean=None, feature_std=None, **features)
