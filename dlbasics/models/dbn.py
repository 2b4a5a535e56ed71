"""The deep belief network (docs/concepts.md §9): RBMs stacked, pre-trained greedily, fine-tuned.

Pre-training needs no labels. The first RBM learns the inputs; its hidden-unit probabilities
are the inputs of the second, and so on: one ordinary fit per layer, arranged by the run
(dlbasics/phases.py), logged under the TensorBoard tags ``pretrain/layer<i>/…``. Then each
RBM's recognition weights give a hidden layer h = σ(Wx + c) of a classifier with an output layer
on top, and the whole network is fine-tuned by backpropagation on the labels: the run's
ordinary fit, under the ordinary tags, whose result metrics.json reports.
``model.pretrain=false`` fine-tunes the same network from random initialisation, to measure
what pre-training brings; ``data.labels_per_class=N`` keeps N labels per class for
fine-tuning while pre-training still sees every training input.

A DBN trains in several fits, so ``trainer.resume`` cannot continue one (it is refused before
training). A signal stops the fit under way and ends the run like any other (metrics.json,
exit 130/143); so does a pre-training that diverges (stop_reason diverged). ``trainer.on_nan``
applies to every fit.
"""

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from dlbasics.data import DataSpec, DataSplits
from dlbasics.images import image_shape
from dlbasics.models.base import MODELS, Model
from dlbasics.models.rbm import RBM, check_unit_range
from dlbasics.schemas.models import DBNConfig

if TYPE_CHECKING:
    from dlbasics.config import Config


class DBN(Model):
    """RBMs of sizes ``settings.layers`` on ``n_features`` inputs, read bottom-up as the
    sigmoid hidden layers of a network with ``n_outputs`` outputs. ``dropout`` applies to
    the hidden layers while fine-tuning; ``shape``: the inputs' image shape, for pictures of
    the first RBM's filters."""

    resumable = False

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
        self.completion: dict[str, float] = {}  # remember_completion(), after pre-training
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

    def remember_completion(self, x_val: Tensor, x_train: Tensor) -> None:
        """Measure, as pre-training has left it, how the first RBM completes the validation
        images' hidden lower half (RBM.completion_metrics); metrics.json reports it.

        When pre-training ends, the DBN is a generative model of its inputs, and the first
        RBM is the layer that models the pixels: its completion reads like model=rbm's and
        TensorBoard shows it (pretrain/layer1/rbm/completion). Fine-tuning then trains every
        weight for the labels alone, as recognition weights, and the generative model is not
        kept: measured after it, the completion of digits is far worse than filling in the
        training mean image (an error of 0.22 against 0.079 at seed 0). A pass up the whole
        stack, Gibbs sampling in the top RBM and a pass down would add the upper layers'
        prior, at the cost of each layer's approximation on the way up and down; the first
        RBM alone is the simpler measure of what the DBN learnt of its inputs."""
        first = self.rbms[0]
        self.completion = first.completion_metrics(x_val, x_train)

    def final_metrics(self, data: DataSplits) -> dict[str, float]:
        """The first RBM's completion as pre-training left it (none without pre-training: the
        network never learnt a model of its inputs)."""
        return dict(self.completion)

    def prepare(self, data: DataSplits) -> DataSplits:
        check_unit_range(data.every_training_input(), data.spec.name, "dbn")
        return data  # fine-tuning fits the labelled data as it is


@MODELS.register("dbn", DBNConfig)
def build_dbn(cfg: "Config", spec: DataSpec) -> DBN:
    return DBN(
        spec.n_features,
        spec.n_outputs,
        cfg.model,
        cfg.reg.dropout,
        image_shape(spec.input_shape),
    )
