"""The multi-layer perceptron: linear → activation → … → linear (CONCEPTS.md §3)."""

from torch import Tensor, nn

from dlbasics.activations import hidden_activation
from dlbasics.config import ActConfig, Config
from dlbasics.data import DataSpec
from dlbasics.models.base import MODELS, Model


class MLP(Model):
    """Fully connected layers of sizes ``hidden`` with one activation, then a linear output
    layer. ``hidden=[]`` is a linear model (logistic or linear regression). Inputs of any
    shape are flattened: an h×w image becomes a vector of h·w numbers."""

    def __init__(
        self, n_features: int, hidden: list[int], n_outputs: int, act: ActConfig, dropout: float
    ):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden:
            layers += [nn.Linear(width, size), hidden_activation(act)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))


@MODELS.register("mlp")
def build_mlp(cfg: Config, spec: DataSpec) -> MLP:
    return MLP(spec.n_features, list(cfg.model.hidden), spec.n_outputs, cfg.act, cfg.reg.dropout)
