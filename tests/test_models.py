"""The model zoo: DNN, CNN and RNN (LSTM, GRU) as `model=` choices. Each learns on a small
configuration, refuses data of the wrong shape before training, and builds what its keys say;
the `slow` tests check the full accuracy targets of the default YAML files."""

import pytest
import torch
from torch import nn

from conftest import make_config, train_in_process
from dlbasics.data import build_data
from dlbasics.errors import ConfigError
from dlbasics.models import build_model
from dlbasics.models.mlp import BatchNorm

QUIET = ["logger=none"]
SMALL_RNN = ["model=rnn", "model.hidden_size=32"]


def _build(*overrides):
    cfg = make_config(*overrides)
    data = build_data(cfg.data)
    return build_model(cfg, data.spec), data


# --- each model learns on a small configuration (chance: 0.1 on ten digits) -----------------


def test_dnn_learns_digits(tmp_path):
    metrics = train_in_process(
        tmp_path, "model=dnn", "model.depth=2", "model.width=64", "trainer.epochs=5", *QUIET
    )
    assert metrics["test_acc"] > 0.85


def test_cnn_learns_digits_as_images(tmp_path):
    metrics = train_in_process(
        tmp_path, "model=cnn", "model.channels=[8,16]", "model.dense=[]", "trainer.epochs=5", *QUIET
    )
    assert metrics["test_acc"] > 0.8


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_each_recurrent_cell_learns_digits_read_row_by_row(tmp_path, cell):
    metrics = train_in_process(
        tmp_path, *SMALL_RNN, f"cell={cell}", "data=seq_digits", "trainer.epochs=10", *QUIET
    )
    assert metrics["test_acc"] > 0.6


@pytest.mark.parametrize("many_to_many", [False, True])
def test_lstm_forecasts_the_next_sine_value(tmp_path, many_to_many):
    metrics = train_in_process(
        tmp_path,
        *SMALL_RNN,
        "data=sine",
        "data.n_samples=500",
        f"data.many_to_many={str(many_to_many).lower()}",
        "optim.lr=0.01",
        "trainer.epochs=20",
        *QUIET,
    )
    assert metrics["test_acc"] is None
    assert metrics["test_loss"] < 0.1  # predicting 0 scores 0.5


def test_lstm_solves_a_short_adding_problem(tmp_path):
    metrics = train_in_process(
        tmp_path,
        "model=rnn",
        "model.hidden_size=16",
        "data=adding",
        "data.length=10",
        "data.n_samples=2000",
        "optim.lr=0.01",
        "trainer.batch_size=32",
        "trainer.epochs=20",
        *QUIET,
    )
    assert metrics["test_loss"] < 0.05  # predicting the mean scores 1/6


# --- which model takes which data ------------------------------------------------------------

DATA_KINDS = {
    "image": ["data=digits"],
    "sequence": ["data=seq_digits"],
    "vector": ["data=iris"],
    "per_step": ["data=sine", "data.many_to_many=true", "data.n_samples=100"],
}
TAKES = {
    "perceptron": {"image", "sequence", "vector"},  # a classifier; flattens any sample
    "mlp": {"image", "sequence", "vector"},
    "dnn": {"image", "sequence", "vector"},
    "cnn": {"image"},
    "rnn": {"sequence", "per_step"},
}


@pytest.mark.parametrize("model", sorted(TAKES))
def test_each_model_trains_on_the_data_it_fits_and_refuses_the_rest(tmp_path, model):
    for kind, data in DATA_KINDS.items():
        overrides = [f"model={model}", *data, "trainer.epochs=1", *QUIET]
        if kind in TAKES[model]:
            assert train_in_process(tmp_path / kind, *overrides)["steps"] >= 1, kind
        else:
            with pytest.raises(ConfigError, match=f"model={model}"):
                train_in_process(tmp_path / kind, *overrides)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model=cnn", "data=iris"], r"needs image-shaped samples .* data=iris gives .*\(4,\)"),
        (["model=cnn", "data=seq_digits"], r"image-shaped samples .* \(8, 8\)"),
        (["model=rnn", "data=digits"], r"needs sequences, .* data=digits gives .*\(1, 8, 8\)"),
        (["model=rnn", "data=wine"], r"needs sequences, .* \(13,\)"),
        (["model=mlp", "data=sine", "data.many_to_many=true"], "only model=rnn"),
        (["model=dnn", "data=sine", "data.many_to_many=true"], "only model=rnn"),
        (["model=cnn", "model.channels=[8,8,8,8]"], r"at most 3 blocks"),
        (["model=cnn", "model.pool_size=16"], r"model.pool_size=16 is larger than the 8×8"),
        (["model=cnn", "model.kernel_size=9"], r"model.kernel_size=9 is larger than the 8×8"),
        (["model=dnn", "trainer=sgd"], "model.norm=batch"),
    ],
)
def test_shape_mismatches_are_config_errors_at_build_time(overrides, message):
    with pytest.raises(ConfigError, match=message):
        _build(*overrides)


