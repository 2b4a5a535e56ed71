"""K recurrent modules of one configuration run as one batched computation (stacked training).

Each member stays an ordinary ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU`` with its own parameters.
Their weights come stacked along a new first dimension of size K (``weights``, as in
stacked_layers.py), and batched matrix products (``torch.baddbmm``, one matrix per member)
compute all K members at once; autograd carries each member's gradient back to its own row.
``torch.func.vmap`` cannot do this for us: it has no batching rule for the fused recurrent
kernels, so the cells are written here with public ops, following the formulas in torch's
documentation of each module.

Shapes (K members, B sequences, T time steps, F features, H hidden units, D directions):
``x`` is (K, B, T, F); member k reads ``x[k]``. A layer's input projection for all T steps is
one product over (K, T·B, F); the recurrence then needs one product per step, over (K, B, H).
Inside, sequences are held time-major, (K, T, B, …), so that each step's slice is one block of
memory for the per-step products.
"""

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from dlbasics.models.stacked_layers import Weights, stack_weights

# One time step of a cell: (input part of the gates, hidden part of the gates, h, c) → (h, c).
# The "gates" are the pre-activations W_i·x_t + b_i and W_h·h_{t−1} + b_h of all gates side by
# side, in torch's order. c is the LSTM's cell state; the other cells pass it along untouched.
Step = Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]

CELL_TYPES = (nn.RNN, nn.LSTM, nn.GRU)


