"""Layers of K models of one architecture, run as one computation (stacked training).

Each function takes the K members' own modules — the same layer of every member — and a batch
laid out member first, ``(K, batch, …)``: member k's samples are ``x[k]``. The members' weights
are stacked (``torch.stack``, ``torch.cat``) at every call, so autograd hands each member the
gradient of its own loss in its own parameters, as if it had been trained alone:

- linear layers become one batched matrix product, ``torch.baddbmm``: (K, B, in) @ (K, in, out);
- convolutions become one grouped convolution: the members' channels side by side, K groups;
- batch normalisation runs member by member, each member's own layer on its own batch;
- dropout draws member k's mask from member k's own generator;
- layers without weights (activations, pooling, flattening) run on all K·B samples at once.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def sequential(
    layers: Sequence[nn.Sequential], x: Tensor, generators: Sequence[torch.Generator]
) -> Tensor:
    """The K members' ``nn.Sequential`` of the same layers, applied to ``x`` (K, B, …)."""
    for position in range(len(layers[0])):
        x = layer([member[position] for member in layers], x, generators)
    return x


def layer(modules: Sequence[nn.Module], x: Tensor, generators: Sequence[torch.Generator]) -> Tensor:
    """One layer of every member: ``modules[k]`` applied to ``x[k]``."""
    first = modules[0]
    if isinstance(first, nn.Linear):
        return linear(modules, x)
    if isinstance(first, nn.Conv2d):
        return conv2d(modules, x)
    if isinstance(first, BATCH_NORMS):
        return batch_norm(modules, x)
    if isinstance(first, nn.LayerNorm):
        return layer_norm(modules, x)
    if isinstance(first, nn.Dropout):
        return dropout(x, first.p, first.training, generators)
    if isinstance(first, nn.Sequential):
        return sequential(modules, x, generators)
    if next(first.parameters(), None) is None and next(first.buffers(), None) is None:
        # no weights of its own (an activation, pooling): the same function for every member
        return first(x.flatten(0, 1)).unflatten(0, x.shape[:2])
    raise TypeError(f"stacked training has no batched form of {type(first).__name__}")


def linear(modules: Sequence[nn.Linear], x: Tensor) -> Tensor:
    """x (K, B, …, in) → (K, B, …, out): y_k = x_k · W_kᵀ + b_k for every member at once."""
    weight = torch.stack([m.weight for m in modules]).transpose(1, 2)  # (K, in, out)
    flat = x.flatten(1, -2)  # (K, B·…, in): per-step inputs of a sequence are rows as well
    if modules[0].bias is None:
        out = torch.bmm(flat, weight)
    else:
        bias = torch.stack([m.bias for m in modules]).unsqueeze(1)  # (K, 1, out)
        out = torch.baddbmm(bias, flat, weight)
    return out.reshape(*x.shape[:-1], out.shape[-1])


def conv2d(modules: Sequence[nn.Conv2d], x: Tensor) -> Tensor:
    """x (K, B, C, H, W) → (K, B, C', H', W'): one convolution with K groups, each member's
    input channels convolved with its own kernels only."""
    first, members = modules[0], len(modules)
    weight = torch.cat([m.weight for m in modules])  # (K·C', C, kh, kw)
    bias = torch.cat([m.bias for m in modules]) if first.bias is not None else None
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


def batch_norm(modules: Sequence[nn.BatchNorm1d | nn.BatchNorm2d], x: Tensor) -> Tensor:
    """Batch normalisation of each member's features by its own batch statistics (training;
    each member's running statistics updated as alone) or its running ones (evaluation).
    Member by member, each through its own layer: one call for all of them (the members'
    channels side by side) sums the batch in another order in the backward pass, and those
    rounding differences grow over a fit past a member trained alone."""
    return torch.stack([m(part) for m, part in zip(modules, x, strict=True)])


def layer_norm(modules: Sequence[nn.LayerNorm], x: Tensor) -> Tensor:
    """Layer normalisation of every sample, then each member's own scale and shift."""
    first = modules[0]
    out = F.layer_norm(x, first.normalized_shape, None, None, first.eps)
    if not first.elementwise_affine:
        return out
    extra = (1,) * (x.ndim - 1 - len(first.normalized_shape))  # B, …: broadcast over samples
    weight = torch.stack([m.weight for m in modules])
    out = out * weight.reshape(len(modules), *extra, *first.normalized_shape)
    if first.bias is not None:
        bias = torch.stack([m.bias for m in modules])
        out = out + bias.reshape(len(modules), *extra, *first.normalized_shape)
    return out


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
