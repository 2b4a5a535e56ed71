"""Cheaper forms of torch helpers, for code that runs in every step.

On small models a step's arithmetic takes a few microseconds, so the Python around it counts:
torch's general-purpose helpers spend more time than the kernels they wrap.
"""

import functools
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import Tensor, nn

F = TypeVar("F", bound=Callable)
MEAN = torch.nn._reduction.get_enum("mean")  # the reduction argument of torch's loss kernels


@functools.cache
def constant(value: float, device: torch.device, dtype: torch.dtype) -> Tensor:
    """A 0-d tensor of ``value``, made once per device and dtype and shared: never modify it.
    Given a number, ``torch._foreach_add_`` wraps it in a new tensor for every parameter, and
    ``torch.heaviside`` needs its value at 0 as a tensor; making one costs more than the op."""
    return torch.full((), value, dtype=dtype, device=device)


@functools.cache
def mean_weights(n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """n values of 1/n, made once per size, device and dtype: ``rows.T @ mean_weights(…)``
    is the mean of the rows in one operation, where ``rows.mean(0)`` divides the sum by a
    number it first wraps in a tensor (8 µs against 3 µs for a sum on a small tensor)."""
    return torch.full((n,), 1 / n, device=device, dtype=dtype)


def mean_squared_error(input: Tensor, target: Tensor) -> Tensor:
    """``F.mse_loss(input, target)`` for tensors of one shape: the same kernel, without the
    Python around it (2 µs against 15 µs; a square and a mean take 7 µs, as mean() divides
    by a number it first wraps in a tensor)."""
    return torch._C._nn.mse_loss(input, target, MEAN)


def no_grad(function: F) -> F:
    """``@torch.no_grad()`` for a function: the same switch of grad mode, in 1 µs a call
    where torch's decorator takes 4.7 µs (it builds and clones a context object each time)."""

    @functools.wraps(function)
    def without_grad(*args, **kwargs):
        enabled = torch.is_grad_enabled()
        torch._C._set_grad_enabled(False)
        try:
            return function(*args, **kwargs)
        finally:
            torch._C._set_grad_enabled(enabled)

    return without_grad  # type: ignore[return-value]


class ModeSwitch:
    """``model.train(mode)`` for a model switched twice an epoch (train, then eval to
    validate). Module.train walks the tree and sets each module's ``training`` through
    Module.__setattr__: 7 µs for the perceptron's two modules, against 0.2 µs to set the
    flags directly. A model with a module that overrides ``train`` gets ``model.train``."""

    def __init__(self, model: nn.Module):
        self.model = model
        modules = list(model.modules())
        plain = all(type(module).train is nn.Module.train for module in modules)
        self.modules = modules if plain else None

    def __call__(self, training: bool) -> None:
        if self.modules is None:
            self.model.train(training)
            return
        for module in self.modules:
            module.__dict__["training"] = training  # what Module.__setattr__ ends up doing
