"""model=rbm: contrastive divergence through the Trainer, its per-epoch measures, its pictures,
persistent chains, and its hidden units as features; the long comparisons with scikit-learn's
BernoulliRBM are in test_rbm_vs_sklearn.py."""

import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import BernoulliRBM
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import make_config, run_cli, train_in_process
from dlbasics.checkpoint import load_checkpoint
from dlbasics.data import build_data
from dlbasics.errors import ConfigError
from dlbasics.features import hidden_features
from dlbasics.losses import RegConfig, build_objective
from dlbasics.models.rbm import RBM, inputs_as_targets

# A small RBM on digits in [0, 1] (what data.unit_range=null gives it) that learns within a
# few seconds.
SMALL_RBM = [
    "model=rbm",
    "model.n_hidden=32",
    "optim=momentum",
    "optim.lr=0.05",
    "trainer.epochs=8",
    "trainer.early_stopping.enabled=false",
]


def _scalars(run_dir, tag):
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0})
    events.Reload()
    return [s.value for s in events.Scalars(tag)], events


def _digits01():
    return build_data(make_config("data.unit_range=true").data)


def test_unit_range_scales_every_feature_into_0_1_on_the_training_split():
    data = _digits01()
    assert data.x_train.min() == 0 and data.x_train.max() == 1
    for x in (data.x_val, data.x_test):
        assert x.min() >= 0 and x.max() <= 1
    # Each pixel reaches 0 and its own maximum, 1, on the training split (unless constant).
    assert torch.all((data.x_train.amax(0) == 1) | (data.x_train.amax(0) == data.x_train.amin(0)))


def test_rbm_learns_reconstruction_error_falls_and_pseudo_likelihood_rises(tmp_path):
    metrics = train_in_process(tmp_path, *SMALL_RBM)
    val_loss, _ = _scalars(tmp_path, "loss/val")
    val_pll, events = _scalars(tmp_path, "pll/val")
    assert len(val_loss) == len(val_pll) == 8
    assert val_loss[-1] < 0.7 * val_loss[0]
    assert val_pll[-1] > val_pll[0] + 2
    for tag in ("pll/train", "free_energy/train", "free_energy/val", "free_energy/gap"):
        assert len(events.Scalars(tag)) == 8, tag
    assert metrics["val_pll"] == pytest.approx(val_pll[-1], rel=1e-5)
    assert metrics["gap_free_energy"] == pytest.approx(
        metrics["val_free_energy"] - metrics["train_free_energy"], abs=1e-3
    )
    assert metrics["test_acc"] is None and metrics["test_loss"] < val_loss[0]


def test_filters_and_gibbs_samples_are_written_as_images(tmp_path):
    train_in_process(tmp_path, *SMALL_RBM, "trainer.epochs=3")
    _, events = _scalars(tmp_path, "loss/val")
    assert set(events.Tags()["images"]) == {"rbm/filters", "rbm/samples", "rbm/completion"}
    filters = events.Images("rbm/filters")[-1]
    # 32 filters of 8×8 in a 6×6 grid, one pixel apart.
    assert (filters.width, filters.height) == (6 * 9 - 1, 6 * 9 - 1)
    assert events.Images("rbm/samples")[-1].step == 3


@pytest.mark.parametrize("k", [1, 3])
def test_cd_1_and_cd_k_both_learn(tmp_path, k):
    metrics = train_in_process(tmp_path, *SMALL_RBM, f"model.k={k}", "logger=none")
    assert metrics["val_pll"] > -20  # untrained (biases from the data): about -23.6
    assert metrics["steps"] == 8 * 17  # every batch took a step


