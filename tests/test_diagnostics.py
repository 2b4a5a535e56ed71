"""diag=…: per-layer gradients, weights and activations in the real TensorBoard files, the
decision boundary picture, the spirals data, and the activation plot."""

import sys

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from conftest import ROOT, make_config, read_metrics, train_in_process
from dlbasics.data import build_data
from dlbasics.diagnostics import ActivationStats, DiagConfig, Diagnostics, weight_layers
from dlbasics.errors import ConfigError
from dlbasics.loggers import TensorBoardLogger

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NO_EARLY_STOP = "trainer.early_stopping.enabled=false"


def events(tb_dir):
    keep_all = {"scalars": 0, "images": 0, "histograms": 0}
    found = EventAccumulator(str(tb_dir), size_guidance=keep_all)
    found.Reload()
    return found


def test_diag_full_logs_every_layer_each_epoch_and_draws_the_boundary(tmp_path):
    train_in_process(
        tmp_path, "data=xor", "model=mlp", "model.hidden=[8,8]", "diag=full",
        "diag.histograms_every=2", "trainer.epochs=4", NO_EARLY_STOP,
    )  # fmt: skip
    found = events(tmp_path / "tb")
    scalars = set(found.Tags()["scalars"])
    for layer in ("layer01", "layer02", "layer03"):  # two hidden layers and the output layer
        for kind in ("grad_norm", "diag/weight_norm"):
            tag = f"{kind}/{layer}"
            assert [s.step for s in found.Scalars(tag)] == [1, 2, 3, 4], tag
            assert all(s.value > 0 for s in found.Scalars(tag)), tag
    for layer in ("layer01", "layer02"):  # ReLU after each hidden layer
        for kind in ("act_mean", "act_std", "dead"):
            assert f"diag/{kind}/{layer}" in scalars
        assert all(0 <= s.value <= 1 for s in found.Scalars(f"diag/dead/{layer}"))
    assert "diag/act_mean/layer03" not in scalars  # no hidden activation after the output
    assert {"grad_norm/total", "grad_norm/total_max"} <= scalars
    histograms = found.Tags()["histograms"]
    assert [h.step for h in found.Histograms("diag/weights/layer01")] == [1, 2, 4]
    assert "diag/grads/layer03" in histograms
    assert found.Tags()["images"] == ["diag/decision_boundary"]
    image = found.Images("diag/decision_boundary")[0]
    assert image.encoded_image_string.startswith(PNG_MAGIC) and image.width > 100
    assert (tmp_path / "decision_boundary.png").read_bytes().startswith(PNG_MAGIC)


def test_without_diag_no_diagnostics_are_written(tmp_path):
    train_in_process(tmp_path, "data=xor", "model=mlp", "trainer.epochs=2")
    found = events(tmp_path / "tb")
    assert not [t for t in found.Tags()["scalars"] if t.startswith(("diag/", "grad_norm/"))]
    assert not found.Tags()["images"] and not found.Tags()["histograms"]
    assert not (tmp_path / "decision_boundary.png").exists()


def test_grad_norms_are_the_norms_backpropagation_computed(tmp_path):
    # One full-batch step: the logged per-layer norm is the norm of that step's gradient.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    logger = TensorBoardLogger(tmp_path)
    diagnostics = Diagnostics(DiagConfig(grad_norms=True, activations=True))
    diagnostics.attach(model, logger)
    x = torch.randn(16, 3)
    model(x).square().sum().backward()
    diagnostics.after_backward()
    diagnostics.end_epoch(1)
    recorders = list(diagnostics.hooks.values())
    diagnostics.detach()
    logger.close()
    found = events(tmp_path)
    for name, layer in weight_layers(model).items():
        expected = torch.cat([p.grad.flatten() for p in layer.parameters()]).norm()
        assert found.Scalars(f"grad_norm/{name}")[0].value == pytest.approx(float(expected))
    with torch.no_grad():
        hidden = torch.tanh(model[0](x))
    assert found.Scalars("diag/act_mean/layer01")[0].value == pytest.approx(float(hidden.mean()))
    model(x)  # detach() removed the hook: a training forward pass records nothing now
    assert recorders and all(recorder.sums is None for recorder in recorders)


