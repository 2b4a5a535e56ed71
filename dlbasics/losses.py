"""The objective a model is trained on (`loss=NAME`): the loss for the task, plus the L1/L2
penalties of `reg` (docs/concepts.md §5, §7).

Models return scores (the output layer before its activation). Where the loss has a fused,
numerically stable form (softmax + cross-entropy, sigmoid + binary cross-entropy) it is used;
otherwise the output activation is applied first and the loss compares probabilities or values.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlbasics.activations import OUTPUT_ACTIVATIONS
from dlbasics.data import DataSpec
from dlbasics.errors import ConfigError

# The schemas of `loss` and `reg`, kept importable from here (dlbasics/schemas/losses.py).
from dlbasics.schemas.losses import LOSSES, LossConfig, RegConfig  # noqa: F401

DEFAULT_OUTPUT_ACT = {
    "regression": "identity",
    "binary": "sigmoid",
    "multiclass": "softmax",
    "seq2seq": "softmax",  # over the vocabulary, at every output step
}
DEFAULT_LOSS = {
    "regression": "mse",
    "binary": "bce",
    "multiclass": "cross_entropy",
    "seq2seq": "cross_entropy",
}
# The index of the <pad> token (data/translation.py): padded target steps add no loss.
PAD = 0


def has_accuracy(task: str) -> bool:
    """Whether a task's samples are right or wrong as a whole (``acc``): classification. A
    seq2seq model reports token accuracy and exact match instead (its epoch_metrics)."""
    return task in ("binary", "multiclass")


class Objective:
    """Loss for one task: ``objective(scores, target)`` is the mean data loss of a batch."""

    def __init__(self, loss: str, output_act: str, spec: DataSpec, reg: RegConfig):
        self.loss = loss
        self.output_act = output_act
        self.task = spec.task
        self.n_classes = spec.n_classes
        self.l1, self.l2 = reg.l1, reg.l2
        self.activate = OUTPUT_ACTIVATIONS.get(output_act)

    def __call__(self, scores: Tensor, target: Tensor) -> Tensor:
        if self.task == "seq2seq":  # the mean over every target token that is not <pad>
            return F.cross_entropy(scores.transpose(1, 2), target, ignore_index=PAD)
        if self.loss == "cross_entropy" and self.task == "multiclass":
            return F.cross_entropy(scores, target)  # log-softmax inside: stable
        if self.loss in ("bce", "cross_entropy"):  # binary: cross-entropy of one sigmoid unit
            return F.binary_cross_entropy_with_logits(scores, target)
        return F.mse_loss(self.activate(scores), self.as_values(target))

    def sample_losses(self, scores: Tensor, target: Tensor) -> Tensor:
        """Each sample's loss, (n,): what ``__call__`` averages (a per-step or multi-output
        target's loss is averaged over its steps and outputs)."""
        if self.task == "seq2seq":  # each sequence's mean over its tokens that are not <pad>
            losses = F.cross_entropy(scores.transpose(1, 2), target, reduction="none")
            kept = target != PAD
            return (losses * kept).sum(dim=1) / kept.sum(dim=1).clamp(min=1)
        if self.loss == "cross_entropy" and self.task == "multiclass":
            losses = F.cross_entropy(scores, target, reduction="none")
        elif self.loss in ("bce", "cross_entropy"):
            losses = F.binary_cross_entropy_with_logits(scores, target, reduction="none")
        else:
            losses = F.mse_loss(self.activate(scores), self.as_values(target), reduction="none")
        return losses.flatten(1).mean(dim=1) if losses.ndim > 1 else losses

    def weighted(self, scores: Tensor, target: Tensor, weights: Tensor) -> Tensor:
        """The batch's loss with each sample counted ``weights`` times (boosting's sample
        weights, whose mean over the training split is 1)."""
        return (weights * self.sample_losses(scores, target)).mean()

    def as_values(self, target: Tensor) -> Tensor:
        """Targets as the output layer's values: one-hot rows for class labels."""
        if self.task == "multiclass":
            return F.one_hot(target, self.n_classes).to(torch.get_default_dtype())
        return target

    def predict(self, scores: Tensor) -> Tensor:
        """Class labels (classification), values (regression) or tokens (seq2seq: (n, T))
        from scores."""
        if self.task == "seq2seq":
            return scores.argmax(dim=-1)
        if self.task == "multiclass":
            return scores.argmax(dim=1)
        if self.task == "binary":
            outputs = self.activate(scores)
            if self.output_act == "step":  # already 0 or 1
                return outputs
            return (outputs > 0.5).to(scores.dtype)
        return self.activate(scores)

    def correct(self, scores: Tensor, target: Tensor) -> Tensor:
        """Number of correct predictions in a batch (a 0-d tensor; no host sync); seq2seq:
        of sequences right at every target token that is not <pad>."""
        if self.task == "seq2seq":
            right = (self.predict(scores) == target) | (target == PAD)
            return right.all(dim=1).sum()
        return (self.predict(scores) == target).sum()

    @property
    def has_penalty(self) -> bool:
        return self.l1 > 0 or self.l2 > 0

    def penalty(self, model: nn.Module) -> Tensor:
        return weight_penalty(weight_matrices(model), self.l1, self.l2)


def weight_matrices(model: nn.Module) -> list[Tensor]:
    """A model's weight matrices and kernels: what L1 and L2 penalise (biases are not)."""
    return [p for p in model.parameters() if p.ndim > 1]


def weight_penalty(weights: Sequence[Tensor], l1: float | Tensor, l2: float | Tensor) -> Tensor:
    """l1·Σ|w| + l2·Σw² over ``weights`` (weight_matrices); a coefficient 0 adds no term.
    Stacked members' weights, (K, …) each, with l1 and l2 of shape (K,): each member's own
    penalty, (K,)."""
    stacked = isinstance(l1, Tensor) or isinstance(l2, Tensor)
    total = weights[0].new_zeros(weights[0].shape[:1] if stacked else ())
    for w in weights:
        flat = w.flatten(1) if stacked else w.flatten()
        if stacked or l1:
            total = total + l1 * flat.abs().sum(-1)
        if stacked or l2:
            total = total + l2 * flat.square().sum(-1)
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
    if spec.task == "seq2seq" and (loss != "cross_entropy" or output_act != "softmax"):
        raise ConfigError(
            f"data={spec.name} is a sequence-to-sequence task: a softmax over the vocabulary "
            f"at every step, with cross-entropy; use loss=auto and model.output_act=auto {where}."
        )
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
        needed = "sigmoid" if spec.task == "binary" else "softmax"
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
