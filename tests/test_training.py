"""The training spine: gradient-descent modes, the perceptron rule, early stopping,
determinism and every group's choices, through the same `train()` the CLI calls."""

import itertools

import pytest
import torch

from conftest import make_config, read_metrics, train_in_process
from dlbasics.activations import step
from dlbasics.checkpoint import load_checkpoint
from dlbasics.data import build_data
from dlbasics.errors import ConfigError
from dlbasics.losses import build_objective
from dlbasics.models import build_model
from dlbasics.trainer import Trainer

QUIET = ["logger=none"]
# 1250 moons with 125 held out twice leave exactly 1000 training samples.
THOUSAND = ["data=moons", "data.n_samples=1250", "data.val_size=125", "data.test_size=125"]
NO_EARLY_STOP = ["trainer.early_stopping.enabled=false"]


def test_thousand_samples_batch_100_ten_epochs_is_100_steps(tmp_path):
    metrics = train_in_process(
        tmp_path,
        *THOUSAND,
        *QUIET,
        *NO_EARLY_STOP,
        "trainer.batch_size=100",
        "trainer.epochs=10",
    )
    assert metrics["n_train"] == 1000
    assert metrics["steps"] == 100
    assert metrics["epochs_run"] == 10


def test_batch_mode_takes_one_step_per_epoch(tmp_path):
    metrics = train_in_process(
        tmp_path, *THOUSAND, *QUIET, *NO_EARLY_STOP, "trainer=batch", "trainer.epochs=7"
    )
    assert metrics["steps"] == 7


def test_sgd_mode_takes_one_step_per_sample(tmp_path):
    metrics = train_in_process(
        tmp_path, *THOUSAND, *QUIET, *NO_EARLY_STOP, "trainer=sgd", "trainer.epochs=2"
    )
    assert metrics["steps"] == 2000


@pytest.mark.parametrize("gate", ["and", "or", "nand"])
def test_perceptron_rule_learns_linearly_separable_gates(tmp_path, gate):
    metrics = train_in_process(
        tmp_path,
        "model=perceptron",
        f"data={gate}",
        "optim=sgd",
        "trainer=sgd",
        "trainer.epochs=50",
        *QUIET,
    )
    assert metrics["test_acc"] == 1.0


def test_perceptron_cannot_learn_xor(tmp_path):
    metrics = train_in_process(
        tmp_path,
        "model=perceptron",
        "data=xor",
        "optim=sgd",
        "trainer=sgd",
        "trainer.epochs=200",
        *NO_EARLY_STOP,
        *QUIET,
    )
    assert metrics["test_acc"] <= 0.75


def test_mlp_with_one_hidden_layer_learns_xor(tmp_path):
    metrics = train_in_process(
        tmp_path,
        "data=xor",
        "model=mlp",
        "model.hidden=[4]",
        "act=tanh",
        "optim=momentum",
        "optim.lr=0.1",
        "trainer=batch",
        *QUIET,
    )
    assert metrics["test_acc"] == 1.0


def test_perceptron_update_is_rosenblatts_rule():
    """One SGD step on one sample changes w by lr·(t − y)·x and b by lr·(t − y)."""
    cfg = make_config("model=perceptron", "data=or", "optim=sgd", "optim.lr=0.5")
    data = build_data(cfg.data)
    model = build_model(cfg, data.spec)
    objective = build_objective("auto", "step", data.spec, cfg.reg, "perceptron")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    x, t = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0]])  # target 1, output step(0) = 0
    model.write_gradients(x, t, objective)
    optimizer.step()
    assert model.linear.weight.tolist() == [[0.5, 0.0]]
    assert model.linear.bias.tolist() == [0.5]


@pytest.mark.parametrize("data_name", ["and", "digits"])  # one output unit; ten (one-vs-rest)
def test_perceptron_step_reports_the_objectives_loss_exactly(data_name):
    """The perceptron computes its loss from the outputs it has already stepped; it must be
    what the objective says of the scores, bit for bit."""
    cfg = make_config("model=perceptron", f"data={data_name}", "optim=sgd")
    data = build_data(cfg.data)
    torch.manual_seed(0)
    model = build_model(cfg, data.spec)
    torch.nn.init.normal_(model.linear.weight)  # outputs of 0 and 1, not only 0
    objective = build_objective("auto", "step", data.spec, cfg.reg, "perceptron")
    x, y = data.x_train[:50], data.y_train[:50]
    loss, scores = model.write_gradients(x, y, objective)
    assert 0 < loss.item() < 1
    assert torch.equal(loss, objective(scores, y))
    assert torch.equal(scores, model(x))


