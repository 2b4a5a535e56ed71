"""The interface every model trains through, and the model registry."""

from collections.abc import Callable

from torch import Tensor, nn

from dlbasics.config import Config
from dlbasics.data import DataSpec
from dlbasics.losses import Objective
from dlbasics.registry import Registry


class Model(nn.Module):
    """A network the Trainer can fit. ``forward(x)`` returns scores: the output layer before
    its activation (the objective applies the activation, or fuses it into the loss)."""

    # An output activation the model always uses (the perceptron's step), or None to follow
    # the task: identity for regression, sigmoid for binary, softmax for multi-class.
    output_act: str | None = None

    def training_step(self, x: Tensor, y: Tensor, objective: Objective) -> tuple[Tensor, Tensor]:
        """Fill every parameter's ``.grad`` for one batch and return (data loss, scores),
        both detached. The default is backpropagation of the loss plus any L1/L2 penalty;
        models with another learning rule override this and keep the rest of the loop.
        Under torchrun, the ``.grad`` an override writes is averaged over the ranks after it
        returns (dlbasics/distributed.py), so it must be the mean over the batch it is given."""
        return backpropagate(self, x, y, objective)


def backpropagate(
    model: Model, x: Tensor, y: Tensor, objective: Objective, forward: nn.Module | None = None
) -> tuple[Tensor, Tensor]:
    """The default training step; ``forward`` runs the model's forward pass when given (the
    model wrapped in DistributedDataParallel, which averages the gradients over processes)."""
    scores = (forward or model)(x)
    loss = objective(scores, y)
    total = loss + objective.penalty(model) if objective.has_penalty else loss
    total.backward()
    return loss.detach(), scores.detach()


MODELS: Registry[Callable[[Config, DataSpec], Model]] = Registry("model")


def build_model(cfg: Config, spec: DataSpec) -> Model:
    return MODELS.get(cfg.model.name)(cfg, spec)