@pytest.mark.parametrize(
    "override, key",
    [
        ("model.norm=group", "model.norm"),
        ("model.init=orthogonal", "model.init"),
        ("model.depth=0", "model.depth"),
        ("model.hidden=[64,0]", "model.hidden"),
    ],
)
def test_dnn_keys_are_range_checked(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        make_config("model=dnn", override)


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["model=cnn", "model.pool=median"], "model.pool"),
        (["model=cnn", "model.channels=[]"], "model.channels"),
        (["model=cnn", "model.kernel_size=0"], "model.kernel_size"),
        (["model=rnn", "model.cell=transformer"], "model.cell"),
        (["model=rnn", "model.hidden_size=0"], "model.hidden_size"),
        (["model=rnn", "model.num_layers=0"], "model.num_layers"),
    ],
)
def test_cnn_and_rnn_keys_are_range_checked(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        make_config(*overrides)


# --- the DNN builds what its keys say ---------------------------------------------------------


def test_dnn_depth_and_width_or_an_explicit_list():
    model, _ = _build("model=dnn", "model.depth=4", "model.width=32", "model.norm=none")
    assert [m.out_features for m in model.modules() if isinstance(m, nn.Linear)] == [32] * 4 + [10]
    model, _ = _build("model=dnn", "model.depth=4", "model.hidden=[50,20]", "model.norm=none")
    assert [m.out_features for m in model.modules() if isinstance(m, nn.Linear)] == [50, 20, 10]


@pytest.mark.parametrize("norm, layer", [("batch", BatchNorm), ("layer", nn.LayerNorm)])
def test_dnn_normalises_each_hidden_layer_before_its_activation(norm, layer):
    model, _ = _build("model=dnn", "model.depth=2", "model.width=16", f"model.norm={norm}")
    kinds = [type(m) for m in model.net]
    assert kinds == [nn.Linear, layer, nn.ReLU, nn.Linear, layer, nn.ReLU, nn.Linear]


def test_batch_norm_takes_a_last_batch_of_one_sample(tmp_path):
    metrics = train_in_process(
        tmp_path,
        "model=dnn",
        "model.width=16",
        "data=iris",
        "data.val_size=15",
        "data.test_size=30",
        "trainer.batch_size=8",  # 105 training samples: 13 batches of 8, then one of 1
        "trainer.epochs=2",
        *QUIET,
    )
    assert metrics["n_train"] == 105 and metrics["steps"] == 2 * 14


def test_dnn_dropout_follows_reg_dropout():
    model, _ = _build("model=dnn", "model.depth=3", "reg.dropout=0.25")
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.25] * 3


@pytest.mark.parametrize(
    "init, expected_std",
    [
        ("he_normal", lambda fan_in, fan_out: (2 / fan_in) ** 0.5),
        ("he_uniform", lambda fan_in, fan_out: (2 / fan_in) ** 0.5),
        ("xavier_normal", lambda fan_in, fan_out: (2 / (fan_in + fan_out)) ** 0.5),
        ("xavier_uniform", lambda fan_in, fan_out: (2 / (fan_in + fan_out)) ** 0.5),
        ("normal", lambda fan_in, fan_out: 0.01),
    ],
)
def test_dnn_initialisation_gives_each_scheme_its_weight_scale(init, expected_std):
    torch.manual_seed(0)
    model, _ = _build("model=dnn", "model.depth=2", "model.width=512", f"model.init={init}")
    for layer in (m for m in model.modules() if isinstance(m, nn.Linear)):
        fan_out, fan_in = layer.weight.shape
        if fan_out >= 100:  # enough weights for a steady estimate
            assert layer.weight.std().item() == pytest.approx(
                expected_std(fan_in, fan_out), rel=0.1
            )
        assert torch.all(layer.bias == 0)


def test_he_initialisation_accounts_for_the_leaky_relu_slope():
    torch.manual_seed(0)
    model, _ = _build(
        "model=dnn", "model.init=he_normal", "act=leaky_relu", "act.negative_slope=1.0"
    )
    first = model.net[0].weight  # slope 1 makes the unit linear: variance 1 / fan_in
    assert first.std().item() == pytest.approx((1 / first.shape[1]) ** 0.5, rel=0.1)


