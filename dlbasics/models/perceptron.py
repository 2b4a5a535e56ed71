"""Rosenblatt's perceptron (1958): y = step(w·x + b), trained without gradients
(docs/concepts.md §1)."""

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlbasics.activations import step
from dlbasics.data import DataSpec
from dlbasics.errors import ConfigError
from dlbasics.losses import Objective
from dlbasics.models.base import MODELS, Model
from dlbasics.schemas.models import PerceptronConfig

if TYPE_CHECKING:
    from dlbasics.config import Config


class Perceptron(Model):
    """One layer of threshold units, one per output (one per class: one-vs-rest).

    The step function has no useful derivative, so training uses Rosenblatt's rule
    w ← w + lr·(t − y)·x, b ← b + lr·(t − y), averaged over the batch.
    """

    output_act = "step"
    learns_by_backprop = False
    training_step = Model.learning_rule_step  # Rosenblatt's rule, below

    def __init__(self, n_features: int, n_outputs: int):
        super().__init__()
        self.linear = nn.Linear(n_features, n_outputs)
        nn.init.zeros_(self.linear.weight)  # the classic start: every input weighs nothing
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.flatten(1))

    @torch.no_grad()
    def write_gradients(self, x: Tensor, y: Tensor, objective: Objective) -> tuple[Tensor, Tensor]:
        x = x.flatten(1)
        scores = self.linear(x)
        outputs, targets = step(scores), objective.as_values(y)
        # Written as a gradient, −(t − y)·x, so that optim=sgd's w ← w − lr·grad is the rule.
        minus_error = outputs - targets  # y − t: +1, 0 or −1 per unit
        self.linear.weight.grad = minus_error.T @ x / len(x)
        self.linear.bias.grad = minus_error.mean(dim=0)
        # With output_act=step the loss is always the mean squared error of the step outputs
        # (build_objective allows no other): objective(scores, y), without a second step.
        return F.mse_loss(outputs, targets), scores


@MODELS.register("perceptron", PerceptronConfig)
def build_perceptron(cfg: "Config", spec: DataSpec) -> Perceptron:
    if spec.task == "regression":
        raise ConfigError(
            f"model=perceptron classifies (its output is 0 or 1), but data={spec.name} is a "
            "regression task; use model=mlp."
        )
    if cfg.model.output_act not in ("auto", "step"):
        raise ConfigError(
            f"model.output_act={cfg.model.output_act}: the perceptron's output is the step "
            "function; use model=mlp for other output layers."
        )
    return Perceptron(spec.n_features, spec.n_outputs)
