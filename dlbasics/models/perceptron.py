"""Rosenblatt's perceptron (1958): y = step(w·x + b), trained without gradients."""

import torch.nn.functional as F
from torch import Tensor, nn

from dlbasics.activations import step
from dlbasics.config import Config
from dlbasics.data import DataSpec
from dlbasics.errors import ConfigError
from dlbasics.hot_path import mean_squared_error, no_grad
from dlbasics.losses import Objective
from dlbasics.models.base import MODELS, Model


class Perceptron(Model):
    """One layer of threshold units, one per output (one per class: one-vs-rest).

    The step function has no useful derivative, so training uses Rosenblatt's rule
    w ← w + lr·(t − y)·x, b ← b + lr·(t − y), averaged over the batch.
    """

    output_act = "step"
    backprop = False

    def __init__(self, n_features: int, n_outputs: int):
        super().__init__()
        self.linear = nn.Linear(n_features, n_outputs)
        nn.init.zeros_(self.linear.weight)  # the classic start: every input weighs nothing
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        linear = self.linear  # F.linear, not linear(…): one module call fewer per evaluation
        return F.linear(x.flatten(1), linear.weight, linear.bias)

    @no_grad
    def training_step(self, x: Tensor, y: Tensor, objective: Objective) -> tuple[Tensor, Tensor]:
        x = x.flatten(1)
        linear = self.linear
        weight, bias = linear.weight, linear.bias
        scores = F.linear(x, weight, bias)
        outputs, targets = step(scores), objective.as_values(y)
        # Written as a gradient, −(t − y)·x, so that optim=sgd's w ← w − lr·grad is the rule.
        minus_error = outputs - targets  # y − t: +1, 0 or −1 per unit
        weight_grad, bias_grad = minus_error.T @ x, minus_error.sum(dim=0)
        size = x.shape[0]
        # The mean over the batch, as mean() computes it (a sum, then a division); a single
        # sample's rule is its own mean: SGD's steps pay for no division (5-8 µs each).
        if size > 1:
            weight_grad.div_(size)
            bias_grad.div_(size)
        weight.grad, bias.grad = weight_grad, bias_grad
        # objective(scores, y) without taking the step again: with output_act=step the loss is
        # always the mean squared error of the step outputs (build_objective allows no other).
        return mean_squared_error(outputs, targets), scores


@MODELS.register("perceptron")
def build_perceptron(cfg: Config, spec: DataSpec) -> Perceptron:
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
    if cfg.reg.l1 or cfg.reg.l2 or cfg.reg.dropout:
        raise ConfigError(
            "reg.l1, reg.l2 and reg.dropout need backpropagation, which the perceptron's "
            "learning rule does not use; use reg=none with model=perceptron (or model=mlp)."
        )
    return Perceptron(spec.n_features, spec.n_outputs)