def test_dead_and_saturated_fractions_count_what_the_units_did():
    relu = nn.ReLU()
    stats = ActivationStats(relu)
    # units 0 and 1 are never positive over the epoch's two batches; unit 2 is once
    relu(torch.tensor([[-1.0, -2.0, 3.0], [-1.0, 0.0, -1.0]]))
    relu(torch.tensor([[-5.0, -1.0, -1.0]]))
    assert float(stats.values()["dead"]) == pytest.approx(2 / 3)
    sigmoid = nn.Sigmoid()
    stats = ActivationStats(sigmoid)
    sigmoid(torch.tensor([[-10.0, 0.0, 10.0, 0.5]]))  # σ' < 0.025 at ±10 only
    assert float(stats.values()["saturated"]) == pytest.approx(0.5)
    sigmoid.eval()  # evaluation passes do not count
    stats.reset()
    sigmoid(torch.tensor([[10.0]]))
    assert stats.values() == {}


def test_data_without_a_plane_trains_and_draws_no_boundary(tmp_path):
    train_in_process(tmp_path, "data=iris", "diag.decision_boundary=true", "trainer.epochs=1")
    assert not (tmp_path / "decision_boundary.png").exists()
    assert "diag/decision_boundary" not in events(tmp_path / "tb").Tags()["images"]


def test_spirals_are_two_balanced_interleaved_arms():
    data = build_data(make_config("data=spirals").data)
    assert data.spec.input_shape == (2,) and data.spec.task == "binary"
    y = torch.cat([data.y_train, data.y_val, data.y_test])
    assert len(y) == 600 and int(y.sum()) == 300
    radius = data.to_raw(data.x_train).norm(dim=1)
    assert 0.8 < float(radius.max()) < 1.5  # arms reach radius 1, plus noise


def test_data_train_size_keeps_a_stratified_part_of_the_training_split():
    data = build_data(make_config("data=moons", "data.train_size=40").data)
    assert len(data.x_train) == 40 and len(data.x_val) == 100
    assert int(data.y_train.sum()) in (19, 20, 21)
    with pytest.raises(ConfigError, match=r"data.train_size=400 .* choose 1 to 300"):
        build_data(make_config("data=moons", "data.train_size=400").data)


def test_a_negative_histogram_interval_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match="diag.histograms_every"):
        make_config("diag.histograms_every=-1")


def test_oysters_report_the_learned_threshold_and_the_rule_in_metrics(tmp_path):
    train_in_process(tmp_path, "data=oysters", "model=mlp", "model.hidden=[]", "trainer.epochs=3")
    metrics = read_metrics(tmp_path)
    assert metrics["rule_threshold"] == 7.5 and 0 < metrics["rule_test_acc"] <= 1
    assert "learned_threshold" in metrics


def test_plot_activations_draws_every_activation_with_its_textbook_derivative(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from plot_activations import activation_curves, main
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    out = tmp_path / "figs" / "act.png"
    assert main(["--out", str(out)]) == 0
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert main(["--range", "0"]) == 2
    curves = activation_curves(5.0, 0.01)
    assert set(curves) == {"step", "sigmoid", "tanh", "relu", "leaky_relu", "gelu", "identity"}
    assert float(curves["sigmoid"][2].max()) == pytest.approx(0.25, abs=1e-4)
    assert float(curves["tanh"][2].max()) == pytest.approx(1.0, abs=1e-4)
    assert float(curves["step"][2].abs().max()) == 0.0
    x, _, relu_slope = curves["relu"]
    assert float(relu_slope[x < 0].abs().max()) == 0.0 and float(relu_slope[x > 0].min()) == 1.0
    x, _, leaky_slope = curves["leaky_relu"]
    assert float(leaky_slope[x < 0].min()) == pytest.approx(0.01)