def test_pcd_carries_its_chains_from_one_batch_to_the_next():
    torch.manual_seed(0)
    x = _digits01().x_train.flatten(1)  # digits are (1, 8, 8) images
    rbm = RBM(64, 16, k=2, pcd=True, init_std=1.0)  # weights large enough for the start to matter
    task = rbm.prepare(_digits01())
    objective = build_objective("auto", rbm.output_act, task.spec, RegConfig(), "rbm")
    first, second = x[:10], x[10:20]
    rbm.write_gradients(first, first, objective)
    chains = rbm.chains.clone()
    assert chains.shape == (10, 64) and not torch.equal(chains, first)

    # The second batch's negative phase goes on from the chains, not from the batch.
    state = torch.get_rng_state()
    with torch.no_grad():
        _, from_chains = rbm.gibbs(chains, 2, sample_last=True)
        torch.set_rng_state(state)
        _, from_batch = rbm.gibbs(second, 2, sample_last=True)
    torch.set_rng_state(state)
    rbm.write_gradients(second, second, objective)
    assert torch.equal(rbm.chains, from_chains)
    assert not torch.equal(rbm.chains, from_batch)


def test_contrastive_divergence_writes_the_difference_of_data_and_model_statistics():
    """CD-1's gradient, written out: −(⟨v hᵀ⟩_data − ⟨v hᵀ⟩_model) and the biases' −(⟨h⟩_data −
    ⟨h⟩_model), −(⟨v⟩_data − ⟨v⟩_model), as means over the batch."""
    torch.manual_seed(0)
    v_data = _digits01().x_train.flatten(1)[:10]
    rbm = RBM(64, 16, init_std=1.0)
    task = rbm.prepare(_digits01())
    objective = build_objective("auto", rbm.output_act, task.spec, RegConfig(), "rbm")
    state = torch.get_rng_state()
    rbm.write_gradients(v_data, v_data, objective)
    torch.set_rng_state(state)  # the same Gibbs samples again
    with torch.no_grad():
        h_data = rbm.hidden_probs(v_data)
        v_model, _ = rbm.gibbs(v_data, 1, first_hidden=h_data)
        h_model = rbm.hidden_probs(v_model)
    expected = {
        "weight": h_model.T @ v_model / 10 - h_data.T @ v_data / 10,
        "hidden_bias": h_model.mean(0) - h_data.mean(0),
        "visible_bias": v_model.mean(0) - v_data.mean(0),
    }
    for name, grad in expected.items():
        torch.testing.assert_close(getattr(rbm, name).grad, grad, msg=name)


def test_a_resumed_pcd_run_ends_exactly_as_an_uninterrupted_one(tmp_path):
    """The chains are part of last.pt, so training on from it repeats the same updates."""
    pcd = [*SMALL_RBM, "model.pcd=true", "trainer.checkpoint_every=1", "logger=none"]
    train_in_process(tmp_path / "whole", *pcd, "trainer.epochs=4")
    train_in_process(tmp_path / "half", *pcd, "trainer.epochs=2")
    resumed = train_in_process(
        tmp_path / "resumed", *pcd, "trainer.epochs=4", f"trainer.resume={tmp_path / 'half'}"
    )
    whole = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.pt")["model"]
    after = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")["model"]
    assert whole["chains"].shape == (64, 64)
    for name in whole:
        assert torch.equal(whole[name], after[name]), name
    assert resumed["epochs_run"] == 4


