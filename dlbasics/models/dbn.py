"""The deep belief network (CONCEPTS.md §9): RBMs stacked, pre-trained greedily, fine-tuned.

Pre-training needs no labels. The first RBM learns the inputs; its hidden-unit probabilities
are the inputs of the second, and so on: one Trainer fit per layer, ``model.pretrain_epochs``
epochs of contrastive divergence each, logged under the TensorBoard tags
``pretrain/layer<i>/…``. Then each RBM's recognition weights give a hidden layer
h = σ(Wx + c) of a classifier with an output layer on top, and the whole network is
fine-tuned by backpropagation on the labels: the run's ordinary fit, under the ordinary tags,
whose result metrics.json reports. ``model.pretrain=false`` fine-tunes the same network from
random initialisation, to measure what pre-training brings; ``data.labels_per_class=N`` keeps
N labels per class for fine-tuning while pre-training still sees every training input.

A DBN trains in several fits, so ``trainer.resume`` cannot continue one (it is refused before
training). A signal stops the fit under way and ends the run like any other (metrics.json,
exit 130/143); so does a pre-training that diverges (stop_reason diverged). ``trainer.on_nan``
applies to every fit.
"""

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from dlbasics.config import Config, DBNConfig, OptimConfig, RegConfig
from dlbasics.data import DataSpec, DataSplits
from dlbasics.images import image_shape
from dlbasics.losses import build_objective
from dlbasics.models.base import MODELS, Model
from dlbasics.models.rbm import RBM, check_unit_range, inputs_as_targets

if TYPE_CHECKING:
    from dlbasics.trainer import FitResult, Trainer

log = logging.getLogger("dlbasics")


class DBN(Model):
    """RBMs of sizes ``settings.layers`` on ``n_features`` inputs, read bottom-up as the
    sigmoid hidden layers of a network with ``n_outputs`` outputs. ``dropout`` applies to
    the hidden layers while fine-tuning; ``shape``: the inputs' image shape, for pictures of
    the first RBM's filters."""

    resumable = False
    backprop = False

    def __init__(
        self,
        n_features: int,
        n_outputs: int,
        settings: DBNConfig,
        dropout: float = 0.0,
        shape: tuple[int, int, int] | None = None,
    ):
        super().__init__()
        self.settings = settings
        sizes = [n_features, *settings.layers]
        self.rbms = nn.ModuleList(
            RBM(n_in, n_out, settings.k, settings.pcd, shape=shape if i == 0 else None)
            for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False))
        )
        if not settings.pretrain:  # start as a network trained by backprop would
            for rbm in self.rbms:
                fresh = nn.Linear(rbm.weight.shape[1], rbm.weight.shape[0])
                with torch.no_grad():
                    rbm.weight.copy_(fresh.weight)
                    rbm.hidden_bias.copy_(fresh.bias)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.output = nn.Linear(sizes[-1], n_outputs)

    def forward(self, x: Tensor) -> Tensor:
        h = x.flatten(1)
        for rbm in self.rbms:
            h = self.dropout(rbm.hidden_probs(h))
        return self.output(h)

    @torch.no_grad()
    def transform(self, x: Tensor) -> Tensor:
        """Inputs as the top hidden layer's probabilities: the DBN as a feature extractor."""
        h = x.flatten(1)
        for rbm in self.rbms:
            h = rbm.hidden_probs(h)
        return h

    def prepare(self, data: DataSplits) -> DataSplits:
        check_unit_range(data.every_training_input(), data.spec.name, "dbn")
        return data  # fine-tuning fits the labelled data as it is

    def pretrain(self, data: DataSplits, trainer: "Trainer") -> list["FitResult"]:
        """Train each RBM on the hidden-unit probabilities of the one below, by CD with SGD
        and momentum, for ``pretrain_epochs`` epochs without early stopping."""
        if not self.settings.pretrain:
            return []
        s = self.settings
        phase_cfg = replace(
            trainer.cfg,
            epochs=s.pretrain_epochs,
            resume=None,
            early_stopping=replace(
                trainer.cfg.early_stopping, enabled=False, monitor="val_loss", restore_best=False
            ),
        )
        optim = OptimConfig(name="momentum", lr=s.pretrain_lr, momentum=s.pretrain_momentum)
        inputs = [data.every_training_input(), data.x_val]
        inputs = [x.flatten(1).to(trainer.device) for x in inputs]
        fits = []
        for layer, rbm in enumerate(self.rbms, 1):
            n_hidden, n_visible = rbm.weight.shape
            log.info(
                f"pre-training layer {layer} of {len(self.rbms)}: an RBM of {n_visible} visible "
                f"and {n_hidden} hidden units, {s.pretrain_epochs} epochs"
            )
            x_train, x_val = inputs
            task = rbm.prepare(inputs_as_targets(data.spec.name, x_train, x_val, x_val))
            objective = build_objective("auto", rbm.output_act, task.spec, RegConfig(), "rbm")
            phase = trainer.for_phase(
                f"pretrain/layer{layer}/", phase_cfg, optim, "model.pretrain_lr"
            )
            fit = phase.fit(rbm, task, objective)
            fits.append(fit)
            if fit.stop_reason in ("interrupted", "diverged"):
                if fit.message:
                    fit.message = f"pre-training layer {layer}: {fit.message}"
                break
            inputs = [rbm.transform(x) for x in inputs]
        return fits


@MODELS.register("dbn")
def build_dbn(cfg: Config, spec: DataSpec) -> DBN:
    return DBN(
        spec.n_features,
        spec.n_outputs,
        cfg.model,
        cfg.reg.dropout,
        image_shape(spec.input_shape),
    )
