"""The interface every model trains through, the base of the models' config schemas, and the
model registry."""

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, ClassVar

import torch
from omegaconf import MISSING
from torch import Tensor, nn

from dlbasics.activations import OUTPUT_ACTIVATIONS
from dlbasics.data import DataSpec, DataSplits
from dlbasics.errors import ConfigError
from dlbasics.losses import Objective
from dlbasics.registry import Registry
from dlbasics.schema import check_choice

if TYPE_CHECKING:  # the whole config, for the builders' signatures
    from dlbasics.config import Config
    from dlbasics.models.stacked_layers import Weights

# The groups a model may read besides its own keys; each model's schema says which it does
# (ModelConfig.groups), and a user who sets one the chosen model ignores is told so.
OPTIONAL_GROUPS = ("act", "reg")


@dataclass
class ModelConfig:
    """The keys every model takes (`model=NAME` adds its own)."""

    # What else the model reads: "act" (its hidden layers' activation), "reg" (L1/L2 penalties,
    # dropout). A group the model does not read is left out of its config.
    groups: ClassVar[tuple[str, ...]] = OPTIONAL_GROUPS

    name: str = MISSING
    # Output layer activation; "auto" follows the task: identity (regression),
    # sigmoid (binary), softmax (multi-class). The perceptron's is always step.
    output_act: str = "auto"

    def __post_init__(self) -> None:
        check_choice("model.output_act", self.output_act, ["auto", *OUTPUT_ACTIVATIONS.names()])

    def needs_unit_range(self) -> bool:
        """Whether the model's inputs must lie in [0, 1] (they are probabilities): what a
        ``data.unit_range`` left null becomes (``config.validate``)."""
        return False


class Model(nn.Module):
    """A network the Trainer can fit. ``forward(x)`` returns scores: the output layer before
    its activation (the objective applies the activation, or fuses it into the loss).

    Most models learn by backpropagation, which the Trainer runs itself. A model with a
    learning rule of its own (the perceptron's, contrastive divergence) sets
    ``learns_by_backprop = False`` and overrides ``write_gradients``."""

    # An output activation the model always uses (the perceptron's step), or None to follow
    # the task: identity for regression, sigmoid for binary, softmax for multi-class.
    output_act: str | None = None
    # What epoch_metrics() reports besides loss and accuracy, named `<split>_<kind>`
    # (TensorBoard: kind/split); trainer.early_stopping.monitor may name any of them.
    epoch_metric_names: tuple[str, ...] = ()
    # Whether trainer.resume can continue it (a fit in several phases cannot).
    resumable: bool = True
    learns_by_backprop: bool = True
    # Whether forward takes the targets too while training, ``forward(x, y)``: a seq2seq
    # decoder's teacher forcing (it reads the right previous token at every step). In eval
    # mode forward(x) always works alone.
    reads_targets: bool = False
    # Buffers whose size the data sets (PCD's chains: one per sample of the first batch): a
    # checkpoint's size is taken when it is loaded.
    resizable_buffers: tuple[str, ...] = ()

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        for prefix, module in self.named_modules():
            for name in getattr(module, "resizable_buffers", ()):
                saved = state_dict.get(f"{prefix}.{name}" if prefix else name)
                mine = getattr(module, name)
                if saved is not None and saved.shape != mine.shape:
                    setattr(module, name, torch.zeros_like(saved, device=mine.device))
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def write_gradients(self, x: Tensor, y: Tensor, objective: Objective) -> tuple[Tensor, Tensor]:
        """For a model with its own learning rule: fill every parameter's ``.grad`` with the
        update for one batch, as a gradient (the optimizer subtracts lr times it), and return
        (data loss, scores), both detached. It must be the mean over the batch it is given:
        under torchrun, the ranks' gradients are averaged after it returns."""
        raise NotImplementedError(f"{type(self).__name__} learns by backpropagation")

    def prepare(self, data: DataSplits) -> DataSplits:
        """The splits to fit, called once before training: the data set itself, unless the
        model learns something else from it (an RBM reconstructs its inputs). A model may
        check the data's values and initialise itself from them here."""
        return data

    def fitted_spec(self, spec: DataSpec) -> DataSpec:
        """The task ``prepare`` turns data of ``spec`` into: what the model's scores must
        match."""
        return spec

    def epoch_metrics(self, x_train: Tensor, x_val: Tensor) -> dict[str, float]:
        """The measures of ``epoch_metric_names``, taken at the end of each epoch."""
        return {}

    def epoch_images(self, x_val: Tensor) -> dict[str, Tensor]:
        """Images for TensorBoard, tag → (channels, height, width) in [0, 1]; written with
        each checkpoint and at the end of a fit."""
        return {}

    def epoch_text(self, x_val: Tensor) -> dict[str, str]:
        """Text for TensorBoard, tag → Markdown (a seq2seq model's translations); written with
        the images."""
        return {}

    @staticmethod
    def forward_stacked(
        members: Sequence["Model"],
        x: Tensor,
        generators: Sequence[torch.Generator],
        weights: "Weights",
    ) -> Tensor:
        """The forward pass of K members of this family at once (stacked training,
        models/stacked.py): ``x`` (K, batch, …) → scores (K, batch, …), member k's dropout
        masks drawn from ``generators[k]``, its parameters read as row k of ``weights(modules,
        name)`` (models/stacked_layers.py). A family without it trains its members one by
        one."""
        raise NotImplementedError

    def final_metrics(self, data: DataSplits) -> dict[str, float]:
        """Measures of the trained model for metrics.json, taken once after the test (an
        RBM's completion of half-hidden images); ``data``: the splits it was fitted on."""
        return {}