def test_zero_initialisation_never_breaks_symmetry(tmp_path):
    """With every weight at zero, every hidden unit computes the same thing and receives the
    same gradient, so after training the units of a layer are still copies of each other."""
    cfg = make_config(
        "model=dnn",
        "model.depth=2",
        "model.width=16",
        "model.norm=none",
        "model.init=zeros",
        "act=sigmoid",
        "trainer.epochs=30",
        *QUIET,
    )
    from dlbasics.run import train

    zeros = train(cfg, tmp_path / "zeros", progress=False)
    trained = torch.load(tmp_path / "zeros/checkpoints/best.pt", weights_only=True)["model"]
    for name in ("net.0.weight", "net.2.weight"):
        rows = trained[name]
        assert torch.allclose(rows, rows[:1].expand_as(rows)), name
    he = train_in_process(
        tmp_path / "he",
        "model=dnn",
        "model.depth=2",
        "model.width=16",
        "model.norm=none",
        "act=sigmoid",
        "trainer.epochs=30",
        *QUIET,
    )
    assert he["test_acc"] > zeros["test_acc"] + 0.3


# --- the CNN and the RNN --------------------------------------------------------------------


def test_cnn_blocks_and_parameter_count():
    model, data = _build(
        "model=cnn", "model.channels=[4,6]", "model.kernel_size=3", "model.dense=[10]"
    )
    assert data.spec.input_shape == (1, 8, 8)
    kinds = [type(m).__name__ for m in model.features]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"] * 2
    conv = (1 * 9 + 1) * 4 + 2 * 4 + (4 * 9 + 1) * 6 + 2 * 6  # kernels, biases, batch norm
    dense = (6 * 2 * 2 + 1) * 10 + (10 + 1) * 10  # 8×8 pooled twice: 2×2 maps
    assert sum(p.numel() for p in model.parameters()) == conv + dense


def test_cnn_average_pooling_and_no_batch_norm():
    model, _ = _build("model=cnn", "model.pool=avg", "model.batch_norm=false")
    kinds = [type(m).__name__ for m in model.features]
    assert kinds == ["Conv2d", "ReLU", "AvgPool2d"] * 2


def test_cell_shorthand_sets_model_cell():
    assert make_config("model=rnn", "cell=gru").model.cell == "gru"
    assert make_config("model=rnn").model.cell == "lstm"
    model, _ = _build("model=rnn", "cell=gru", "data=seq_digits")
    assert isinstance(model.recurrent, nn.GRU)


def test_rnn_many_to_many_gives_an_output_per_step():
    model, data = _build(*SMALL_RNN, "data=sine", "data.many_to_many=true", "data.length=12")
    assert model(data.x_train[:5]).shape == (5, 12, 1) == data.y_train[:5].shape


def test_bidirectional_rnn_reads_the_final_state_of_each_direction():
    """Many-to-one reads the forward direction after the last step and the backward
    direction after the first step (where it has read the whole sequence)."""
    model, data = _build(
        *SMALL_RNN, "data=seq_digits", "model.bidirectional=true", "model.num_layers=2"
    )
    x = data.x_train[:4]
    states, _ = model.recurrent(x)
    expected = torch.cat([states[:, -1, :32], states[:, 0, 32:]], dim=1)
    assert torch.allclose(model(x), model.head(expected))


def test_stacked_rnn_takes_dropout_between_layers():
    model, _ = _build(*SMALL_RNN, "data=seq_digits", "model.num_layers=3", "reg.dropout=0.2")
    assert model.recurrent.num_layers == 3 and model.recurrent.dropout == 0.2


def test_lstm_forget_gates_start_open():
    model, _ = _build(*SMALL_RNN, "data=seq_digits")
    forget = model.recurrent.bias_ih_l0[32:64]
    assert torch.all(forget == 1.0)


# --- the accuracy targets of the default YAML files (slow) ------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides, target",
    [
        (["model=dnn"], 0.97),
        (["model=cnn"], 0.985),
        (["model=rnn", "cell=lstm", "data=seq_digits"], 0.95),
    ],
)
def test_default_models_reach_their_accuracy_targets(tmp_path, overrides, target):
    metrics = train_in_process(tmp_path, *overrides, *QUIET)
    assert metrics["test_acc"] >= target


@pytest.mark.slow
def test_lstm_solves_the_adding_problem_at_length_50(tmp_path):
    metrics = train_in_process(tmp_path, "model=rnn", "cell=lstm", "data=adding", *QUIET)
    assert metrics["test_loss"] < 0.01


@pytest.mark.slow
def test_plain_rnn_fails_the_adding_problem_at_length_50(tmp_path):
    metrics = train_in_process(
        tmp_path, "model=rnn", "cell=rnn", "data=adding", "trainer.epochs=40", *QUIET
    )
    assert metrics["test_loss"] > 0.1  # no better than about the mean's 1/6
