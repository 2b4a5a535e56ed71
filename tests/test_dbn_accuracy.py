"""What greedy pre-training brings: a DBN on digits in [0, 1], fine-tuned with all the labels
or with 10 per class, against the same network from random initialisation with the same
fine-tuning budget (optimizer, learning rate, epochs)."""

import statistics

import pytest

from conftest import train_in_process

pytestmark = pytest.mark.slow

DBN = ["model=dbn", "logger=none"]  # layers [256, 128], digits scaled to [0, 1]


def test_a_dbn_with_its_defaults_reaches_97_percent_on_digits(tmp_path):
    """`python scripts/train.py model=dbn`: fine-tuned with momentum (lr 0.05), the DBN's own
    default, for the trainer's 100 epochs (seeds 0 to 4 give 0.961 to 0.989)."""
    metrics = train_in_process(tmp_path, *DBN)
    print(f"DBN test accuracy {metrics['test_acc']:.4f} after {metrics['epochs_run']} epochs")
    assert metrics["test_acc"] >= 0.97
    # Pre-training alone taught its first RBM the digits: it completes their hidden lower half.
    assert metrics["completion_error"] < 0.8 * metrics["completion_baseline_error"]


@pytest.mark.parametrize(
    "optimizer, margin",
    [
        # SGD on a deep sigmoid network from random initialisation hardly moves in 600 steps:
        # the vanishing gradients pre-training was invented to get round.
        (["optim=sgd", "optim.lr=0.1"], 0.30),
        (["optim=momentum", "optim.lr=0.05"], 0.04),
    ],
    ids=["sgd", "momentum"],
)
def test_with_10_labels_per_class_pretraining_wins_by_a_wide_margin(tmp_path, optimizer, margin):
    budget = [*optimizer, "trainer.epochs=300", "trainer.early_stopping.enabled=false"]
    accuracy = {True: [], False: []}
    for seed in (0, 1, 2):  # each seed: its own split, labels kept and initial weights
        for pretrain in (True, False):
            metrics = train_in_process(
                tmp_path / f"{seed}-{pretrain}",
                *DBN,
                *budget,
                "data.labels_per_class=10",
                f"model.pretrain={str(pretrain).lower()}",
                f"seed={seed}",
            )
            assert metrics["n_train"] == 100 and metrics["steps"] == 600
            accuracy[pretrain].append(metrics["test_acc"])
    print(f"10 labels per class: pre-trained {accuracy[True]}, random init {accuracy[False]}")
    assert all(p > r for p, r in zip(accuracy[True], accuracy[False], strict=True))
    assert statistics.mean(accuracy[True]) >= statistics.mean(accuracy[False]) + margin
