"""The schemas of dlbasics/activations.py: hidden-layer activations (`act=relu`) and the names
of the output-layer ones (``model.output_act``)."""

from dataclasses import dataclass

from omegaconf import MISSING

from dlbasics.registry import Registry
from dlbasics.schema import check


@dataclass
class ActConfig:
    """A hidden-layer activation with no settings (`act=relu`)."""

    name: str = MISSING


@dataclass
class LeakyReLUConfig(ActConfig):
    name: str = "leaky_relu"
    negative_slope: float = 0.01  # slope for x < 0

    def __post_init__(self) -> None:
        check(self.negative_slope >= 0, "act.negative_slope", self.negative_slope, "must be >= 0")


# name → (its ActConfig) → a fresh torch module
HIDDEN_ACTIVATIONS: Registry = Registry(
    "act",
    {
        "step": ActConfig,
        "sigmoid": ActConfig,
        "tanh": ActConfig,
        "relu": ActConfig,
        "leaky_relu": LeakyReLUConfig,
        "gelu": ActConfig,
        "identity": ActConfig,
    },
    builders="dlbasics.activations",
)

# The output layer turns the network's scores into predictions: name → (scores) → outputs.
OUTPUT_ACTIVATIONS: Registry = Registry(
    "model.output_act",
    dict.fromkeys(["identity", "sigmoid", "softmax", "step"]),
    builders="dlbasics.activations",
)