MODELS: Registry[Callable[["Config", DataSpec], Model]] = Registry("model")


def require_sample_rank(spec: DataSpec, name: str, rank: int, needs: str, use: str) -> None:
    """Refuse data whose samples do not have ``rank`` dimensions, saying what model ``name``
    ``needs`` and what to ``use`` instead."""
    if len(spec.input_shape) != rank:
        raise ConfigError(
            f"model={name} needs {needs}, but data={spec.name} gives samples of shape "
            f"{spec.input_shape}; use {use}."
        )


def build_model(cfg: "Config", spec: DataSpec) -> Model:
    """The model ``model.name`` names, fitted to the data's shapes. A model too large for
    this machine, one that cannot read the data's samples, or whose outputs do not match its
    targets, is a ConfigError here, before training, not an error from inside torch."""
    build = MODELS.get(cfg.model.name)
    check_memory(cfg, spec, build)
    model = build(cfg, spec)
    check_output_shape(model, model.fitted_spec(spec), cfg.model.name)
    return model


# Bytes one parameter takes while training, in float32: itself, its gradient, two optimizer
# slots (Adam's moments) and the best epoch's copy.
TRAINING_BYTES_PER_PARAMETER = 5 * 4


def check_memory(cfg: "Config", spec: DataSpec, build: Callable[..., Model]) -> None:
    """Build the model on the meta device (shapes, no memory) and refuse it when training it
    would take more than this machine's memory, naming its sizes."""
    with torch.device("meta"):
        n_params = sum(p.numel() for p in build(cfg, spec).parameters())
    needed = n_params * TRAINING_BYTES_PER_PARAMETER
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if needed > memory:
        default = type(cfg.model)()
        numbers = [
            f.name
            for f in fields(cfg.model)
            if isinstance(getattr(cfg.model, f.name), (int, list))
            and not isinstance(getattr(cfg.model, f.name), bool)
        ]
        changed = [n for n in numbers if getattr(cfg.model, n) != getattr(default, n)]
        sizes = [f"model.{n}={getattr(cfg.model, n)}" for n in changed or numbers]
        raise ConfigError(
            f"model={cfg.model.name} would have {n_params:,} parameters: training them takes "
            f"about {needed / 2**30:,.0f} GiB (weights, gradients, optimizer state and the "
            f"best epoch's copy, in float32), more than this machine's {memory / 2**30:,.0f} "
            f"GiB of memory; make it smaller ({', '.join(sizes)})."
        )


@torch.no_grad()
def check_output_shape(model: Model, spec: DataSpec, name: str) -> None:
    """Run two blank samples through ``model`` and compare its scores with the targets' shape:
    (n_outputs,) per sample, or (time steps, n_outputs) for per-step targets."""
    steps = spec.target_length or spec.input_shape[0]  # seq2seq: a length of its own
    expected = (steps, spec.n_outputs) if spec.per_step else (spec.n_outputs,)
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
        if spec.task == "seq2seq":
            hint = "; a sequence-to-sequence task needs model=seq2seq"
        raise ConfigError(
            f"model={name} gives scores of shape {tuple(scores.shape[1:])} per sample, but "
            f"the targets of data={spec.name} have shape {expected}{hint}."
        )
