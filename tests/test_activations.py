"""Activation functions, including the worked softmax example of docs/concepts.md §4."""

import pytest
import torch

from dlbasics.activations import (
    HIDDEN_ACTIVATIONS,
    LeakyReLUConfig,
    hidden_activation,
    softmax,
    step,
)


def test_softmax_reproduces_the_worked_example():
    result = softmax(torch.tensor([0.3, 2.9, 4.0], dtype=torch.float64))
    expected = torch.tensor([0.01821127, 0.24519181, 0.73659691], dtype=torch.float64)
    assert torch.allclose(result, expected, atol=1e-8)


def test_softmax_of_large_inputs_does_not_overflow():
    result = softmax(torch.tensor([1010.0, 1000.0, 990.0]))
    assert torch.isfinite(result).all()
    assert result.sum().item() == pytest.approx(1.0)
    assert result.argmax().item() == 0


def test_step_is_one_above_zero_and_has_no_gradient():
    x = torch.tensor([-1.0, 0.0, 0.5], requires_grad=True)
    y = step(x)
    assert y.tolist() == [0.0, 0.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]


def test_only_leaky_relu_takes_a_setting():
    takes = {name: HIDDEN_ACTIVATIONS.schemas()[name] for name in HIDDEN_ACTIVATIONS.names()}
    assert HIDDEN_ACTIVATIONS.choices_with_key("negative_slope") == ["leaky_relu"]
    assert takes["leaky_relu"] is LeakyReLUConfig


@pytest.mark.parametrize(
    "name, expected",
    [
        ("sigmoid", [0.11920292, 0.5, 0.88079708]),
        ("tanh", [-0.96402758, 0.0, 0.96402758]),
        ("relu", [0.0, 0.0, 2.0]),
        ("leaky_relu", [-0.02, 0.0, 2.0]),
        ("identity", [-2.0, 0.0, 2.0]),
        ("gelu", [-0.04550026, 0.0, 1.95449974]),
    ],
)
def test_activation_values(name, expected):
    module = hidden_activation(HIDDEN_ACTIVATIONS.schemas()[name](name=name))
    result = module(torch.tensor([-2.0, 0.0, 2.0], dtype=torch.float64))
    assert torch.allclose(result, torch.tensor(expected, dtype=torch.float64), atol=1e-6)


def test_leaky_relu_slope_is_configurable():
    module = hidden_activation(LeakyReLUConfig(negative_slope=0.001))
    assert module(torch.tensor([-10.0])).item() == pytest.approx(-0.01)
