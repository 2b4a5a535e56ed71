"""The interface every model trains through, and how a model is built by name (its schema and
registry are in dlbasics/schemas/models.py)."""

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from dlbasics.data import DataSpec, DataSplits
from dlbasics.errors import ConfigError
from dlbasics.losses import Objective, has_accuracy

# The model registry and the base of the models' schemas, kept importable from here: a model's
# module registers its builder with @MODELS.register (dlbasics/schemas/models.py).
from dlbasics.schemas.models import MODELS, OPTIONAL_GROUPS, ModelConfig  # noqa: F401

if TYPE_CHECKING:  # the whole config, for the builders' signatures
    from dlbasics.config import Config
    from dlbasics.distributed import SingleProcess
    from dlbasics.models.stacked_layers import Weights


@dataclass
class Batch:
    """One training step's samples: inputs ``x``, targets ``y`` (an RBM's are ``x`` itself),
    and, for boosting, how much each sample counts (``weights``, mean 1 over the training
    set; None: each once). ``size``: samples per model (a stacked fit's x is (K, size, …))."""

    x: Tensor
    y: Tensor
    size: int
    weights: Tensor | None = None

    def loss(self, objective: Objective, scores: Tensor) -> Tensor:
        """The objective's mean loss over the batch, each sample counted by its weight."""
        if self.weights is None:
            return objective(scores, self.y)
        return objective.weighted(scores, self.y, self.weights)

    def correct(self, objective: Objective, scores: Tensor) -> Tensor | None:
        """How many of the batch ``scores`` predict right (a stacked fit's: per member, (K,)),
        on the device; None for a task without accuracy (regression)."""
        if not has_accuracy(objective.task):
            return None
        return objective.correct(scores.detach(), self.y)


@dataclass
class StepTools:
    """What a training step runs under, set up once per fit by the Trainer: ``forward`` (the
    model, or DDP's wrapper of it under torchrun), ``autocast`` (trainer.precision's), the
    gradient ``scaler`` (16-mixed's; passes through otherwise) and ``parallel`` (this
    process' place among the ranks)."""

    forward: Callable[..., Tensor]
    autocast: AbstractContextManager
    scaler: torch.amp.GradScaler
    parallel: "SingleProcess"


class Model(nn.Module):
    """A network the Trainer can fit. ``forward(x)`` returns scores: the output layer before
    its activation (the objective applies the activation, or fuses it into the loss).

    What one training step does is the model's: ``training_step`` (default: backpropagation).
    A model with a learning rule of its own (the perceptron's, contrastive divergence) sets
    ``learns_by_backprop = False``, overrides ``write_gradients`` and takes
    ``learning_rule_step`` as its training step."""

    # An output activation the model always uses (the perceptron's step), or None to follow
    # the task: identity for regression, sigmoid for binary, softmax for multi-class.
    output_act: str | None = None
    # What epoch_metrics() reports besides loss and accuracy, named `<split>_<kind>`
    # (TensorBoard: kind/split); trainer.early_stopping.monitor may name any of them.
    epoch_metric_names: tuple[str, ...] = ()
    # Whether trainer.resume can continue it (a fit in several phases cannot).
    resumable: bool = True
    learns_by_backprop: bool = True
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

    def training_step(
        self, batch: Batch, objective: Objective, tools: StepTools
    ) -> tuple[Tensor, Tensor]:
        """One step's gradients, by backpropagation: forward → loss (+ penalty) → backward,
        under autocast and the gradient scaler. Returns (data loss, scores); the Trainer then
        clips the gradients and steps the optimizer."""
        with tools.autocast:
            scores = tools.forward(*self.training_inputs(batch))
            loss = batch.loss(objective, scores)
        # reg.l1, reg.l2: the weights pay for their size
        total = loss + objective.penalty(self) if objective.has_penalty else loss
        # Backpropagated from 1: a stacked fit's loss holds its K members' (K,), and member
        # k's weights reach term k only, each as alone.
        total = tools.scaler.scale(total)
        total.backward(torch.ones_like(total))
        return loss, scores

    def param_groups(self) -> list[dict] | Iterator[nn.Parameter]:
        """What the optimizer updates: the parameters (a stacked fit's, one group per lr)."""
        return self.parameters()

    def epoch_order(self, n: int, shuffles: Sequence[torch.Generator]) -> Tensor:
        """The order of the ``n`` training samples in an epoch: a shuffle by ``shuffles[0]``
        (a stacked fit's: each member's own)."""
        return torch.randperm(n, generator=shuffles[0])

    def training_inputs(self, batch: Batch) -> tuple[Tensor, ...]:
        """What forward takes while training: the inputs (a seq2seq decoder's teacher forcing
        takes the targets too)."""
        return (batch.x,)

    def learning_rule_step(
        self, batch: Batch, objective: Objective, tools: StepTools
    ) -> tuple[Tensor, Tensor]:
        """The training step of a model with a rule of its own: ``write_gradients`` fills
        ``.grad`` (averaged over the ranks under torchrun), and the optimizer applies it."""
        loss, scores = self.write_gradients(batch.x, batch.y, objective)
        tools.parallel.average_gradients(self)
        return loss, scores

    def clip_gradients(self, mode: str, limit: float | None) -> None:
        """Clip the gradients by ``trainer.grad_clip`` (None: leave them), as
        torch.nn.utils.clip_grad_norm_ (``mode`` "norm") or clip_grad_value_ ("value")."""
        if limit is None:
            return
        if mode == "norm":
            torch.nn.utils.clip_grad_norm_(self.parameters(), limit)
        else:
            torch.nn.utils.clip_grad_value_(self.parameters(), limit)

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
