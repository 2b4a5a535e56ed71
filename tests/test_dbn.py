"""model=dbn: greedy layer-wise pre-training through the Trainer, then fine-tuning; labels kept
per class; what a signal, a divergence and trainer.resume do to a run in several fits. The
accuracy targets are the slow tests of test_dbn_accuracy.py."""

import math
import signal

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import make_config, read_metrics, start_cli, train_in_process
from dlbasics.data import build_data
from dlbasics.errors import ConfigError

# Two small layers, a few epochs each: the whole run takes a few seconds.
SMALL_DBN = [
    "model=dbn",
    "model.layers=[32,16]",
    "model.pretrain_epochs=3",
    "optim=adam",  # a few epochs: adam learns faster than the default momentum
    "optim.lr=0.03",
    "trainer.epochs=4",
]


def test_each_layer_is_pretrained_under_its_own_tags_then_the_stack_fine_tuned(tmp_path):
    metrics = train_in_process(tmp_path, *SMALL_DBN)
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for layer in (1, 2):
        for tag in ("loss/train", "loss/val", "pll/val", "free_energy/gap", "lr"):
            steps = [s.step for s in events.Scalars(f"pretrain/layer{layer}/{tag}")]
            assert steps == [1, 2, 3], (layer, tag)
    for tag in ("loss/train", "loss/val", "acc/train", "acc/val"):  # fine-tuning's own
        assert [s.step for s in events.Scalars(tag)] == [1, 2, 3, 4], tag
    assert "pll/val" not in scalars  # the classifier reports loss and accuracy only
    assert set(events.Tags()["images"]) == {
        "pretrain/layer1/rbm/filters",  # the first layer sees 8×8 images; the second does not
        "pretrain/layer1/rbm/samples",
        "pretrain/layer1/rbm/completion",
    }
    # metrics.json: the fine-tuned classifier, plus each layer's pre-training.
    assert metrics["epochs_run"] == 4 and metrics["test_acc"] > 0.7
    layers = metrics["pretraining"]
    assert [p["epochs_run"] for p in layers] == [3, 3]
    assert all(p["val_pll"] is not None and p["stop_reason"] == "max_epochs" for p in layers)
    assert read_metrics(tmp_path)["pretraining"] == layers
    # The first RBM's completion of half-hidden validation digits, as pre-training left it.
    assert 0 < metrics["completion_error"] and 0 < metrics["completion_baseline_error"]


def test_pretrain_false_fine_tunes_the_same_network_without_pretraining(tmp_path):
    pretrained = train_in_process(tmp_path / "a", *SMALL_DBN, "logger=none")
    fresh = train_in_process(tmp_path / "b", *SMALL_DBN, "model.pretrain=false", "logger=none")
    assert "pretraining" in pretrained and "pretraining" not in fresh
    assert "completion_error" in pretrained and "completion_error" not in fresh  # no model of x
    assert pretrained["n_params"] == fresh["n_params"]
    assert pretrained["steps"] == fresh["steps"]  # the same fine-tuning budget
    # The first RBM learnt: an untrained one reconstructs digits with an error of about 0.075.
    assert pretrained["pretraining"][0]["val_loss"] < 0.06


def test_labels_per_class_keeps_that_many_labels_and_the_other_inputs_unlabelled():
    full = build_data(make_config("data.unit_range=true").data)
    kept = build_data(make_config("data.unit_range=true", "data.labels_per_class=10").data)
    assert torch.bincount(kept.y_train).tolist() == [10] * 10
    assert len(kept.x_train) + len(kept.x_unlabelled) == len(full.x_train)
    assert torch.allclose(kept.every_training_input().sum(0), full.x_train.sum(0))
    assert torch.equal(kept.x_test, full.x_test) and torch.equal(kept.y_val, full.y_val)


def test_pretraining_uses_every_input_and_fine_tuning_only_the_labelled(tmp_path):
    metrics = train_in_process(
        tmp_path, *SMALL_DBN, "data.labels_per_class=10", "trainer.batch_size=50", "logger=none"
    )
    n_all = len(build_data(make_config("data.unit_range=true").data).x_train)
    assert metrics["n_train"] == 100
    assert metrics["steps"] == 4 * 2  # 100 labelled samples in batches of 50
    assert [p["steps"] for p in metrics["pretraining"]] == [3 * math.ceil(n_all / 50)] * 2


def test_a_dbn_refuses_trainer_resume_and_standardised_inputs(tmp_path):
    with pytest.raises(ConfigError, match="model=dbn trains in several fits"):
        train_in_process(tmp_path, *SMALL_DBN, f"trainer.resume={tmp_path}")
    with pytest.raises(ConfigError, match="data.unit_range=true"):
        train_in_process(tmp_path, "model=dbn", "data.unit_range=false")


def test_a_diverging_pretraining_ends_the_run_naming_the_layer_and_its_key(tmp_path):
    metrics = train_in_process(tmp_path, *SMALL_DBN, "model.pretrain_lr=1e38", "logger=none")
    assert metrics["stop_reason"] == "diverged"
    assert "pre-training layer 1" in metrics["message"]
    assert "model.pretrain_lr" in metrics["message"]
    assert len(metrics["pretraining"]) == 1


def test_sigint_during_pretraining_stops_the_run_with_exit_130(tmp_path):
    process = start_cli(
        f"hydra.run.dir={tmp_path}", *SMALL_DBN, "model.pretrain_epochs=1000", "logger=none"
    )
    for line in process.stdout:  # the first epoch of pre-training is done
        if line.startswith("epoch "):
            break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    metrics = read_metrics(tmp_path)
    assert metrics["stop_reason"] == "interrupted" and metrics["stop_signal"] == "SIGINT"
    assert metrics["pretraining"][0]["epochs_run"] < 1000
    # The classifier never trained: no test metrics as if it had, and the phase is named.
    assert metrics["stopped_in"] == "pre-training layer 1"
    assert metrics["test_loss"] is metrics["test_acc"] is metrics["best_val_loss"] is None
    assert "trainer.resume" not in stderr  # it cannot be resumed, so it does not say to
