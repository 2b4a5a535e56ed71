"""The RBM against scikit-learn's BernoulliRBM on digits scaled to [0, 1], both trained and
measured here, on the same split with the same settings: 100 hidden units, persistent CD-1
(what BernoulliRBM does) with plain SGD at lr 0.06, batches of 10, 20 epochs; three seeds."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import BernoulliRBM
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import make_config, train_in_process
from dlbasics.checkpoint import load_checkpoint
from dlbasics.data import build_data
from dlbasics.features import hidden_features
from dlbasics.models.rbm import RBM

pytestmark = pytest.mark.slow

N_HIDDEN, LR, BATCH, EPOCHS = 100, 0.06, 10, 20
SEEDS = (0, 1, 2)
SETTINGS = [
    "model=rbm",
    f"model.n_hidden={N_HIDDEN}",
    "model.pcd=true",  # data.unit_range: null, which model=rbm makes true
    "optim=sgd",
    f"optim.lr={LR}",
    f"trainer.batch_size={BATCH}",
    f"trainer.epochs={EPOCHS}",
    "trainer.early_stopping.enabled=false",
    "trainer.early_stopping.restore_best=false",  # both end after the same epochs
]


def _classifier():  # the same classifier on both models' features
    return LogisticRegression(C=100.0, max_iter=5000)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Per seed: our run directory and scikit-learn's fitted RBM (the split is seed 0's)."""
    data = build_data(make_config(*SETTINGS).data)
    # Digits come as (1, 8, 8) images; scikit-learn and these checks take rows of 64 pixels.
    data = replace(data, **{k: getattr(data, k).flatten(1) for k in ("x_train", "x_val", "x_test")})
    runs = {}
    for seed in SEEDS:
        run_dir = tmp_path_factory.mktemp(f"rbm{seed}")
        train_in_process(run_dir, *SETTINGS, f"trainer.seed={seed}")
        sk = BernoulliRBM(
            n_components=N_HIDDEN,
            learning_rate=LR,
            batch_size=BATCH,
            n_iter=EPOCHS,
            random_state=seed,
        ).fit(data.x_train.numpy())
        runs[seed] = (run_dir, sk)
    return data, runs


def test_rbm_features_classify_digits_at_least_as_well_as_scikit_learns(trained):
    data, runs = trained
    for seed, (run_dir, sk) in runs.items():
        ours = hidden_features(run_dir, checkpoint="last")
        our_accuracy = _classifier().fit(ours.x_train, ours.y_train).score(ours.x_test, ours.y_test)
        theirs = _classifier().fit(sk.transform(data.x_train.numpy()), data.y_train)
        their_accuracy = theirs.score(sk.transform(data.x_test.numpy()), data.y_test)
        print(
            f"seed {seed}: RBM + logistic regression {our_accuracy:.4f}, "
            f"scikit-learn {their_accuracy:.4f}"
        )
        assert our_accuracy >= their_accuracy, seed


def test_pseudo_likelihood_rises_and_ends_no_worse_than_scikit_learns(trained):
    data, runs = trained
    x = data.x_test
    for seed, (run_dir, sk) in runs.items():
        events = EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0})
        events.Reload()
        curve = [s.value for s in events.Scalars("pll/val")]
        assert curve[-1] > curve[0] + 2, curve

        ours = RBM(64, N_HIDDEN)
        ours.load_state_dict(load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"])
        theirs = RBM(64, N_HIDDEN)
        with torch.no_grad():
            theirs.weight.copy_(torch.from_numpy(sk.components_))
            theirs.hidden_bias.copy_(torch.from_numpy(sk.intercept_hidden_))
            theirs.visible_bias.copy_(torch.from_numpy(sk.intercept_visible_))
        # The same estimator with the same flipped units, on the held-out test split …
        flip = torch.from_numpy(np.random.RandomState(seed).randint(0, 64, len(x)))
        with torch.no_grad():
            our_pll = ours.pseudo_log_likelihood(x, flip=flip).mean().item()
            their_pll = theirs.pseudo_log_likelihood(x, flip=flip).mean().item()
        # … and scikit-learn's own score_samples, its units drawn by its random_state.
        their_own = sk.score_samples(x.numpy()).mean()
        print(
            f"seed {seed}: PLL ours {our_pll:.2f}, scikit-learn {their_pll:.2f} "
            f"(score_samples {their_own:.2f}); our curve {curve[0]:.2f} → {curve[-1]:.2f}"
        )
        assert our_pll >= their_pll and our_pll >= their_own, seed
