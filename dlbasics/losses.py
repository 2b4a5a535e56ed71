"""The objective a model is trained on: the loss for the task, plus L1/L2 penalties.

Models return scores (the output layer before its activation). Where the loss has a fused,
numerically stable form (softmax + cross-entropy, sigmoid + binary cross-entropy) it is used;
otherwise the output activation is applied first and the loss compares probabilities or values.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlbasics.activations import OUTPUT_ACTIVATIONS
from dlbasics.config import RegConfig
from dlbasics.data import DataSpec
from dlbasics.errors import ConfigError
from dlbasics.hot_path import mean_squared_error

DEFAULT_OUTPUT_ACT = {"regression": "identity", "binary": "sigmoid", "multiclass": "softmax"}
DEFAULT_LOSS = {"regression": "mse", "binary": "bce", "multiclass": "cross_entropy"}


class Objective:
    """Loss for one task: ``objective(scores, target)`` is the mean data loss of a batch."""

    def __init__(self, loss: str, output_act: str, spec: DataSpec, reg: RegConfig):
        self.loss = loss
        self.output_act = output_act
        self.task = spec.task
        self.n_classes = spec.n_classes
        self.l1, self.l2 = reg.l1, reg.l2
        self.activate = OUTPUT_ACTIVATIONS.get(output_act)
        # Set by the Trainer under trainer.precision=16-mixed: backpropagation multiplies the
        # loss by its scale first, as float16 gradients would underflow to zero.
        self.grad_scaler: torch.amp.GradScaler | None = None

    def __call__(self, scores: Tensor, target: Tensor) -> Tensor:
        if self.loss == "cross_entropy" and self.task == "multiclass":
            return F.cross_entropy(scores, target)  # log-softmax inside: stable
        if self.loss in ("bce", "cross_entropy"):  # binary: cross-entropy of one sigmoid unit
            return F.binary_cross_entropy_with_logits(scores, target)
        outputs, values = self.activate(scores), self.as_values(target)
        if outputs.shape == values.shape:
            return mean_squared_error(outputs, values)
        return F.mse_loss(outputs, values)  # broadcasts, with torch's warning that it does

    def as_values(self, target: Tensor) -> Tensor:
        """Targets as the output layer's values: one-hot rows for class labels."""
        if self.task == "multiclass":
            return F.one_hot(target, self.n_classes).to(torch.get_default_dtype())
        return target

    def predict(self, scores: Tensor) -> Tensor:
        """Class labels (classification) or values (regression) from scores."""
        if self.task == "multiclass":
            return scores.argmax(dim=1)
        if self.task == "binary":
            outputs = self.activate(scores)
            if self.output_act == "step":  # already 0 or 1
                return outputs
            return (outputs > 0.5).to(scores.dtype)
        return self.activate(scores)

    def correct(self, scores: Tensor, target: Tensor) -> Tensor:
        """Number of correct predictions in a batch (a 0-d tensor; no host sync)."""
        return (self.predict(scores) == target).sum()

    @property
    def has_penalty(self) -> bool:
        return self.l1 > 0 or self.l2 > 0

    def penalty(self, model: nn.Module) -> Tensor:
        """l1·Σ|w| + l2·Σw² over weight matrices and kernels (biases are not penalised)."""
        weights = [p for p in model.parameters() if p.ndim > 1]
        total = weights[0].new_zeros(())
        for w in weights:
            if self.l1:
                total = total + self.l1 * w.abs().sum()
            if self.l2:
                total = total + self.l2 * w.square().sum()
        return total


def build_objective(
    loss: str, output_act: str, spec: DataSpec, reg: RegConfig, model_name: str
) -> Objective:
    """Resolve ``auto`` choices against the task and refuse combinations that do not fit."""
    if output_act == "auto":
        output_act = DEFAULT_OUTPUT_ACT[spec.task]
    if loss == "auto":
        loss = "mse" if output_act == "step" else DEFAULT_LOSS[spec.task]

    where = f"(model={model_name}, data={spec.name}, a {spec.task} task)"
    if spec.task == "binary" and output_act == "softmax":
        raise ConfigError(
            f"model.output_act=softmax on one output unit is always 1 {where}; "
            "use sigmoid (or auto) for a binary task."
        )
    if loss == "bce" and spec.task != "binary":
        raise ConfigError(
            f"loss=bce needs a binary task {where}; use loss=cross_entropy for classes, "
            "loss=mse for regression, or loss=auto."
        )
    if loss == "cross_entropy":
        if spec.task == "regression":
            raise ConfigError(f"loss=cross_entropy needs class labels {where}; use loss=mse.")
        needed = "softmax" if spec.task == "multiclass" else "sigmoid"
        if output_act != needed:
            raise ConfigError(
                f"loss=cross_entropy needs probabilities from a {needed} output layer, but "
                f"model.output_act={output_act} {where}; use model.output_act=auto or loss=mse."
            )
    if loss == "bce" and output_act != "sigmoid":
        raise ConfigError(
            f"loss=bce needs a sigmoid output layer, but model.output_act={output_act} "
            f"{where}; use model.output_act=auto or loss=mse."
        )
    return Objective(loss, output_act, spec, reg)
