"""The multi-layer perceptron: linear → activation → … → linear (docs/concepts.md §3)."""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlbasics.activations import ActConfig, hidden_activation
from dlbasics.data import DataSpec
from dlbasics.models import stacked_layers
from dlbasics.models.base import MODELS, Model
from dlbasics.schemas.models import MLPConfig

if TYPE_CHECKING:
    from dlbasics.config import Config


class BatchNorm(nn.BatchNorm1d):
    """Batch normalisation that also takes a batch of one sample, as the last batch of an
    epoch can be (105 samples in batches of 8 leave one): a single sample has no batch
    statistics, so it is normalised by the running ones, which it leaves as they are."""

    def forward(self, x: Tensor) -> Tensor:
        if self.training and len(x) == 1:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, eps=self.eps
            )
        return super().forward(x)


# Normalisation after a hidden linear layer, before its activation (Ioffe & Szegedy, 2015).
NORM_LAYERS = {"batch": BatchNorm, "layer": nn.LayerNorm}


class MLP(Model):
    """Fully connected layers of sizes ``hidden`` with one activation, then a linear output
    layer. ``hidden=[]`` is a linear model (logistic or linear regression). Inputs of any
    shape are flattened: an h×w image becomes a vector of h·w numbers. ``norm`` ("batch" or
    "layer") normalises each hidden layer's pre-activations."""

    def __init__(
        self,
        n_features: int,
        hidden: list[int],
        n_outputs: int,
        act: ActConfig,
        dropout: float,
        norm: str = "none",
    ):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden:
            layers.append(nn.Linear(width, size))
            if norm != "none":
                layers.append(NORM_LAYERS[norm](size))
            layers.append(hidden_activation(act))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))

    @staticmethod
    def forward_stacked(
        members: Sequence["MLP"],
        x: Tensor,
        generators: Sequence[torch.Generator],
        weights: stacked_layers.Weights = stacked_layers.stack_weights,
    ) -> Tensor:
        nets = [m.net for m in members]
        return stacked_layers.sequential(nets, x.flatten(2), generators, weights)


@MODELS.register("mlp", MLPConfig)
def build_mlp(cfg: "Config", spec: DataSpec) -> MLP:
    return MLP(spec.n_features, list(cfg.model.hidden), spec.n_outputs, cfg.act, cfg.reg.dropout)