def test_perceptron_gradients_on_a_batch_are_the_rule_averaged_over_its_samples():
    cfg = make_config("model=perceptron", "data=digits", "optim=sgd")
    data = build_data(cfg.data)
    torch.manual_seed(0)
    model = build_model(cfg, data.spec)
    torch.nn.init.normal_(model.linear.weight)
    objective = build_objective("auto", "step", data.spec, cfg.reg, "perceptron")
    x, y = data.x_train[:50].flatten(1), data.y_train[:50]
    model.write_gradients(x, y, objective)
    # −(t − y)·x and −(t − y), as a mean over the batch, written out
    minus_error = step(model(x).detach()) - objective.as_values(y)
    assert torch.equal(model.linear.weight.grad, minus_error.T @ x / len(x))
    assert torch.equal(model.linear.bias.grad, minus_error.mean(dim=0))


def _overfitting_setup(tmp_path, restore_best=True):
    """A wide network on few, noisy points: validation loss turns up while training loss
    keeps falling."""
    cfg = make_config(
        "data=moons",
        "data.n_samples=80",
        "data.noise=0.45",
        "model.hidden=[256,256]",
        "optim.lr=0.01",
        "trainer.epochs=400",
        "trainer.batch_size=16",
        "trainer.early_stopping.patience=15",
        f"trainer.early_stopping.restore_best={str(restore_best).lower()}",
        *QUIET,
    )
    data = build_data(cfg.data)
    torch.manual_seed(cfg.trainer.seed)
    model = build_model(cfg, data.spec)
    objective = build_objective(cfg.loss.name, "auto", data.spec, cfg.reg, "mlp")
    cpu = torch.device("cpu")
    trainer = Trainer(cfg.trainer, cfg.optim, cfg.schedule, cpu, checkpoint_dir=tmp_path)
    return trainer, model, data, objective


def test_early_stopping_stops_an_overfitting_run_and_restores_the_best_weights(tmp_path):
    trainer, model, data, objective = _overfitting_setup(tmp_path)
    fit = trainer.fit(model, data, objective)
    assert fit.stop_reason == "early_stopping"
    assert fit.epochs_run < 400
    assert fit.epochs_run == fit.best_epoch + 15
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == fit.best_epoch
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, best["model"][name]), name
    val_loss, _ = trainer.evaluate(model, data.x_val, data.y_val, objective)
    assert val_loss == pytest.approx(fit.best_val_loss, rel=1e-6)
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == fit.epochs_run


def test_without_restore_best_the_last_weights_stay(tmp_path):
    trainer, model, data, objective = _overfitting_setup(tmp_path, restore_best=False)
    fit = trainer.fit(model, data, objective)
    val_loss, _ = trainer.evaluate(model, data.x_val, data.y_val, objective)
    assert val_loss > fit.best_val_loss


def test_same_seed_same_metrics_different_seed_different(tmp_path):
    args = ["data=moons", "trainer.epochs=5", *QUIET]
    first = train_in_process(tmp_path / "a", *args)
    second = train_in_process(tmp_path / "b", *args)
    third = train_in_process(tmp_path / "c", *args, "seed=1")
    timing = {"fit_seconds"}
    assert {k: v for k, v in first.items() if k not in timing} == {
        k: v for k, v in second.items() if k not in timing
    }
    assert read_metrics(tmp_path / "a") == first
    assert third["test_loss"] != first["test_loss"]


def test_metrics_json_has_the_promised_keys(tmp_path):
    train_in_process(tmp_path, "data=iris", "trainer.epochs=3", *QUIET)
    metrics = read_metrics(tmp_path)
    for key in (
        "test_loss",
        "test_acc",
        "best_epoch",
        "best_val_loss",
        "epochs_run",
        "steps",
        "stop_reason",
        "fit_seconds",
        "device",
        "n_params",
    ):
        assert key in metrics, key
    assert metrics["device"] == "cpu"
    assert metrics["n_params"] == 4 * 128 + 128 + 128 * 64 + 64 + 64 * 3 + 3


def test_regression_reports_loss_and_no_accuracy(tmp_path):
    metrics = train_in_process(tmp_path, "data=diabetes", "trainer.epochs=30", *QUIET)
    assert metrics["task"] == "regression"
    assert metrics["test_acc"] is None
    assert metrics["test_loss"] < 0.8  # standardised target: predicting the mean scores ~1


