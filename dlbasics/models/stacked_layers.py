"""Layers of K models of one architecture, run as one computation (stacked training).

Each function takes the K members' own modules — the same layer of every member — and a batch
laid out member first, ``(K, batch, …)``: member k's samples are ``x[k]``. ``weights(modules,
name)`` gives a parameter of every member as one (K, …) tensor: while a StackedModel trains,
the (K, …) tensor it holds and the optimizer updates (models/stacked.py); elsewhere the members'
own parameters, stacked (``stack_weights``). Autograd hands each member the gradient of its own
loss in its own row, as if it had been trained alone:

- linear layers become one batched matrix product, ``torch.baddbmm``: (K, B, in) @ (K, in, out);
- convolutions become one grouped convolution: the members' channels side by side, K groups;
- batch and layer normalisation run member by member, each member's own layer on its own batch;
- dropout draws member k's mask from member k's own generator;
- layers without weights (activations, pooling, flattening) run on all K·B samples at once.
"""

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

# Batch and layer normalisation run member by member, each member's own layer on its own
# batch (batch norm's running statistics updated as alone). One call for all members (their
# channels side by side, or one scale for all) sums the batch, or the scale's gradient, in
# another order than the layer's own backward pass, and those last-bit differences grow over a
# fit past a member trained alone (3e-4 in test loss after 20 epochs on digits, layer norm).
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)

# weights(modules, name): parameter ``name`` (a dotted name, as named_parameters gives it) of
# every member, as one (K, …) tensor whose row k is member k's.
Weights = Callable[[Sequence[nn.Module], str], Tensor]


def stack_weights(modules: Sequence[nn.Module], name: str) -> Tensor:
    """The members' own parameters ``name``, stacked: (K, …)."""
    return torch.stack([module.get_parameter(name) for module in modules])


def one_by_one(modules: Sequence[nn.Module], x: Tensor, weights: Weights = stack_weights) -> Tensor:
    """``modules[k]`` applied to ``x[k]``, one member after another, each with its rows of
    ``weights`` as its parameters (``torch.func.functional_call``), so that gradients reach
    them; buffers (running statistics) are the member's own."""
    names = [name for name, _ in modules[0].named_parameters()]
    stacked = {name: weights(modules, name) for name in names}
    return torch.stack(
        [
            functional_call(module, {name: stacked[name][k] for name in names}, (x[k],))
            for k, module in enumerate(modules)
        ]
    )


def sequential(
    layers: Sequence[nn.Sequential],
    x: Tensor,
    generators: Sequence[torch.Generator],
    weights: Weights = stack_weights,
) -> Tensor:
    """The K members' ``nn.Sequential`` of the same layers, applied to ``x`` (K, B, …)."""
    for modules in zip(*layers, strict=True):  # the members' layers at one position
        x = layer(modules, x, generators, weights)
    return x


def layer(
    modules: Sequence[nn.Module],
    x: Tensor,
    generators: Sequence[torch.Generator],
    weights: Weights = stack_weights,
) -> Tensor:
    """One layer of every member: ``modules[k]`` applied to ``x[k]``."""
    first = modules[0]
    if isinstance(first, nn.Linear):
        return linear(modules, x, weights)
    if isinstance(first, nn.Conv2d):
        return conv2d(modules, x, weights)
    if isinstance(first, NORMS):
        return one_by_one(modules, x, weights)
    if isinstance(first, nn.Dropout):
        return dropout(x, first.p, first.training, generators)
    if isinstance(first, nn.Sequential):
        return sequential(modules, x, generators, weights)
    if next(first.parameters(), None) is None and next(first.buffers(), None) is None:
        # no weights of its own (an activation, pooling): the same function for every member
        return first(x.flatten(0, 1)).unflatten(0, x.shape[:2])
    raise TypeError(f"stacked training has no batched form of {type(first).__name__}")


def linear(modules: Sequence[nn.Linear], x: Tensor, weights: Weights = stack_weights) -> Tensor:
    """x (K, B, …, in) → (K, B, …, out): y_k = x_k · W_kᵀ + b_k for every member at once."""
    weight = weights(modules, "weight").transpose(1, 2)  # (K, in, out)
    flat = x.flatten(1, -2)  # (K, B·…, in): per-step inputs of a sequence are rows as well
    if modules[0].bias is None:
        out = torch.bmm(flat, weight)
    else:
        bias = weights(modules, "bias").unsqueeze(1)  # (K, 1, out)
        out = torch.baddbmm(bias, flat, weight)
    return out.reshape(*x.shape[:-1], out.shape[-1])


def conv2d(modules: Sequence[nn.Conv2d], x: Tensor, weights: Weights = stack_weights) -> Tensor:
    """x (K, B, C, H, W) → (K, B, C', H', W'): one convolution with K groups, each member's
    input channels convolved with its own kernels only."""
    first, members = modules[0], len(modules)
    weight = weights(modules, "weight").flatten(0, 1)  # (K·C', C, kh, kw)
    bias = weights(modules, "bias").flatten() if first.bias is not None else None
    out = F.conv2d(
        _channels_side_by_side(x),
        weight,
        bias,
        first.stride,
        first.padding,
        first.dilation,
        first.groups * members,
    )
    return _members_first(out, members)


def dropout(x: Tensor, p: float, training: bool, generators: Sequence[torch.Generator]) -> Tensor:
    """Inverted dropout with member k's mask drawn from ``generators[k]``."""
    if not training or p == 0:
        return x
    keep = torch.stack(
        [torch.rand(x.shape[1:], generator=g, device=x.device) >= p for g in generators]
    )
    return x * keep / (1 - p)


def _channels_side_by_side(x: Tensor) -> Tensor:
    """(K, B, C, …) → (B, K·C, …): member k's channels are the k-th group of C."""
    return x.transpose(0, 1).flatten(1, 2)


def _members_first(x: Tensor, members: int) -> Tensor:
    """(B, K·C, …) → (K, B, C, …), the inverse of _channels_side_by_side."""
    return x.unflatten(1, (members, -1)).transpose(0, 1)
