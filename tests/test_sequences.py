"""The sequence data sets: seq_digits, sine and adding hold what their docstrings promise."""

import pytest
import torch

from conftest import make_config
from dlbasics.data import build_data


def _data(*overrides):
    return build_data(make_config(*overrides).data)


def _all(data, part):
    return torch.cat([getattr(data, f"{part}_{split}") for split in ("train", "val", "test")])


def test_seq_digits_are_the_digit_images_read_row_by_row():
    images = _data("data=digits", "data.standardize=false")
    rows = _data("data=seq_digits", "data.standardize=false")
    assert images.spec.input_shape == (1, 8, 8)
    assert rows.spec.input_shape == (8, 8)  # 8 time steps of 8 pixels
    assert torch.equal(rows.x_train, images.x_train[:, 0])
    assert torch.equal(rows.y_test, images.y_test)
    assert rows.spec.n_classes == 10


def test_adding_marks_one_step_in_each_half_and_targets_their_sum():
    data = _data("data=adding", "data.length=20", "data.n_samples=300")
    x, y = _all(data, "x"), _all(data, "y")
    assert data.spec.input_shape == (20, 2) and data.spec.task == "regression"
    values, marks = x[..., 0], x[..., 1]
    assert torch.all((values >= 0) & (values < 1))
    assert torch.all(marks[:, :10].sum(dim=1) == 1) and torch.all(marks[:, 10:].sum(dim=1) == 1)
    assert torch.allclose(y[:, 0], (values * marks).sum(dim=1))


def test_adding_mean_prediction_scores_about_one_sixth():
    y = _data("data=adding").y_test
    assert y.var(unbiased=False).item() == pytest.approx(1 / 6, abs=0.015)


def test_sine_target_is_the_next_noise_free_value():
    one = _data("data=sine", "data.noise=0", "data.length=15")
    many = _data("data=sine", "data.noise=0", "data.length=15", "data.many_to_many=true")
    assert one.spec.input_shape == many.spec.input_shape == (15, 1)
    assert (one.spec.per_step, many.spec.per_step) == (False, True)
    assert one.y_train.shape[1:] == (1,) and many.y_train.shape[1:] == (15, 1)
    # Step t's target is the value observed at step t + 1; the last is the one after the window.
    assert torch.allclose(many.y_train[:, :-1], many.x_train[:, 1:], atol=1e-6)
    assert torch.equal(many.y_train[:, -1], one.y_train)


def test_sine_noise_is_on_the_inputs_only():
    clean = _data("data=sine", "data.noise=0", "data.many_to_many=true")
    noisy = _data("data=sine", "data.noise=0.5", "data.many_to_many=true")
    assert torch.equal(clean.y_train, noisy.y_train)
    assert (noisy.x_train - clean.x_train).std().item() == pytest.approx(0.5, rel=0.05)


def test_sequence_data_follow_the_seed():
    first, again = _data("data=adding", "seed=3"), _data("data=adding", "seed=3")
    other = _data("data=adding", "seed=4")
    assert torch.equal(first.x_train, again.x_train)
    assert not torch.equal(first.x_train, other.x_train)
