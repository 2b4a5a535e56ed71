"""dlbasics' optimizers are PyTorch's with a leaner step: the same numbers to the last bit, the
same state dicts, and no import of torch._dynamo (dlbasics/optim.py)."""

import subprocess
import sys

import pytest
import torch
from torch import nn

from conftest import ROOT, make_config
from dlbasics.optim import OPTIMIZERS, build_optimizer, build_scheduler

# Each optimizer with every option that changes its update switched on.
SETTINGS = {
    "sgd": ["optim.weight_decay=0.01"],
    "momentum": ["optim.weight_decay=0.01"],
    "nesterov": [],
    "adagrad": ["optim.weight_decay=0.01"],
    "rmsprop": ["optim.weight_decay=0.01", "optim.momentum=0.9"],
    "adam": ["optim.weight_decay=0.01"],
    "adamw": [],
}
# PyTorch's implementation that each of ours reproduces.
IMPLEMENTATION = {"rmsprop": {"foreach": True}}
NOT_OPTIONS = ("fused", "foreach", "decoupled_weight_decay")  # set by the class itself


def torch_twin(ours: torch.optim.Optimizer, params) -> torch.optim.Optimizer:
    """The torch.optim optimizer ours derives from, with the same settings."""
    torch_class = next(c for c in type(ours).__mro__ if c.__module__.startswith("torch.optim"))
    options = {k: v for k, v in ours.defaults.items() if k not in NOT_OPTIONS}
    implementation = IMPLEMENTATION.get(type(ours).__name__.lower(), {"fused": True})
    return torch_class(params, **options, **implementation)


Pair = tuple[nn.Module, torch.optim.Optimizer]


def twins(*overrides: str) -> tuple[Pair, Pair]:
    """Two copies of one small network: one with dlbasics' optimizer for ``overrides``, one
    with PyTorch's."""
    torch.manual_seed(0)
    ours_model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    their_model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    their_model.load_state_dict(ours_model.state_dict())
    ours = build_optimizer(ours_model.parameters(), make_config(*overrides).optim)
    return (ours_model, ours), (their_model, torch_twin(ours, their_model.parameters()))


def assert_same_weights(ours: nn.Module, theirs: nn.Module) -> None:
    for mine, their in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(mine, their)


def train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> None:
    torch.manual_seed(1)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        model(torch.randn(16, 5)).square().mean().backward()
        optimizer.step()


def assert_same_state(ours: dict, theirs: dict) -> None:
    assert ours["param_groups"] == theirs["param_groups"]
    assert ours["state"].keys() == theirs["state"].keys()
    for index, state in theirs["state"].items():
        assert ours["state"][index].keys() == state.keys()
        for key, value in state.items():
            mine = ours["state"][index][key]
            assert mine.dtype == value.dtype and mine.device == value.device, key
            assert torch.equal(mine, value), key


@pytest.mark.parametrize("name", SETTINGS)
def test_each_optimizer_computes_what_pytorchs_computes_bit_for_bit(name):
    (ours_model, ours), (their_model, theirs) = twins(
        f"optim={name}", "optim.lr=0.05", *SETTINGS[name]
    )
    train_steps(ours_model, ours, 6)
    train_steps(their_model, theirs, 6)
    assert_same_weights(ours_model, their_model)
    assert_same_state(ours.state_dict(), theirs.state_dict())


@pytest.mark.parametrize("name", SETTINGS)
def test_state_dicts_load_both_ways_and_training_goes_on_alike(name):
    # A checkpoint written with torch.optim continues with dlbasics' optimizer, and back.
    (ours_model, ours), (their_model, theirs) = twins(
        f"optim={name}", "optim.lr=0.05", *SETTINGS[name]
    )
    train_steps(their_model, theirs, 3)
    ours_model.load_state_dict(their_model.state_dict())
    ours.load_state_dict(theirs.state_dict())
    train_steps(ours_model, ours, 3)
    train_steps(their_model, theirs, 3)
    assert_same_state(ours.state_dict(), theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())
    assert_same_state(theirs.state_dict(), ours.state_dict())


@pytest.mark.parametrize("name", ["sgd", "momentum", "adagrad", "adam", "adamw"])
def test_a_grad_scaler_step_with_inf_gradients_changes_nothing_as_in_pytorch(name):
    # trainer.precision=16-mixed: GradScaler hands the fused kernels the scale and an inf flag.
    (ours_model, ours), (their_model, theirs) = twins(f"optim={name}", "optim.lr=0.05")
    for model, optimizer in ((ours_model, ours), (their_model, theirs)):
        scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
        for poisoned in (False, True, False):
            optimizer.zero_grad(set_to_none=True)
            loss = model(torch.ones(4, 5)).square().mean()
            scaler.scale(loss * (torch.inf if poisoned else 1.0)).backward()
            scaler.step(optimizer)
            scaler.update()
    assert_same_weights(ours_model, their_model)
    assert_same_state(ours.state_dict(), theirs.state_dict())
    steps = [s["step"] for s in ours.state_dict()["state"].values() if "step" in s]
    assert all(step.item() == 2 for step in steps)  # the skipped step is not counted


def test_schedules_change_the_learning_rate_of_our_optimizers():
    cfg = make_config("optim=momentum", "optim.schedule=step", "optim.step_size=1")
    model = nn.Linear(3, 2)
    optimizer = build_optimizer(model.parameters(), cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, epochs=5, monitor_mode="min")
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(cfg.optim.lr * cfg.optim.gamma)


def test_training_never_imports_torch_dynamo(tmp_path):
    # Its import takes 1.5-3 s of start-up; torch.optim's own methods import it on first use.
    probe = f"""
import sys
from pathlib import Path
sys.path.insert(0, {str(ROOT)!r})
import torch
from dlbasics.optim import OPTIMIZERS, build_optimizer
from dlbasics.run import train
from conftest import make_config
for name in OPTIMIZERS.names():
    model = torch.nn.Linear(3, 2)
    optimizer = build_optimizer(model.parameters(), make_config(f"optim={{name}}").optim)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    optimizer.zero_grad()
    optimizer.load_state_dict(optimizer.state_dict())
# A whole run as make train does it, with a schedule: TensorBoard, checkpoints, the test.
run = make_config("trainer.epochs=2", "optim.schedule=plateau")
train(run, Path({str(tmp_path)!r}), progress=False)
print("torch._dynamo" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT / "tests",
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False", done.stderr


def test_every_optimizer_is_covered_here():
    assert set(SETTINGS) == set(OPTIMIZERS.names())
