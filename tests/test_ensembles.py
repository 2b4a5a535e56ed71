"""Ensembles (dlbasics/ensembles.py, docs/concepts.md §7.5): what each kind reports, the lesson
it teaches, and that an ensemble's run resumes, loads and refuses as any run does."""

import logging
import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import train_in_process, train_or_refuse
from dlbasics.inference import load, scaled_test_split

SMALL = ("model=mlp", "model.hidden=[16]", "trainer.epochs=4", "ensemble.members=3")


def test_the_vote_beats_its_average_member_and_shows_their_spread(tmp_path):
    """experiment=ensembles, shortened: five weak members disagree; their vote is right more
    often than the average one of them."""
    overrides = ("experiment=ensembles", "ensemble.members=5", "trainer.epochs=40")
    metrics = train_in_process(tmp_path, *overrides)
    ensemble, members = metrics["ensemble"], metrics["members"]
    assert metrics["test_acc"] > ensemble["mean_member_test_acc"] + 0.02
    assert ensemble["member_test_acc_std"] > 0
    assert ensemble["worst_member_test_acc"] < ensemble["best_member_test_acc"]
    assert [m["seed"] for m in members] == [0, 1, 2, 3, 4]
    # TensorBoard: the vote under the usual tags, each member under member/<k>/
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0})
    tags = set(events.Reload().Tags()["scalars"])
    assert {"acc/val", "loss/train", "member/0/acc/val", "member/4/loss/train"} <= tags
    assert len(events.Scalars("member/3/acc/val")) == members[3]["epochs_run"]


@pytest.mark.parametrize("kind", ["voting", "bagging", "boosting", "stacking"])
def test_each_kind_reports_its_members_and_what_it_measures(kind, tmp_path, caplog):
    extra = ("ensemble.folds=2", "ensemble.meta_epochs=20") if kind == "stacking" else ()
    caplog.set_level(logging.INFO, logger="dlbasics")
    metrics = train_in_process(tmp_path, *SMALL, f"ensemble={kind}", *extra)
    # the epoch lines of fits one after another follow a line that says which fit they are
    said = {
        "boosting": ["boosting: member 1 of 3", "boosting: member 3 of 3"],
        "stacking": ["stacking: fold 2 of 2", "stacking: the meta-learner"],
    }
    for line in said.get(kind, []):
        assert line in caplog.text
    ensemble = metrics["ensemble"]
    assert ensemble["kind"] == kind and len(metrics["members"]) == 3
    assert all(0 <= m["test_acc"] <= 1 and m["best_epoch"] >= 1 for m in metrics["members"])
    if kind == "bagging":  # every training sample is left out of some bootstrap sample
        assert 0.5 < ensemble["oob_acc"] <= 1
    if kind == "boosting":
        assert len(ensemble["alphas"]) == 3 and all(a > 0 for a in ensemble["alphas"])
        errors = ensemble["weighted_errors"]
        assert errors[0] < errors[1]  # the second member faces what the first got wrong
    # dlbasics.load predicts with the ensemble's combination: the run's own test accuracy
    trained = load(tmp_path)
    x, y = scaled_test_split(trained, trained.config.data)  # as the run tested on it
    with torch.no_grad():
        predicted = trained.objective.predict(trained.model(x))
    assert (predicted == y).float().mean().item() == pytest.approx(metrics["test_acc"])


def test_boosting_members_follow_the_learning_rate_schedule(tmp_path):
    """Each member is fitted as a run of its own would be: schedule=step decays its rate."""
    schedule = ("schedule=step", "schedule.step_size=2", "schedule.gamma=0.5")
    train_in_process(tmp_path, *SMALL, "ensemble=boosting", *schedule)
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0}).Reload()
    lrs = [event.value for event in events.Scalars("member/1/lr")]
    assert lrs[:4] == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4])


def test_hard_voting_counts_the_members_classes(tmp_path):
    soft = train_in_process(tmp_path / "soft", *SMALL, "ensemble=voting")
    hard = train_in_process(tmp_path / "hard", *SMALL, "ensemble=voting", "ensemble.vote=hard")
    assert [m["test_acc"] for m in soft["members"]] == [m["test_acc"] for m in hard["members"]]
    assert hard["ensemble"]["vote"] == "hard" and 0.5 < hard["test_acc"] <= 1


def test_boosting_stops_when_a_member_makes_no_weighted_error(tmp_path):
    overrides = (
        "ensemble=boosting", "data=xor", "model.hidden=[8]", "act=tanh", "trainer=batch",
        "trainer.epochs=300", "optim.lr=0.05", "logger=none",
    )  # fmt: skip
    ensemble = train_in_process(tmp_path, *overrides)["ensemble"]
    assert ensemble["members_used"] == 1 and ensemble["alphas"] == [None]
    assert "weighted training error is 0" in ensemble["stopped"]


def test_a_voting_ensemble_resumes_exactly(tmp_path):
    straight = train_in_process(tmp_path / "straight", *SMALL, "ensemble=voting", "logger=none")
    train_in_process(tmp_path / "first", *SMALL[:2], "trainer.epochs=2", *SMALL[3:],
                     "ensemble=voting", "logger=none")  # fmt: skip
    resumed = train_in_process(
        tmp_path / "resumed", *SMALL, "ensemble=voting", "logger=none",
        f"trainer.resume={tmp_path / 'first'}",
    )  # fmt: skip
    assert resumed["test_loss"] == straight["test_loss"]
    for one, other in zip(resumed["members"], straight["members"], strict=True):
        assert one["test_loss"] == other["test_loss"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["ensemble=voting", "model=perceptron", "data=or", "optim=sgd"], "learning rule"),
        (["ensemble=boosting", "data=diabetes"], "regression; use ensemble=voting"),
        (["ensemble=voting", "ensemble.members=1"], "ensemble.members"),
        (["ensemble=voting", "ensemble.folds=3"], "ensemble.folds"),
        (["ensemble=stacking", "trainer.resume=outputs"], "resum"),
        (["ensemble=voting", "trainer.on_nan=skip"], "trainer.on_nan=stop"),
        (["ensemble=voting", "model=seq2seq", "data=reverse"], "decodes a sequence"),
    ],
)
def test_what_an_ensemble_cannot_do_is_refused_in_one_line(overrides, message, tmp_path):
    refusal = train_or_refuse([*overrides, "trainer.epochs=1"], tmp_path)
    assert message in refusal and "\n" not in refusal


def test_a_regression_ensemble_averages_values(tmp_path):
    metrics = train_in_process(tmp_path, *SMALL, "ensemble=bagging", "data=diabetes")
    assert metrics["test_acc"] is None and math.isfinite(metrics["test_loss"])
    assert "mean_member_test_loss" in metrics["ensemble"]
    assert metrics["ensemble"]["oob_mse"] > 0  # the out-of-bag mean squared error
