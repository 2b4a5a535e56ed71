"""Every lesson of the notes (configs/experiment/, docs/lessons.md) happens: each test trains
the preset, as `python scripts/train.py experiment=NAME` would, and checks the outcome the
lesson claims on the metrics and TensorBoard files it writes. The fast tests run shortened
versions; the `slow` ones run the presets as shipped, every job of their sweep."""

import statistics
import sys

import pytest
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import CONFIGS, ROOT, make_config, read_metrics, run_cli, train_in_process
from dlbasics.sweeps.curves import event_dir

EXPERIMENTS = CONFIGS / "experiment"
LESSONS = [
    "xor_perceptron", "xor_mlp", "gates", "oysters", "vanishing_gradients", "dying_relu",
    "gd_modes", "optimizers", "overfitting", "exploding_gradients", "normalization", "init",
    "linear_collapse", "ensembles", "attention",
]  # fmt: skip


def lesson(run_dir, name, *overrides):
    """Train preset ``name`` (with ``overrides``) into ``run_dir``; its metrics.json."""
    train_in_process(run_dir, f"experiment={name}", *overrides)
    return read_metrics(run_dir)


def scalars(run_dir, tag):
    # tb/ of a run trained in this process; tb/<overrides>/ of one the command line trained
    events = EventAccumulator(str(event_dir(run_dir)), size_guidance={"scalars": 0})
    events.Reload()
    return [event.value for event in events.Scalars(tag)]


def sweep_params(name):
    """The preset's own sweep (hydra.sweeper.params): key → list of values."""
    params = OmegaConf.load(EXPERIMENTS / f"{name}.yaml").hydra.sweeper.params
    return {key: str(values) for key, values in params.items()}


def hidden_activation_of(run_dir):
    return OmegaConf.load(run_dir / ".hydra/config.yaml").act.name


def mean_dead_fraction(run_dir, layers):
    return statistics.mean(scalars(run_dir, f"diag/dead/layer{i:02d}")[-1] for i in layers)


def loss_gap(metrics):
    return metrics["final_val_loss"] - metrics["final_train_loss"]


# --- every preset ------------------------------------------------------------------------


def test_every_lesson_has_a_preset_that_says_what_to_look_at():
    assert sorted(path.stem for path in EXPERIMENTS.glob("*.yaml")) == sorted(LESSONS)
    for name in LESSONS:
        text = (EXPERIMENTS / f"{name}.yaml").read_text()
        header = text.split("defaults:")[0]
        assert text.startswith("# @package _global_\n"), name
        assert "TensorBoard" in header and f"experiment={name}" in header, name
        make_config(f"experiment={name}")  # composes and validates


def test_a_preset_is_overridden_by_the_command_line():
    cfg = make_config("experiment=vanishing_gradients", "act=relu", "model.depth=3")
    assert (cfg.act.name, cfg.model.depth, cfg.model.norm) == ("relu", 3, "none")


# --- fast: shortened lessons -------------------------------------------------------------


def test_a_perceptron_cannot_learn_xor_and_one_hidden_layer_can(tmp_path):
    perceptron = lesson(tmp_path / "p", "xor_perceptron", "diag=none")
    mlp = lesson(tmp_path / "m", "xor_mlp", "diag=none")
    assert perceptron["train_acc"] <= 0.75 and max(scalars(tmp_path / "p", "acc/train")) <= 0.75
    assert mlp["train_acc"] == 1.0 and mlp["test_acc"] == 1.0


def test_the_oyster_threshold_is_learned_near_7_5_cm_and_beats_the_rule(tmp_path):
    metrics = lesson(tmp_path, "oysters")
    assert metrics["learned_threshold"] == pytest.approx(7.5, abs=0.5)
    assert metrics["test_acc"] > metrics["rule_test_acc"]


