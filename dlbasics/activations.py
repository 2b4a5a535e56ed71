"""Activation functions by name (`act=relu`), and the output-layer activations.

Each entry is the textbook function as a torch module, registered with the schema of the keys
it takes (dlbasics/schemas/activations.py); see docs/concepts.md §4 for what each is for.
"""

import torch
from torch import Tensor, nn

from dlbasics.schemas.activations import (
    HIDDEN_ACTIVATIONS,
    OUTPUT_ACTIVATIONS,
    ActConfig,
    LeakyReLUConfig,
)


class _StepFunction(torch.autograd.Function):
    """Heaviside step: 1 where x > 0, else 0. Its derivative is 0 almost everywhere, so a
    network of step units gets no gradient signal: the reason backprop needs smooth units."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return _heaviside(x)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> Tensor:
        return torch.zeros_like(grad_output)


def _heaviside(x: Tensor) -> Tensor:
    return (x > 0).to(x.dtype)  # 0 at x = 0 (and for NaN)


def step(x: Tensor) -> Tensor:
    if not x.requires_grad:  # outside autograd (the perceptron's rule, evaluation): no graph
        return _heaviside(x)
    return _StepFunction.apply(x)


class Step(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return step(x)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """exp(a) / sum(exp(a)), computed as exp(a - max a) / sum(exp(a - max a)).

    Subtracting the maximum changes nothing mathematically but keeps exp() from overflowing:
    softmax([1010, 1000, 990]) is finite instead of inf/inf = NaN.
    """
    shifted = x - x.amax(dim=dim, keepdim=True)
    exp = shifted.exp()
    return exp / exp.sum(dim=dim, keepdim=True)


HIDDEN_ACTIVATIONS.register("step", ActConfig)(lambda cfg: Step())
HIDDEN_ACTIVATIONS.register("sigmoid", ActConfig)(lambda cfg: nn.Sigmoid())
HIDDEN_ACTIVATIONS.register("tanh", ActConfig)(lambda cfg: nn.Tanh())
HIDDEN_ACTIVATIONS.register("relu", ActConfig)(lambda cfg: nn.ReLU())
HIDDEN_ACTIVATIONS.register("leaky_relu", LeakyReLUConfig)(
    lambda cfg: nn.LeakyReLU(cfg.negative_slope)
)
HIDDEN_ACTIVATIONS.register("gelu", ActConfig)(lambda cfg: nn.GELU())
HIDDEN_ACTIVATIONS.register("identity", ActConfig)(lambda cfg: nn.Identity())


def hidden_activation(cfg: ActConfig) -> nn.Module:
    """A fresh activation module for one hidden layer."""
    return HIDDEN_ACTIVATIONS.get(cfg.name)(cfg)


# The output layer turns the network's scores into predictions (model.output_act).
OUTPUT_ACTIVATIONS.register("identity")(lambda z: z)
OUTPUT_ACTIVATIONS.register("sigmoid")(torch.sigmoid)
OUTPUT_ACTIVATIONS.register("softmax")(softmax)
OUTPUT_ACTIVATIONS.register("step")(step)