def _tanh_step(gx: Tensor, gh: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """Elman: h_t = tanh(W_ih·x_t + b_ih + W_hh·h_{t−1} + b_hh)."""
    return torch.tanh(gx + gh), c


def _relu_step(gx: Tensor, gh: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """Elman with ``nonlinearity="relu"``: h_t = relu(W_ih·x_t + b_ih + W_hh·h_{t−1} + b_hh)."""
    return torch.relu(gx + gh), c


def _lstm_step(gx: Tensor, gh: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """LSTM, gates in torch's order input, forget, cell, output:
    i, f, o = σ(…), g = tanh(…), c_t = f ⊙ c_{t−1} + i ⊙ g, h_t = o ⊙ tanh(c_t)."""
    i, f, g, o = (gx + gh).chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _gru_step(gx: Tensor, gh: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """GRU, gates in torch's order reset, update, new: r, z = σ(…),
    n = tanh(W_in·x_t + b_in + r ⊙ (W_hn·h_{t−1} + b_hn)), h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}.
    The reset gate scales the hidden part of n, its bias b_hn included, so the two parts of
    the gates are added only for r and z."""
    xr, xz, xn = gx.chunk(3, dim=-1)
    hr, hz, hn = gh.chunk(3, dim=-1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return n + z * (h - n), c  # (1 − z) ⊙ n + z ⊙ h with one product fewer


def _cell_step(module: nn.RNNBase) -> Step:
    """The step function of ``module``'s cell."""
    if isinstance(module, nn.LSTM):
        return _lstm_step
    if isinstance(module, nn.GRU):
        return _gru_step
    return _relu_step if module.nonlinearity == "relu" else _tanh_step


def _settings(module: nn.RNNBase) -> tuple:
    """What must be equal for modules to run as one stacked computation."""
    return (
        type(module),
        getattr(module, "nonlinearity", None),
        module.input_size,
        module.hidden_size,
        module.num_layers,
        module.bidirectional,
        module.dropout,
        module.training,
        module.batch_first,
        module.bias,
        module.proj_size,
    )


def _check(
    modules: Sequence[nn.RNNBase], x: Tensor, generators: Sequence[torch.Generator] | None
) -> None:
    """Refuse modules this function does not compute as torch would, and mismatched inputs."""
    if not modules:
        raise ValueError("stacked_recurrent: no modules given")
    first = modules[0]
    if type(first) not in CELL_TYPES:
        raise ValueError(
            f"stacked_recurrent: modules must be nn.RNN, nn.LSTM or nn.GRU, not "
            f"{type(first).__name__}"
        )
    if not (first.batch_first and first.bias and first.proj_size == 0):
        raise ValueError(
            "stacked_recurrent: modules need batch_first=True, bias=True and proj_size=0"
        )
    if any(_settings(m) != _settings(first) for m in modules[1:]):
        raise ValueError("stacked_recurrent: modules differ in type, sizes, dropout or mode")
    if x.dim() != 4 or x.shape[0] != len(modules) or x.shape[3] != first.input_size:
        raise ValueError(
            f"stacked_recurrent: x must be (K={len(modules)}, batch, time, "
            f"{first.input_size}), not {tuple(x.shape)}"
        )
    if _drops(first) and (generators is None or len(generators) != len(modules)):
        raise ValueError(
            f"stacked_recurrent: dropout needs one generator per member ({len(modules)})"
        )


def _drops(module: nn.RNNBase) -> bool:
    """Whether torch would apply dropout between ``module``'s layers in this call."""
    return module.training and module.dropout > 0 and module.num_layers > 1


def _dropout_masks(
    shape: tuple[int, ...], p: float, generators: Sequence[torch.Generator], like: Tensor
) -> Tensor:
    """Inverted dropout masks, (K, *shape): member k's entries are 0 with probability p and
    1/(1 − p) otherwise, drawn as ``torch.rand(shape, generator=generators[k]) >= p``, so
    a member's masks depend on its own generator only."""
    scale = 1.0 / (1.0 - p) if p < 1 else 0.0  # p = 1 drops everything, as torch does
    keep = [torch.rand(shape, generator=g, device=like.device) >= p for g in generators]
    return torch.stack(keep).to(like.dtype) * scale


def _run_direction(
    gx: Tensor, w_hh: Tensor, b_hh: Tensor, step: Step, reverse: bool
) -> tuple[Tensor, Tensor]:
    """The recurrence of one layer in one direction. ``gx`` (K, T, B, G·H) holds the input
    part of the G gates at every step; ``w_hh`` (K, G·H, H) and ``b_hh`` (K, G·H) are the
    hidden-to-hidden weights and biases. Returns the states (K, T, B, H) and the last one
    (K, B, H): the state after t = T−1, or after t = 0 when reading from the end."""
    k, t, b, _ = gx.shape
    h = gx.new_zeros(k, b, w_hh.shape[2])
    c = h  # the LSTM's cell state starts at zero too
    w_t, bias = w_hh.transpose(1, 2), b_hh.unsqueeze(1)
    inputs = gx.unbind(dim=1)  # one backward for all steps, where indexing would need T
    states: list[Tensor] = [h] * t
    for i in reversed(range(t)) if reverse else range(t):
        h, c = step(inputs[i], torch.baddbmm(bias, h, w_t), h, c)
        states[i] = h
    return torch.stack(states, dim=1), h


def _run_layer(
    modules: Sequence[nn.RNNBase], layer: int, inputs: Tensor, step: Step, weights: Weights
) -> tuple[Tensor, list[Tensor]]:
    """One layer of every member, both directions when bidirectional. ``inputs`` (K, T, B, F)
    → states (K, T, B, D·H) (directions side by side, forward first) and the last state of
    each direction."""
    suffixes = ["", "_reverse"] if modules[0].bidirectional else [""]
    k, t, b, f = inputs.shape
    # The input part of the gates, all steps and directions in one product: (K, T·B, D·G·H).
    w_ih = torch.cat([weights(modules, f"weight_ih_l{layer}{s}") for s in suffixes], dim=1)
    b_ih = torch.cat([weights(modules, f"bias_ih_l{layer}{s}") for s in suffixes], dim=1)
    gx = torch.baddbmm(b_ih.unsqueeze(1), inputs.reshape(k, t * b, f), w_ih.transpose(1, 2))
    gx = gx.view(k, t, b, -1).chunk(len(suffixes), dim=-1)
    states, finals = [], []
    for direction, suffix in enumerate(suffixes):
        w_hh = weights(modules, f"weight_hh_l{layer}{suffix}")
        b_hh = weights(modules, f"bias_hh_l{layer}{suffix}")
        out, last = _run_direction(gx[direction], w_hh, b_hh, step, reverse=direction == 1)
        states.append(out)
        finals.append(last)
    return torch.cat(states, dim=-1), finals


def stacked_recurrent(
    modules: Sequence[nn.RNNBase],
    x: Tensor,
    generators: Sequence[torch.Generator] | None,
    weights: Weights = stack_weights,
) -> tuple[Tensor, Tensor]:
    """Run K recurrent modules of one configuration, member k on ``x[k]``, as one batched
    computation; gradients reach each member's own parameters.

    Parameters
    ----------
    modules : sequence of K nn.RNN, nn.LSTM or nn.GRU
        Equal in type, sizes, ``num_layers``, ``bidirectional``, ``dropout``, nonlinearity
        and train/eval mode; built with ``batch_first=True`` and biases. Their initial states
        are zero, as when a module is called without one.
    x : Tensor
        (K, batch, time, features).
    generators : sequence of K torch.Generator, or None
        Member k's dropout masks between layers are drawn from ``generators[k]`` (on x's
        device), so they differ between members and repeat when the generators are seeded
        alike: for each layer but the last, in order, ``torch.rand((batch, time,
        directions · hidden), generator=generators[k]) >= dropout`` keeps an output, scaled
        by 1/(1 − dropout). Needed only when the modules are in training mode with
        ``dropout`` > 0 and more than one layer; otherwise None will do.
    weights : how to read the members' parameters as (K, …) tensors (stacked_layers.Weights);
        by default their own, stacked.

    Returns
    -------
    states : Tensor
        (K, batch, time, directions · hidden): what each module returns as its output.
    final_h : Tensor
        (K, num_layers · directions, batch, hidden): each module's h_n (for an LSTM the
        hidden state h, not the cell state c), layer by layer, forward before backward.

    Notes
    -----
    Every cell computes, at each step t, the pre-activations of its gates from the input and
    the previous state, W_ih·x_t + b_ih and W_hh·h_{t−1} + b_hh, then:

    - RNN: h_t = tanh (or relu) of their sum;
    - LSTM: gates i, f, g, o; c_t = σ(f) ⊙ c_{t−1} + σ(i) ⊙ tanh(g), h_t = σ(o) ⊙ tanh(c_t);
    - GRU: gates r, z, n; r and z are σ of the sums, n = tanh(x part of n + r ⊙ h part of n)
      (b_hn is in the h part, inside the product), and h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}.

    A layer's inputs are the layer below's states; a backward direction reads the sequence
    from its end, and its states are stored at the steps they belong to.
    """
    _check(modules, x, generators)
    first = modules[0]
    step = _cell_step(first)
    inputs, finals = x.transpose(1, 2), []  # time-major
    for layer in range(first.num_layers):
        if layer > 0 and _drops(first):  # torch drops out every layer's output but the last
            assert generators is not None  # _check made sure
            _, t, b, width = inputs.shape
            masks = _dropout_masks((b, t, width), first.dropout, generators, inputs)
            inputs = inputs * masks.transpose(1, 2)
        inputs, last = _run_layer(modules, layer, inputs, step, weights)
        finals.extend(last)
    return inputs.transpose(1, 2).contiguous(), torch.stack(finals, dim=1)
