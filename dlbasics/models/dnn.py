"""The deep fully connected network (docs/concepts.md §9): many hidden layers, made trainable
by ReLU, normalisation and a weight initialisation that keeps signals at a steady scale (§8)."""

from collections.abc import Callable
from typing import TYPE_CHECKING

from torch import Tensor, nn

from dlbasics.activations import ActConfig
from dlbasics.data import DataSpec
from dlbasics.errors import ConfigError
from dlbasics.models.base import MODELS
from dlbasics.models.mlp import MLP
from dlbasics.schemas.models import DNNConfig

if TYPE_CHECKING:
    from dlbasics.config import Config


def _he_slope(act: ActConfig) -> float:
    # He et al. (2015) derive the scale for (leaky) ReLU: variance 2 / ((1 + a²)·fan_in).
    return getattr(act, "negative_slope", 0.0)


# init name → fills one weight matrix in place. Biases start at zero under every scheme.
INITIALIZERS: dict[str, Callable[[Tensor, ActConfig], None]] = {
    # Glorot & Bengio (2010): variance 2 / (fan_in + fan_out), for tanh and sigmoid units.
    "xavier_uniform": lambda w, act: nn.init.xavier_uniform_(w),
    "xavier_normal": lambda w, act: nn.init.xavier_normal_(w),
    "he_uniform": lambda w, act: nn.init.kaiming_uniform_(
        w, a=_he_slope(act), nonlinearity="leaky_relu"
    ),
    "he_normal": lambda w, act: nn.init.kaiming_normal_(
        w, a=_he_slope(act), nonlinearity="leaky_relu"
    ),
    "normal": lambda w, act: nn.init.normal_(w, mean=0.0, std=0.01),  # small random numbers
    # Every unit of a layer computes the same function and gets the same gradient, so they
    # stay identical: symmetry is never broken, the lesson this choice exists for.
    "zeros": lambda w, act: nn.init.zeros_(w),
}


def initialize_weights(model: nn.Module, init: str, act: ActConfig) -> None:
    """Re-initialise every linear layer of ``model`` by the scheme ``init`` (a key of
    INITIALIZERS); ``"default"`` keeps PyTorch's U(−1/√fan_in, 1/√fan_in)."""
    if init == "default":
        return
    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            INITIALIZERS[init](layer.weight, act)
            nn.init.zeros_(layer.bias)


@MODELS.register("dnn", DNNConfig)
def build_dnn(cfg: "Config", spec: DataSpec) -> MLP:
    """A deep MLP: ``model.depth`` hidden layers of ``model.width`` units (or the sizes in
    ``model.hidden``), each linear → ``model.norm`` → activation → dropout, with weights
    initialised by ``model.init``."""
    model = cfg.model
    if model.norm == "batch" and cfg.trainer.batch_size == 1:
        raise ConfigError(
            "model.norm=batch normalises over the samples of a batch, and "
            "trainer.batch_size=1 leaves one; use model.norm=layer or a larger batch size."
        )
    network = MLP(
        spec.n_features, model.layer_sizes, spec.n_outputs, cfg.act, cfg.reg.dropout, model.norm
    )
    initialize_weights(network, model.init, cfg.act)
    return network
