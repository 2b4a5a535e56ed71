"""The decision threshold a classifier learned on one feature (the oyster sorter, docs/concepts.md
§2), in the data's own units, and how a hand-written rule ``x > rule`` does on the same
held-out data."""

import torch

from dlbasics.data import DataSplits
from dlbasics.losses import Objective

GRID = 4001  # points scanned across the range of the training inputs


def has_threshold(data: DataSplits) -> bool:
    return data.spec.input_shape == (1,) and data.spec.task == "binary"


@torch.no_grad()
def threshold_metrics(
    model: torch.nn.Module, data: DataSplits, objective: Objective, rule: float | None
) -> dict[str, float | None]:
    """``learned_threshold``: where the model's prediction switches between the smallest and
    the largest training input, in raw units (None if it switches there not exactly once);
    with a ``rule``, ``rule_threshold`` and ``rule_test_acc``, the accuracy of
    ``predict 1 if x > rule`` on the test split."""
    raw_train = data.to_raw(data.x_train)
    grid = torch.linspace(float(raw_train.min()), float(raw_train.max()), GRID).unsqueeze(1)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    predicted = objective.predict(model(data.from_raw(grid).to(device))).cpu().reshape(-1)
    model.train(was_training)
    switches = (predicted[1:] != predicted[:-1]).nonzero().reshape(-1)
    threshold = None
    if len(switches) == 1:
        i = int(switches[0])
        threshold = float(grid[i] + grid[i + 1]) / 2
    metrics: dict[str, float | None] = {"learned_threshold": threshold}
    if rule is not None:
        rule_says = (data.to_raw(data.x_test) > rule).to(data.y_test.dtype)
        metrics["rule_threshold"] = rule
        metrics["rule_test_acc"] = float((rule_says == data.y_test).float().mean())
    return metrics
