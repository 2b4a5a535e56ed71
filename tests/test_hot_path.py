"""The cheaper forms of torch helpers the Trainer calls every step do what torch's do."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import make_config
from dlbasics.data import build_data
from dlbasics.hot_path import ModeSwitch, constant, mean_squared_error, mean_weights, no_grad
from dlbasics.models import build_model


def test_a_constant_is_made_once_per_value_device_and_dtype():
    zero = constant(0, torch.device("cpu"), torch.float32)
    assert zero is constant(0, torch.device("cpu"), torch.float32)
    assert zero.shape == () and zero.item() == 0 and zero.dtype == torch.float32
    assert constant(0, torch.device("cpu"), torch.float64).dtype == torch.float64
    assert constant(1, torch.device("cpu"), torch.float32).item() == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_mean_squared_error_is_torchs_bit_for_bit(dtype):
    generator = torch.Generator().manual_seed(0)
    outputs, targets = (torch.randn(37, 5, generator=generator, dtype=dtype) for _ in range(2))
    error = mean_squared_error(outputs, targets)
    assert error.shape == () and error.dtype == dtype
    assert torch.equal(error, F.mse_loss(outputs, targets))


def test_products_with_the_mean_weights_are_the_means_of_rows():
    rows = torch.randn(10, 64, generator=torch.Generator().manual_seed(0))
    weights = mean_weights(10, rows.device, rows.dtype)
    assert weights is mean_weights(10, torch.device("cpu"), torch.float32)  # made once
    torch.testing.assert_close(rows.T @ weights, rows.mean(dim=0))


def test_no_grad_turns_grad_mode_off_inside_and_restores_it_even_after_an_error():
    weight = torch.ones(2, requires_grad=True)

    @no_grad
    def double(x):
        assert not torch.is_grad_enabled()
        return x * 2

    @no_grad
    def fail():
        raise ValueError("inside")

    assert not double(weight).requires_grad
    assert torch.is_grad_enabled()
    with pytest.raises(ValueError):
        fail()
    assert torch.is_grad_enabled()
    with torch.no_grad():
        double(weight)
        assert not torch.is_grad_enabled()  # left off where it was off


@pytest.mark.parametrize(
    "overrides",
    [("model=mlp", "reg=dropout"), ("model=cnn",), ("model=rnn", "data=seq_digits")],
    ids=["mlp-dropout", "cnn-batchnorm", "rnn"],
)
def test_the_mode_switch_sets_every_module_as_module_train_does(overrides):
    cfg = make_config(*overrides)
    model = build_model(cfg, build_data(cfg.data).spec)
    switch = ModeSwitch(model)
    assert switch.modules is not None  # the direct path: no module overrides train()
    for training in (False, True, False):
        switch(training)
        assert {module.training for module in model.modules()} == {training}


def test_a_module_that_overrides_train_is_switched_by_its_own_train():
    calls = []

    class Frozen(nn.Linear):
        def train(self, mode: bool = True):
            calls.append(mode)
            return super().train(False)  # stays in eval mode, whatever it is told

    model = nn.Sequential(nn.Linear(2, 2), Frozen(2, 2))
    switch = ModeSwitch(model)
    switch(True)
    assert calls == [True]
    assert model[0].training and not model[1].training