def test_pseudo_likelihood_and_free_energy_are_scikit_learns():
    """The same estimator: scikit-learn's trained parameters in our RBM give its free energy,
    and with the same flipped units its score_samples."""
    x = _digits01().x_train.flatten(1).double()
    sk = BernoulliRBM(n_components=20, n_iter=2, random_state=0).fit(x.numpy())
    ours = RBM(64, 20).double()
    with torch.no_grad():
        ours.weight.copy_(torch.from_numpy(sk.components_))
        ours.hidden_bias.copy_(torch.from_numpy(sk.intercept_hidden_))
        ours.visible_bias.copy_(torch.from_numpy(sk.intercept_visible_))
    # F(v) = −v·b − Σ softplus(Wv + c), from the fitted attributes scikit-learn documents
    v = x.numpy()
    hidden = v @ sk.components_.T + sk.intercept_hidden_
    expected_energy = -v @ sk.intercept_visible_ - np.logaddexp(0, hidden).sum(axis=1)
    np.testing.assert_allclose(ours.free_energy(x).detach().numpy(), expected_energy)
    # score_samples flips, in each sample, the unit its random_state draws next.
    flip = np.random.RandomState(0).randint(0, 64, len(x))
    expected = sk.score_samples(x.numpy())
    got = ours.pseudo_log_likelihood(x, flip=torch.from_numpy(flip)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_visible_biases_start_from_the_datas_mean_activation():
    data = _digits01()
    rbm = RBM(64, 8)
    rbm.prepare(data)
    p = data.x_train.flatten(1).mean(0).clamp(1e-3, 1 - 1e-3)
    assert torch.allclose(rbm.visible_bias, torch.log(p / (1 - p)))
    assert rbm.weight.std() < 0.02  # small random weights


def test_hidden_features_of_a_trained_rbm_feed_a_classifier(tmp_path):
    """`scripts/train.py model=rbm`, then a classifier on the hidden-unit probabilities."""
    train_in_process(tmp_path, *SMALL_RBM, "logger=none")
    features = hidden_features(tmp_path)
    data = _digits01()
    assert features.x_train.shape == (len(data.x_train), 32)
    assert torch.equal(features.y_test, data.y_test)
    assert 0 <= features.x_train.min() and features.x_train.max() <= 1
    classifier = LogisticRegression(max_iter=2000).fit(features.x_train, features.y_train)
    assert classifier.score(features.x_test, features.y_test) > 0.85


def test_gaussian_visible_units_learn_standardised_inputs(tmp_path):
    metrics = train_in_process(
        tmp_path,
        "model=rbm",
        "model.visible=gaussian",
        "model.n_hidden=32",
        "optim=momentum",
        "optim.lr=0.005",
        "trainer.epochs=6",
        "trainer.early_stopping.enabled=false",
    )
    val_loss, events = _scalars(tmp_path, "loss/val")
    assert val_loss[-1] < 0.8 * val_loss[0]
    assert "val_pll" not in metrics  # the flipped-unit estimator needs binary units
    assert len(events.Scalars("free_energy/gap")) == 6


def test_early_stopping_can_watch_the_pseudo_likelihood(tmp_path):
    """val_pll is maximised: the best epoch is the one with the highest value."""
    metrics = train_in_process(
        tmp_path, *SMALL_RBM, "trainer.early_stopping.monitor=val_pll", "trainer.epochs=6"
    )
    val_pll, _ = _scalars(tmp_path, "pll/val")
    assert metrics["best_monitor"] == pytest.approx(max(val_pll), rel=1e-6)
    assert metrics["best_epoch"] == 1 + val_pll.index(max(val_pll))


@pytest.mark.parametrize(
    "overrides, words",
    [
        (
            ["model=rbm", "data.unit_range=false"],
            ["model=rbm", "[0, 1]", "data.unit_range=true", "model.visible=gaussian"],
        ),
        (
            ["model=rbm", "trainer.early_stopping.monitor=val_acc"],
            ["monitor=val_acc", "val_pll", "gap_free_energy"],
        ),
        (["trainer.early_stopping.monitor=val_pll"], ["monitor=val_pll", "model=mlp", "val_acc"]),
        (["model=rbm", "loss=cross_entropy"], ["loss=cross_entropy"]),
        (["model=rbm", "reg=dropout"], ["reg.dropout", "reg=l2"]),
        (["model=rbm", "model.output_act=softmax"], ["output_act"]),
        (["data=diabetes", "data.labels_per_class=5"], ["labels_per_class", "regression"]),
        (["data=iris", "data.labels_per_class=40"], ["labels_per_class=40", "at most 30"]),
    ],
)
def test_settings_an_rbm_cannot_use_are_refused_before_training(tmp_path, overrides, words):
    with pytest.raises(ConfigError) as refused:
        train_in_process(tmp_path, *overrides, "logger=none")
    for word in words:
        assert word in str(refused.value), (word, str(refused.value))
    assert not (tmp_path / "checkpoints").exists()


def test_an_rbm_on_standardised_data_exits_2_with_one_line(tmp_path):
    result = run_cli(f"hydra.run.dir={tmp_path}", "model=rbm", "data.unit_range=false")
    assert result.returncode == 2
    assert result.stderr.startswith("error: model=rbm") and result.stderr.count("\n") == 1
    assert "data.unit_range=true" in result.stderr


def test_the_objective_of_an_rbm_is_its_reconstruction():
    """Validation loss = mean squared error between the inputs and σ(mean-field scores)."""
    x = _digits01().x_val.flatten(1)
    rbm = RBM(64, 8)
    task = inputs_as_targets("digits", x, x, x)
    objective = build_objective("auto", rbm.output_act, task.spec, RegConfig(), "rbm")
    with torch.no_grad():
        expected = (torch.sigmoid(rbm(x)) - x).square().mean()
        assert objective(rbm(x), task.y_val) == pytest.approx(expected.item())


@pytest.mark.parametrize(
    "overrides, unit_range",
    [
        (["model=mlp"], False),  # standardised
        (["model=rbm"], True),  # Bernoulli units: probabilities
        (["model=rbm", "model.visible=gaussian"], False),
        (["model=dbn"], True),
        (["model=dbn", "data=iris"], True),
        (["model=rbm", "data.unit_range=false"], False),  # as the user set it (then refused)
        (["model=mlp", "data.unit_range=true"], True),
    ],
)
def test_a_null_unit_range_becomes_what_the_model_needs(overrides, unit_range):
    assert make_config(*overrides).data.unit_range is unit_range


@pytest.mark.parametrize(
    "model", [["model=rbm"], ["model=dbn", "model.pretrain_epochs=1", "model.layers=[32]"]]
)
def test_rbm_and_dbn_train_on_digits_with_no_data_setting(tmp_path, model):
    result = run_cli(f"hydra.run.dir={tmp_path}", *model, "trainer.epochs=2", "logger=none")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2
    assert metrics["completion_error"] is not None


def test_an_rbm_completes_the_hidden_lower_half_of_digits_better_than_the_mean_image(tmp_path):
    metrics = train_in_process(tmp_path, *SMALL_RBM)
    print(
        f"completion error {metrics['completion_error']:.4f}, "
        f"mean image {metrics['completion_baseline_error']:.4f}"
    )
    assert metrics["completion_error"] < 0.95 * metrics["completion_baseline_error"]  # 0.069, 0.079
    _, events = _scalars(tmp_path, "loss/val")
    image = events.Images("rbm/completion")[-1]
    # 16 validation digits of 8×8 in three rows: originals, upper halves, completions.
    assert (image.width, image.height) == (16 * 9 - 1, 3 * 9 - 1)
    assert image.step == 8


def test_a_completion_keeps_the_given_half_and_leaves_the_training_rng_alone():
    data = _digits01()
    rbm = RBM(64, 16, init_std=1.0, shape=(1, 8, 8))
    rbm.prepare(data)
    x = data.x_val.flatten(1)[:20]
    hidden = rbm.hidden_half()
    assert hidden.tolist() == [False] * 32 + [True] * 32  # rows 4 to 7 of 8
    state = torch.get_rng_state()
    completed = rbm.complete(x, hidden)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(completed[:, :32], x[:, :32])
    assert torch.equal(rbm.complete(x, hidden), completed)  # its own seeded generator
    assert 0 <= completed.min() and completed.max() <= 1
    assert rbm.completion_metrics(x, data.x_train).keys() == {
        "completion_error",
        "completion_baseline_error",
    }
    assert RBM(64, 16).completion_metrics(x, data.x_train) == {}  # not images: no completion
