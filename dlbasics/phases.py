"""Fits before a run's own fit ("phases"): a DBN's greedy, layer-by-layer pre-training.

Each phase is an ordinary Trainer fit of its own model, data, objective and settings, logged
under its own TensorBoard tags. A plan of phases is a generator: it yields one phase, and when
the run asks for the next one that phase has been fitted, so the next can be built from what
it learned (a DBN's layer k + 1 learns from the features of the trained layer k).
"""

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import torch

from dlbasics.data import DataSplits
from dlbasics.losses import Objective, RegConfig, build_objective
from dlbasics.models import Model
from dlbasics.models.dbn import DBN
from dlbasics.models.rbm import inputs_as_targets
from dlbasics.optim import MomentumConfig, OptimConfig
from dlbasics.trainer import FitResult, Trainer, TrainerConfig

log = logging.getLogger("dlbasics")


@dataclass
class Phase:
    """One fit of a sequence: what to fit, on what, and how."""

    name: str  # what the phase is, for messages: "pre-training layer 1"
    description: str  # logged as the phase starts
    tag_prefix: str  # TensorBoard tags of this fit: <tag_prefix>loss/train, …
    model: Model
    data: DataSplits
    objective: Objective
    trainer: TrainerConfig
    optim: OptimConfig
    lr_key: str  # the key that sets this phase's learning rate, for messages


def run_phases(phases: Iterable[Phase], trainer: Trainer) -> list[FitResult]:
    """Fit each phase in turn with ``trainer``'s device, logger and signal handling. A phase
    that is interrupted or diverges ends the sequence: the run ends with it."""
    fits = []
    for phase in phases:
        log.info(phase.description)
        fit = trainer.for_phase(phase.tag_prefix, phase.trainer, phase.optim, phase.lr_key).fit(
            phase.model, phase.data, phase.objective
        )
        fit.phase = phase.name
        fits.append(fit)
        if fit.stop_reason in ("interrupted", "diverged"):
            if fit.message:
                fit.message = f"{phase.name}: {fit.message}"
            break
    return fits


def pretraining(
    model: Model, data: DataSplits, cfg: TrainerConfig, device: torch.device
) -> Iterator[Phase]:
    """The phases ``model`` needs before its own fit: none, or a DBN's pre-training."""
    if isinstance(model, DBN) and model.settings.pretrain:
        yield from dbn_pretraining(model, data, cfg, device)


def dbn_pretraining(
    dbn: DBN, data: DataSplits, cfg: TrainerConfig, device: torch.device
) -> Iterator[Phase]:
    """Each RBM of ``dbn``, bottom up, fitted by contrastive divergence with SGD and momentum
    on the hidden-unit probabilities of the one below (every training input, labelled or not),
    for ``model.pretrain_epochs`` epochs without early stopping."""
    s = dbn.settings
    phase_cfg = replace(
        cfg,
        epochs=s.pretrain_epochs,
        resume=None,
        early_stopping=replace(
            cfg.early_stopping, enabled=False, monitor="val_loss", restore_best=False
        ),
    )
    optim = MomentumConfig(lr=s.pretrain_lr, momentum=s.pretrain_momentum)
    inputs = [x.flatten(1).to(device) for x in (data.every_training_input(), data.x_val)]
    for layer, rbm in enumerate(dbn.rbms, 1):
        n_hidden, n_visible = rbm.weight.shape
        x_train, x_val = inputs
        task = rbm.prepare(inputs_as_targets(data.spec.name, x_train, x_val, x_val))
        yield Phase(
            name=f"pre-training layer {layer}",
            description=(
                f"pre-training layer {layer} of {len(dbn.rbms)}: an RBM of {n_visible} visible "
                f"and {n_hidden} hidden units, {s.pretrain_epochs} epochs"
            ),
            tag_prefix=f"pretrain/layer{layer}/",
            model=rbm,
            data=task,
            objective=build_objective("auto", rbm.output_act, task.spec, RegConfig(), "rbm"),
            trainer=phase_cfg,
            optim=optim,
            lr_key="model.pretrain_lr",
        )
        if layer == 1:  # the one layer that models the inputs themselves: its completion
            dbn.remember_completion(x_val, x_train)
        inputs = [rbm.transform(x) for x in inputs]  # the features the fitted layer learned