def test_digits_mlp_default_reaches_97_percent(tmp_path):
    metrics = train_in_process(tmp_path, *QUIET)
    assert metrics["test_acc"] >= 0.97


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["loss=bce"], "loss=bce needs a binary task"),
        (["loss=cross_entropy", "data=diabetes"], "needs class labels"),
        (["loss=cross_entropy", "model.output_act=identity"], "model.output_act=identity"),
        (["data=moons", "model.output_act=softmax"], "always 1"),
        (["model=perceptron", "data=diabetes"], "regression"),
        (["model=perceptron", "reg=l2"], "reg.l2=0.0001 does not apply to model=perceptron"),
        (["data=diabetes", "trainer.early_stopping.monitor=train_acc"], "has no accuracy"),
    ],
)
def test_combinations_that_cannot_work_are_refused(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        train_in_process(tmp_path, *overrides, "trainer.epochs=1", *QUIET)


GROUP_CHOICES = {
    "act": ["step", "sigmoid", "tanh", "relu", "leaky_relu", "gelu", "identity"],
    "loss": ["auto", "mse", "cross_entropy", "bce"],
    "optim": ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"],
    "reg": ["none", "l1", "l2", "dropout"],
    "trainer": ["batch", "sgd", "minibatch"],
    "data": [
        "and",
        "or",
        "nand",
        "xor",
        "oysters",
        "moons",
        "circles",
        "digits",
        "iris",
        "wine",
        "breast_cancer",
        "diabetes",
        "seq_digits",
        "sine",
        "adding",
    ],
}


def _one_epoch_or_config_error(run_dir, overrides):
    try:
        metrics = train_in_process(run_dir, *overrides, "trainer.epochs=1", *QUIET)
    except ConfigError as error:
        assert "=" in str(error)  # names a key and its value
        return "refused"
    assert metrics["epochs_run"] == 1 and metrics["steps"] >= 1
    return "trained"


@pytest.mark.parametrize("group", sorted(GROUP_CHOICES))
def test_every_choice_of_each_group_trains(tmp_path, group):
    data = [] if group == "data" else ["data=iris"]
    for choice in GROUP_CHOICES[group]:
        outcome = _one_epoch_or_config_error(tmp_path / choice, [*data, f"{group}={choice}"])
        if (group, choice) not in {("loss", "bce")}:  # bce on iris' 3 classes is refused
            assert outcome == "trained", choice


def test_every_model_loss_and_task_combination_trains_or_is_refused(tmp_path):
    outcomes = {}
    for model, loss, data in itertools.product(
        ["perceptron", "mlp"], GROUP_CHOICES["loss"], ["xor", "iris", "diabetes"]
    ):
        outcomes[model, loss, data] = _one_epoch_or_config_error(
            tmp_path / f"{model}-{loss}-{data}", [f"model={model}", f"loss={loss}", f"data={data}"]
        )
    assert outcomes["mlp", "auto", "diabetes"] == "trained"
    assert outcomes["perceptron", "auto", "iris"] == "trained"
    assert outcomes["mlp", "bce", "iris"] == "refused"


@pytest.mark.parametrize("schedule", ["step", "cosine", "plateau"])
def test_learning_rate_schedules_change_the_lr(tmp_path, schedule):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # plateau: a learning rate too small to improve anything, so the metric stalls at once
    lr = 1e-7 if schedule == "plateau" else 0.1
    train_in_process(
        tmp_path,
        "data=iris",
        "optim=sgd",
        f"optim.lr={lr}",
        f"schedule={schedule}",
        *{"step": ["schedule.step_size=2"], "plateau": ["schedule.patience=0"]}.get(schedule, []),
        "trainer.epochs=8",
        *NO_EARLY_STOP,
    )
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    lrs = [s.value for s in events.Scalars("lr")]
    assert lrs[0] == pytest.approx(lr)
    assert lrs[-1] < lrs[0] * 0.9


@pytest.mark.parametrize("mode", ["norm", "value"])
def test_gradient_clipping_runs(tmp_path, mode):
    metrics = train_in_process(
        tmp_path,
        "data=iris",
        "trainer.grad_clip=0.5",
        f"trainer.grad_clip_mode={mode}",
        "trainer.epochs=3",
        *QUIET,
    )
    assert metrics["epochs_run"] == 3


def test_dropout_puts_dropout_layers_in_the_mlp():
    cfg = make_config("reg=dropout")
    data = build_data(make_config("data=iris").data)
    model = build_model(cfg, data.spec)
    rates = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert rates == [0.5, 0.5]
