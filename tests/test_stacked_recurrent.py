"""stacked_recurrent computes what K recurrent modules compute one by one: the same outputs,
final states and parameter gradients; its dropout masks come from each member's generator."""

import copy
import itertools

import pytest
import torch
from torch import nn

from dlbasics.models.stacked_recurrent import stacked_recurrent

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
K, BATCH, TIME, FEATURES, HIDDEN = 3, 4, 5, 3, 6


def _members(cell, num_layers=1, bidirectional=False, dropout=0.0, seed=0, **kwargs):
    torch.manual_seed(seed)
    return [
        CELLS[cell](
            FEATURES,
            HIDDEN,
            num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout,
            **kwargs,
        )
        for _ in range(K)
    ]


def _x(seed=1):
    return torch.randn(K, BATCH, TIME, FEATURES, generator=torch.Generator().manual_seed(seed))


def _loss(states, final_h, seed=2):
    """A loss that weighs every output and final state differently, so that a gradient
    reaching the wrong step, direction or member changes some parameter's gradient."""
    g = torch.Generator().manual_seed(seed)
    return (states * torch.randn(states.shape, generator=g)).sum() + (
        final_h * torch.randn(final_h.shape, generator=g)
    ).sum()


def _one_by_one(modules, x):
    """Each module on its own x[k], as torch computes it: (states, final_h) stacked over k."""
    outputs = [module(x[k]) for k, module in enumerate(modules)]
    states = torch.stack([out for out, _ in outputs])
    finals = [final[0] if isinstance(final, tuple) else final for _, final in outputs]
    return states, torch.stack(finals)


def _gradients(modules, states, final_h):
    for module in modules:
        module.zero_grad()
    _loss(states, final_h).backward()
    return [{n: p.grad.clone() for n, p in module.named_parameters()} for module in modules]


def _assert_same(modules, stacked, reference):
    states, final_h = stacked
    expected_states, expected_final = reference
    assert states.shape == expected_states.shape
    assert final_h.shape == expected_final.shape
    torch.testing.assert_close(states, expected_states, rtol=0, atol=1e-5)
    torch.testing.assert_close(final_h, expected_final, rtol=0, atol=1e-5)
    ours = _gradients(modules, states, final_h)
    theirs = _gradients(modules, expected_states, expected_final)
    for mine, torch_s in zip(ours, theirs, strict=True):
        assert mine.keys() == torch_s.keys()
        for name in mine:
            torch.testing.assert_close(mine[name], torch_s[name], rtol=0, atol=1e-5, msg=name)


@pytest.mark.parametrize(
    "cell, num_layers, bidirectional", list(itertools.product(CELLS, (1, 2), (False, True)))
)
def test_matches_the_modules_run_one_by_one(cell, num_layers, bidirectional):
    modules = _members(cell, num_layers, bidirectional)
    x = _x()
    _assert_same(modules, stacked_recurrent(modules, x, None), _one_by_one(modules, x))


def test_relu_elman_network_matches():
    modules = _members("rnn", 2, True, nonlinearity="relu")
    x = _x()
    _assert_same(modules, stacked_recurrent(modules, x, None), _one_by_one(modules, x))


def test_gradient_reaches_the_input():
    modules = _members("gru", 2, True)
    x1, x2 = _x().requires_grad_(), _x().requires_grad_()
    _loss(*stacked_recurrent(modules, x1, None)).backward()
    _loss(*_one_by_one(modules, x2)).backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=0, atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_eval_mode_applies_no_dropout(cell):
    modules = _members(cell, 2, True, dropout=0.5)
    for module in modules:
        module.eval()
    x = _x()
    _assert_same(modules, stacked_recurrent(modules, x, None), _one_by_one(modules, x))


def _layer_by_layer_with_masks(module, x, generator):
    """``module`` on ``x`` as torch computes it, one layer at a time (single-layer modules
    reading its parameters), with dropout masks drawn from ``generator`` by the rule
    stacked_recurrent documents between the layers."""
    suffixes = ["", "_reverse"] if module.bidirectional else [""]
    finals = []
    for layer in range(module.num_layers):
        if layer > 0:
            keep = torch.rand(x.shape, generator=generator) >= module.dropout
            x = x * keep.to(x.dtype) / (1 - module.dropout)
        single = type(module)(
            x.shape[-1], module.hidden_size, batch_first=True, bidirectional=module.bidirectional
        )
        weights = {
            f"{kind}_l0{s}": getattr(module, f"{kind}_l{layer}{s}")
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            for s in suffixes
        }
        x, final = torch.func.functional_call(single, weights, (x,))
        finals.append(final[0] if isinstance(final, tuple) else final)
    return x, torch.cat(finals)


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_between_layers_is_applied_as_torch_applies_it(cell):
    modules = _members(cell, 3, True, dropout=0.4)
    x = _x()
    generators = [torch.Generator().manual_seed(10 + k) for k in range(K)]
    expected = [
        _layer_by_layer_with_masks(module, x[k], torch.Generator().manual_seed(10 + k))
        for k, module in enumerate(modules)
    ]
    reference = tuple(torch.stack(parts) for parts in zip(*expected, strict=True))
    _assert_same(modules, stacked_recurrent(modules, x, generators), reference)


def test_dropout_masks_differ_between_members_and_repeat_from_their_generators():
    one = _members("lstm", 2, dropout=0.5)[0]
    modules = [copy.deepcopy(one) for _ in range(K)]  # equal weights: only the masks differ
    x = _x()[:1].expand(K, -1, -1, -1)  # and equal inputs

    def run(seeds):
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        return stacked_recurrent(modules, x, generators)[0].detach()

    states = run([5, 6, 5])
    assert not torch.allclose(states[0], states[1])  # other generator, other masks
    assert torch.equal(states[0], states[2])  # same seed, same masks
    assert torch.equal(states, run([5, 6, 5]))  # seeded again: the same masks again
    for module in modules:
        module.eval()
    assert torch.equal(run([5, 6, 5])[0], run([7, 8, 9])[0])  # eval: no masks at all


def test_dropout_in_training_needs_one_generator_per_member():
    modules = _members("gru", 2, dropout=0.2)
    with pytest.raises(ValueError, match="one generator per member"):
        stacked_recurrent(modules, _x(), None)
    with pytest.raises(ValueError, match="one generator per member"):
        stacked_recurrent(modules, _x(), [torch.Generator()])


def test_refuses_members_of_different_configurations():
    modules = _members("lstm") + [nn.LSTM(FEATURES, HIDDEN + 1, batch_first=True)]
    with pytest.raises(ValueError, match="modules differ"):
        stacked_recurrent(modules, torch.zeros(K + 1, BATCH, TIME, FEATURES), None)
    not_batch_first = [nn.GRU(FEATURES, HIDDEN) for _ in range(K)]
    with pytest.raises(ValueError, match="batch_first=True"):
        stacked_recurrent(not_batch_first, _x(), None)


def test_refuses_inputs_of_the_wrong_shape():
    modules = _members("rnn")
    with pytest.raises(ValueError, match=r"x must be \(K=3"):
        stacked_recurrent(modules, torch.zeros(K - 1, BATCH, TIME, FEATURES), None)
    with pytest.raises(ValueError, match=r"x must be \(K=3"):
        stacked_recurrent(modules, torch.zeros(K, BATCH, TIME, FEATURES + 1), None)
