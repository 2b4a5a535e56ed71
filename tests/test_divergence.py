"""A non-finite loss stops the run (stop_reason diverged), keeps the best checkpoint and the
metrics so far, and says at which step and what to lower; trainer.on_nan=skip skips instead."""

import logging

import torch

from conftest import make_config, read_metrics, train_in_process
from dlbasics.checkpoint import load_checkpoint
from dlbasics.data import DataSplits, build_data
from dlbasics.early_stopping import EarlyStopping, EarlyStoppingConfig
from dlbasics.losses import build_objective
from dlbasics.models import build_model
from dlbasics.trainer import Trainer

# Plain SGD at lr 5 on iris: four epochs, then the loss of epoch 5 is over a million times
# the untrained model's (it would overflow in epoch 8).
DIVERGES = ["data=iris", "optim=sgd", "optim.lr=5", "trainer.epochs=30", "logger=none"]


def test_a_diverging_run_stops_keeps_its_best_checkpoint_and_says_where(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="dlbasics"):
        metrics = train_in_process(tmp_path, *DIVERGES)
    assert metrics["stop_reason"] == "diverged"
    assert read_metrics(tmp_path) == metrics
    assert (metrics["epochs_run"], metrics["steps"]) == (4, 10)  # 2 steps per epoch
    assert metrics["best_val_loss"] is not None and metrics["val_loss"] is not None
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert best["epoch"] == metrics["best_epoch"]
    assert all(torch.isfinite(t).all() for t in best["model"].values())
    message = next(r.message for r in caplog.records if "diverged" in r.message)
    assert "the training loss of epoch 5 is " in message and "over 1e+06 times" in message
    assert "optim.lr (now 5)" in message and "trainer.on_nan=skip" in message


def _data_with_one_bad_sample(index: int) -> DataSplits:
    """Iris with NaN features in one training sample: only the batch holding it goes NaN."""
    data = build_data(make_config("data=iris").data)
    data.x_train = data.x_train.clone()
    data.x_train[index] = float("nan")
    return data


def _fit(tmp_path, *overrides):
    cfg = make_config(
        "data=iris", "trainer.batch_size=10", "trainer.epochs=4", "logger=none", *overrides
    )
    data = _data_with_one_bad_sample(index=17)
    torch.manual_seed(cfg.trainer.seed)
    model = build_model(cfg, data.spec)
    objective = build_objective(cfg.loss.name, "auto", data.spec, cfg.reg, "mlp")
    cpu = torch.device("cpu")
    trainer = Trainer(cfg.trainer, cfg.optim, cfg.schedule, cpu, checkpoint_dir=tmp_path)
    return trainer.fit(model, data, objective), model, cfg


def test_the_message_names_the_step_whose_loss_was_not_finite(tmp_path):
    fit, _, cfg = _fit(tmp_path)
    # The first epoch's order is the trainer's first permutation of its shuffle generator.
    order = torch.randperm(90, generator=torch.Generator().manual_seed(cfg.trainer.seed))
    bad_step = int((order == 17).nonzero()) // 10 + 1
    assert (fit.stop_reason, fit.epochs_run) == ("diverged", 0)
    assert f"non-finite at step {bad_step} (epoch 1)" in fit.message
    assert not (tmp_path / "last.pt").exists()  # no NaN weights written as a checkpoint


def test_on_nan_skip_skips_those_steps_and_trains_on(tmp_path):
    fit, model, _ = _fit(tmp_path, "trainer.on_nan=skip")
    assert (fit.stop_reason, fit.epochs_run) == ("max_epochs", 4)
    assert fit.skipped_steps == 4  # the bad sample's batch, once per epoch
    assert fit.steps == 4 * 9 - 4
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert load_checkpoint(tmp_path / "last.pt")["training"]["skipped_steps"] == 4


def test_a_loss_that_explodes_but_stays_finite_has_diverged_too(tmp_path):
    # Adam at lr 1e9 on digits: epoch 1 ends with a loss near 1e30, every number finite.
    metrics = train_in_process(tmp_path, "optim.lr=1e9", "trainer.epochs=5", "logger=none")
    assert metrics["stop_reason"] == "diverged" and metrics["epochs_run"] == 0
    assert "over 1e+06 times the untrained model's" in metrics["message"]
    assert not (tmp_path / "checkpoints" / "best.pt").exists()


def test_an_epoch_with_a_non_finite_monitor_is_never_the_best():
    stopper = EarlyStopping(EarlyStoppingConfig(patience=3))
    assert not stopper.update(float("inf"), 1) and stopper.best is None
    assert not stopper.update(float("nan"), 2) and stopper.best is None
    assert stopper.update(0.5, 3) and (stopper.best, stopper.best_epoch) == (0.5, 3)
    assert not stopper.update(float("-inf"), 4) and stopper.best == 0.5