def test_sigmoid_gradients_vanish_towards_the_input_and_relu_ones_do_not(tmp_path):
    # The preset's own sweep, through the real command line, one epoch each; then the report
    # overlays the first layer's gradient norms of the three jobs.
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        "-m", "experiment=vanishing_gradients", f"hydra.sweep.dir={sweep_dir}",
        "trainer.epochs=1", "diag.histograms_every=0", "diag.decision_boundary=false",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    ratio = {}
    for job in ("0", "1", "2"):
        act = hidden_activation_of(sweep_dir / job)
        first = scalars(sweep_dir / job, "grad_norm/layer01")[0]
        last = scalars(sweep_dir / job, "grad_norm/layer11")[0]
        ratio[act] = first / last
    assert set(ratio) == {"sigmoid", "tanh", "relu"}
    assert ratio["sigmoid"] * 100 <= ratio["relu"], ratio
    assert ratio["sigmoid"] < ratio["tanh"], ratio

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from report import main as report
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert report([str(sweep_dir), "--plot", "--tags", "grad_norm/layer01,loss/train"]) == 0
    for name in ("grad_norm_layer01.png", "loss_train.png"):
        assert (sweep_dir / name).read_bytes().startswith(b"\x89PNG"), name
    assert report([str(sweep_dir), "--plot", "--tags", "no/such_tag"]) == 2


def test_more_relu_units_die_than_leaky_relu_units(tmp_path):
    lesson(tmp_path / "relu", "dying_relu", "act=relu", "diag.histograms_every=0")
    lesson(tmp_path / "leaky", "dying_relu", "act=leaky_relu", "diag.histograms_every=0")
    relu = mean_dead_fraction(tmp_path / "relu", range(1, 5))
    leaky = mean_dead_fraction(tmp_path / "leaky", range(1, 5))
    assert relu > leaky, (relu, leaky)


def test_clipping_turns_a_diverging_rnn_into_a_converging_one(tmp_path):
    short = ("trainer.epochs=3", "diag.histograms_every=0")
    exploding = lesson(tmp_path / "no_clip", "exploding_gradients", *short)
    clipped = lesson(tmp_path / "clip", "exploding_gradients", "trainer.grad_clip=1", *short)
    assert exploding["stop_reason"] == "diverged"
    assert max(scalars(tmp_path / "no_clip", "grad_norm/total_max")) > 1e6
    assert clipped["stop_reason"] == "max_epochs" and clipped["test_loss"] < 0.1
    losses = scalars(tmp_path / "clip", "loss/train")
    assert losses[-1] < losses[0]


def test_each_remedy_shrinks_the_overfitting_gap_short(tmp_path):
    short = ("trainer.epochs=150", "diag=none")
    bare = loss_gap(lesson(tmp_path / "none", "overfitting", *short))
    l2 = loss_gap(lesson(tmp_path / "l2", "overfitting", "reg=l2", *short))
    stopped = lesson(tmp_path / "es", "overfitting", "trainer.early_stopping.enabled=true", *short)
    assert l2 < bare and loss_gap(stopped) < bare, (bare, l2, loss_gap(stopped))
    assert stopped["stop_reason"] == "early_stopping"


def test_gd_modes_take_one_step_per_epoch_per_sample_and_per_batch(tmp_path):
    steps = {
        mode: lesson(tmp_path / mode, "gd_modes", f"trainer={mode}", "trainer.epochs=2")["steps"]
        for mode in ("batch", "sgd", "minibatch")
    }
    assert steps == {"batch": 2, "sgd": 2 * 300, "minibatch": 2 * 5}


def test_attention_reverses_whole_strings_and_the_bottleneck_does_not_short(tmp_path):
    """Reversing 10 digits with a small LSTM encoder-decoder for 10 epochs: with attention
    nearly every string comes out right (seeds 0 and 1: 1.0, 0.9975); squeezed through the
    encoder's final state, about one in nine (0.117, 0.119)."""
    small = ["data.length=10", "data.n_samples=4000", "model.hidden_size=64", "trainer.epochs=10"]
    runs = {
        attention: lesson(tmp_path / attention, "attention", f"model.attention={attention}", *small)
        for attention in ("none", "dot")
    }
    assert runs["dot"]["monitor"] == "val_exact"
    assert runs["dot"]["test_exact"] >= 0.95
    assert runs["none"]["test_exact"] < 0.5


