"""The interface every model trains through, and the model registry."""

from collections.abc import Callable
from typing import TYPE_CHECKING

from torch import Tensor, nn

from dlbasics.config import Config
from dlbasics.data import DataSpec, DataSplits
from dlbasics.losses import Objective
from dlbasics.registry import Registry

if TYPE_CHECKING:  # the trainer imports this module
    from dlbasics.trainer import FitResult, Trainer


class Model(nn.Module):
    """A network the Trainer can fit. ``forward(x)`` returns scores: the output layer before
    its activation (the objective applies the activation, or fuses it into the loss)."""

    # An output activation the model always uses (the perceptron's step), or None to follow
    # the task: identity for regression, sigmoid for binary, softmax for multi-class.
    output_act: str | None = None
    # What epoch_metrics() reports besides loss and accuracy, named `<split>_<kind>`
    # (TensorBoard: kind/split); trainer.early_stopping.monitor may name any of them.
    epoch_metric_names: tuple[str, ...] = ()
    # Whether trainer.resume can continue it (a fit in several phases cannot).
    resumable: bool = True

    def training_step(self, x: Tensor, y: Tensor, objective: Objective) -> tuple[Tensor, Tensor]:
        """Fill every parameter's ``.grad`` for one batch and return (data loss, scores),
        both detached. The default is backpropagation of the loss plus any L1/L2 penalty;
        models with another learning rule override this and keep the rest of the loop."""
        scores = self(x)
        loss = objective(scores, y)
        total = loss + objective.penalty(self) if objective.has_penalty else loss
        total.backward()
        return loss.detach(), scores.detach()

    def prepare(self, data: DataSplits) -> DataSplits:
        """The splits to fit, called once before training: the data set itself, unless the
        model learns something else from it (an RBM reconstructs its inputs). A model may
        check the data's values and initialise itself from them here."""
        return data

    def pretrain(self, data: DataSplits, trainer: "Trainer") -> list["FitResult"]:
        """Fits before the supervised one, each through ``trainer.for_phase`` (a DBN's
        pre-training, layer by layer); the last one returned may have been interrupted or
        diverged, which ends the run."""
        return []

    def epoch_metrics(self, x_train: Tensor, x_val: Tensor) -> dict[str, float]:
        """The measures of ``epoch_metric_names``, taken at the end of each epoch."""
        return {}

    def epoch_images(self, x_val: Tensor) -> dict[str, Tensor]:
        """Images for TensorBoard, tag → (channels, height, width) in [0, 1]; written with
        each checkpoint and at the end of a fit."""
        return {}


MODELS: Registry[Callable[[Config, DataSpec], Model]] = Registry("model")


def build_model(cfg: Config, spec: DataSpec) -> Model:
    return MODELS.get(cfg.model.name)(cfg, spec)
