"""The interface every model trains through, and the model registry."""

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from dlbasics.config import Config
from dlbasics.data import DataSpec, DataSplits
from dlbasics.errors import ConfigError
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
    # Whether it learns by backpropagating a loss (mixed precision applies only then); models
    # whose training_step writes .grad by another rule set this to False.
    backprop: bool = True

    def training_step(self, x: Tensor, y: Tensor, objective: Objective) -> tuple[Tensor, Tensor]:
        """Fill every parameter's ``.grad`` for one batch and return (data loss, scores),
        both detached. The default is backpropagation of the loss plus any L1/L2 penalty;
        models with another learning rule override this and keep the rest of the loop.
        Under torchrun, the ``.grad`` an override writes is averaged over the ranks after it
        returns (dlbasics/distributed.py), so it must be the mean over the batch it is given."""
        return backpropagate(self, x, y, objective)

    def prepare(self, data: DataSplits) -> DataSplits:
        """The splits to fit, called once before training: the data set itself, unless the
        model learns something else from it (an RBM reconstructs its inputs). A model may
        check the data's values and initialise itself from them here."""
        return data

    def fitted_spec(self, spec: DataSpec) -> DataSpec:
        """The task ``prepare`` turns data of ``spec`` into: what the model's scores must
        match."""
        return spec

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


def backpropagate(
    model: Model, x: Tensor, y: Tensor, objective: Objective, forward: nn.Module | None = None
) -> tuple[Tensor, Tensor]:
    """The default training step; ``forward`` runs the model's forward pass when given (the
    model wrapped in DistributedDataParallel, which averages the gradients over processes)."""
    scores = (forward or model)(x)
    loss = objective(scores, y)
    total = loss + objective.penalty(model) if objective.has_penalty else loss
    if objective.grad_scaler is not None:  # float16: scaled up so small gradients do not vanish
        total = objective.grad_scaler.scale(total)
    total.backward()
    return loss.detach(), scores.detach()


MODELS: Registry[Callable[[Config, DataSpec], Model]] = Registry("model")


def require_sample_rank(spec: DataSpec, name: str, rank: int, needs: str, use: str) -> None:
    """Refuse data whose samples do not have ``rank`` dimensions, saying what model ``name``
    ``needs`` and what to ``use`` instead."""
    if len(spec.input_shape) != rank:
        raise ConfigError(
            f"model={name} needs {needs}, but data={spec.name} gives samples of shape "
            f"{spec.input_shape}; use {use}."
        )


def build_model(cfg: Config, spec: DataSpec) -> Model:
    """The model ``model.name`` names, fitted to the data's shapes. A model that cannot read
    the data's samples, or whose outputs do not match its targets, is a ConfigError here,
    before training, not a shape error from inside torch."""
    model = MODELS.get(cfg.model.name)(cfg, spec)
    check_output_shape(model, model.fitted_spec(spec), cfg.model.name)
    return model


@torch.no_grad()
def check_output_shape(model: Model, spec: DataSpec, name: str) -> None:
    """Run two blank samples through ``model`` and compare its scores with the targets' shape:
    (n_outputs,) per sample, or (time steps, n_outputs) for per-step targets."""
    expected = (spec.input_shape[0], spec.n_outputs) if spec.per_step else (spec.n_outputs,)
    was_training = model.training
    model.eval()  # batch norm must not learn from the blank samples
    try:
        scores = model(torch.zeros(2, *spec.input_shape))
    except RuntimeError as error:
        raise ConfigError(
            f"model={name} cannot read the samples of data={spec.name} (shape "
            f"{spec.input_shape}): {str(error).splitlines()[0]}"
        ) from None
    finally:
        model.train(was_training)
    if tuple(scores.shape[1:]) != expected:
        hint = "; only model=rnn gives an output at every time step" if spec.per_step else ""
        raise ConfigError(
            f"model={name} gives scores of shape {tuple(scores.shape[1:])} per sample, but "
            f"the targets of data={spec.name} have shape {expected}{hint}."
        )