def test_zero_initialisation_never_learns(tmp_path):
    metrics = lesson(tmp_path, "init", "model.init=zeros", "trainer.epochs=3")
    assert metrics["final_train_acc"] < 0.2  # chance on 10 classes


# --- slow: the presets as shipped, every job of their sweep ------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("gate", ["and", "or", "nand"])
def test_one_perceptron_learns_each_linearly_separable_gate(tmp_path, gate):
    assert sweep_params("gates") == {"data": "and,or,nand"}
    assert lesson(tmp_path, "gates", f"data={gate}")["train_acc"] == 1.0


@pytest.mark.slow
def test_xor_presets_as_shipped(tmp_path):
    assert lesson(tmp_path / "p", "xor_perceptron")["test_acc"] <= 0.75
    assert lesson(tmp_path / "m", "xor_mlp")["test_acc"] == 1.0
    for name in ("p", "m"):
        assert (tmp_path / name / "decision_boundary.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_oyster_lesson_holds_for_other_seeds(tmp_path, seed):
    metrics = lesson(tmp_path, "oysters", f"seed={seed}")
    assert metrics["learned_threshold"] == pytest.approx(7.5, abs=0.5)
    assert metrics["test_acc"] > metrics["rule_test_acc"]


@pytest.mark.slow
def test_vanishing_gradients_as_shipped(tmp_path):
    ratio, acc = {}, {}
    for act in ("sigmoid", "tanh", "relu"):
        metrics = lesson(tmp_path / act, "vanishing_gradients", f"act={act}")
        first = scalars(tmp_path / act, "grad_norm/layer01")
        last = scalars(tmp_path / act, "grad_norm/layer11")
        ratio[act] = first[0] / last[0]
        acc[act] = metrics["test_acc"]
    assert ratio["sigmoid"] * 100 <= ratio["relu"], ratio
    assert acc["sigmoid"] < 0.2 and acc["relu"] > 0.9 and acc["tanh"] > 0.9, acc


@pytest.mark.slow
def test_dying_relu_as_shipped(tmp_path):
    lesson(tmp_path / "relu", "dying_relu", "act=relu")
    lesson(tmp_path / "leaky", "dying_relu", "act=leaky_relu")
    relu = mean_dead_fraction(tmp_path / "relu", range(1, 5))
    leaky = mean_dead_fraction(tmp_path / "leaky", range(1, 5))
    assert relu > leaky and relu > 0.2, (relu, leaky)


@pytest.mark.slow
def test_gd_modes_as_shipped(tmp_path):
    metrics = {mode: lesson(tmp_path / mode, "gd_modes", f"trainer={mode}") for mode in
               ("batch", "sgd", "minibatch")}  # fmt: skip
    assert [metrics[m]["steps"] for m in ("batch", "minibatch", "sgd")] == [20, 100, 6000]
    # the same epochs: more (smaller) steps get further
    assert metrics["sgd"]["final_train_loss"] < metrics["batch"]["final_train_loss"]
    assert metrics["minibatch"]["final_train_loss"] < metrics["batch"]["final_train_loss"]


@pytest.mark.slow
def test_optimizers_start_alike_and_end_in_different_places(tmp_path):
    names = sweep_params("optimizers")["optim"].split(",")
    assert names == ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"]
    results = {name: lesson(tmp_path / name, "optimizers", f"optim={name}") for name in names}
    first_losses = {round(scalars(tmp_path / n, "loss/val")[0], 6) for n in names}
    assert len(first_losses) == len(names)  # after one epoch already apart ...
    final = {round(m["final_train_loss"], 4) for m in results.values()}
    assert len(final) == len(names)  # ... and they end apart
    assert all(m["test_acc"] > 0.8 for m in results.values()), results
    # momentum reaches a lower loss than plain SGD in the same epochs
    assert results["momentum"]["final_train_loss"] < results["sgd"]["final_train_loss"]


@pytest.mark.slow
def test_each_remedy_shrinks_the_overfitting_gap(tmp_path):
    assert sweep_params("overfitting") == {
        "reg": "none,l1,l2,dropout",
        "trainer.early_stopping.enabled": "false,true",
    }
    bare = loss_gap(lesson(tmp_path / "none", "overfitting"))
    gaps = {
        reg: loss_gap(lesson(tmp_path / reg, "overfitting", f"reg={reg}"))
        for reg in ("l1", "l2", "dropout")
    }
    gaps["early_stopping"] = loss_gap(
        lesson(tmp_path / "es", "overfitting", "trainer.early_stopping.enabled=true")
    )
    assert all(gap < bare for gap in gaps.values()), (bare, gaps)


@pytest.mark.slow
def test_exploding_gradients_as_shipped(tmp_path):
    exploding = lesson(tmp_path / "no_clip", "exploding_gradients")
    clipped = lesson(tmp_path / "clip", "exploding_gradients", "trainer.grad_clip=1")
    assert exploding["stop_reason"] == "diverged"
    assert clipped["stop_reason"] == "max_epochs" and clipped["test_loss"] < 0.05


@pytest.mark.slow
def test_normalisation_lets_a_deep_sigmoid_network_learn(tmp_path):
    acc, first_grad = {}, {}
    for norm in ("none", "batch", "layer"):
        acc[norm] = lesson(tmp_path / norm, "normalization", f"model.norm={norm}")["test_acc"]
        first_grad[norm] = scalars(tmp_path / norm, "grad_norm/layer01")[0]
    assert acc["none"] < 0.2 and acc["batch"] > 0.9 and acc["layer"] > 0.5, acc
    assert first_grad["batch"] > 100 * first_grad["none"], first_grad
    assert first_grad["layer"] > 10 * first_grad["none"], first_grad


@pytest.mark.slow
def test_initialisation_decides_whether_a_network_trains(tmp_path):
    acc = {
        init: lesson(tmp_path / init, "init", f"model.init={init}")["test_acc"]
        for init in ("zeros", "normal", "xavier_normal", "he_normal")
    }
    assert acc["zeros"] < 0.2 and acc["normal"] < 0.2, acc
    assert acc["xavier_normal"] > 0.9 and acc["he_normal"] > 0.9, acc


@pytest.mark.slow
def test_identity_depth_is_no_better_than_a_linear_model(tmp_path):
    deep = "model.hidden=[64,64,64,64,64,64,64,64]"
    linear = lesson(tmp_path / "linear", "linear_collapse", "model.hidden=[]")
    identity = lesson(tmp_path / "identity", "linear_collapse", deep, "act=identity")
    relu = lesson(tmp_path / "relu", "linear_collapse", deep, "act=relu")
    assert identity["test_acc"] <= linear["test_acc"] + 0.02
    assert identity["final_train_loss"] >= linear["final_train_loss"] - 0.01
    assert relu["test_acc"] >= linear["test_acc"] + 0.05


@pytest.mark.slow
def test_attention_holds_where_the_bottleneck_falls_off(tmp_path):
    """Reversing 20 digits, attention gets whole strings right; without it, at 30 digits, the
    encoder's final state cannot carry the source (docs/lessons.md has the figures)."""
    with_attention = lesson(tmp_path / "dot20", "attention")
    without = lesson(tmp_path / "none30", "attention", "model.attention=none", "data.length=30")
    assert with_attention["test_exact"] >= 0.95
    assert without["test_exact"] < with_attention["test_exact"] - 0.5


@pytest.mark.slow
def test_the_transformer_holds_given_a_loss_monitor_and_the_epochs(tmp_path):
    """The Transformer, attention alone, reverses digit strings too, more slowly: its whole
    strings stay wrong for epochs while its loss falls, so the loss is what early stopping
    watches (docs/lessons.md: 10 digits 0.997 in 40 epochs, 20 digits 0.978 in 48)."""
    patient = ("trainer.early_stopping.monitor=val_loss", "trainer.early_stopping.patience=10")
    metrics = lesson(
        tmp_path, "attention", "model.arch=transformer", "data.length=10", *patient,
        "trainer.epochs=40",
    )  # fmt: skip
    assert metrics["test_exact"] >= 0.95
