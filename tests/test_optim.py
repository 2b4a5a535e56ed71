"""Optimizers are torch.optim's own classes, built by name from one table, fused where torch
has a kernel for the device; checkpoints hold their plain state dicts (dlbasics/optim.py)."""

from dataclasses import fields

import pytest
import torch
from torch import nn

from conftest import make_config
from dlbasics.optim import OPTIMIZERS, build_optimizer, build_scheduler

CPU = torch.device("cpu")
# optim=NAME → torch's class, the arguments the choice sets itself, and the implementation.
EXPECTED = {
    "sgd": (torch.optim.SGD, {"momentum": 0, "nesterov": False}, "fused"),
    "momentum": (torch.optim.SGD, {"momentum": 0.9, "nesterov": False}, "fused"),
    "nesterov": (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}, "fused"),
    "adagrad": (torch.optim.Adagrad, {}, "fused"),
    "rmsprop": (torch.optim.RMSprop, {"momentum": 0.0}, "foreach"),
    "adam": (torch.optim.Adam, {"betas": (0.9, 0.999)}, "fused"),
    "adamw": (torch.optim.AdamW, {"weight_decay": 0.01}, "fused"),
}


def network() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))


def train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> None:
    torch.manual_seed(1)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        model(torch.randn(16, 5)).square().mean().backward()
        optimizer.step()


def test_every_optimizer_is_covered_here():
    assert set(EXPECTED) == set(OPTIMIZERS.names())


@pytest.mark.parametrize("name", EXPECTED)
def test_each_choice_builds_torchs_own_class_with_the_keys_of_its_schema(name):
    cfg = make_config(f"optim={name}", "optim.lr=0.05").optim
    optimizer = build_optimizer(network().parameters(), cfg, CPU)
    torch_class, fixed, implementation = EXPECTED[name]
    assert type(optimizer) is torch_class
    group = optimizer.param_groups[0]
    for key in (f.name for f in fields(cfg) if f.name != "name"):
        expected = getattr(cfg, key)
        assert group[key] == (tuple(expected) if key == "betas" else expected), key
    for key, value in fixed.items():
        assert group[key] == value, key
    assert group[implementation] is True
    other = "foreach" if implementation == "fused" else "fused"
    assert not group.get(other)


@pytest.mark.parametrize("name", EXPECTED)
def test_a_checkpointed_state_dict_loads_into_a_plain_torch_optimizer(name):
    # The default implementation of torch's class (no fused or foreach option) takes the state
    # of ours and goes on from it.
    cfg = make_config(f"optim={name}", "optim.lr=0.05").optim
    ours_model = network()
    ours = build_optimizer(ours_model.parameters(), cfg, CPU)
    train_steps(ours_model, ours, 3)
    plain_model = network()
    plain_model.load_state_dict(ours_model.state_dict())
    torch_class, _, _ = EXPECTED[name]
    plain = torch_class(plain_model.parameters(), lr=1.0)
    plain.load_state_dict(ours.state_dict())
    assert plain.param_groups[0]["lr"] == 0.05
    loaded = plain.state_dict()["state"]
    for index, state in ours.state_dict()["state"].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(loaded[index][key]), torch.as_tensor(value)), key
    train_steps(plain_model, plain, 2)  # and it trains on
    assert all(torch.isfinite(p).all() for p in plain_model.parameters())


@pytest.mark.parametrize("name", EXPECTED)
def test_a_grad_scaler_step_with_inf_gradients_changes_nothing(name):
    # trainer.precision=16-mixed: GradScaler skips a step whose gradients hold inf, fused or not.
    model = network()
    optimizer = build_optimizer(model.parameters(), make_config(f"optim={name}").optim, CPU)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(model(torch.ones(4, 5)).square().mean() * torch.inf).backward()
    scaler.step(optimizer)
    scaler.update()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert scaler.get_scale() < 1024.0  # and the scale came down


def test_schedules_are_torchs_and_change_the_learning_rate():
    cfg = make_config("optim=momentum", "schedule=step", "schedule.step_size=1")
    model = nn.Linear(3, 2)
    optimizer = build_optimizer(model.parameters(), cfg.optim, CPU)
    scheduler = build_scheduler(optimizer, cfg.schedule, epochs=5, monitor_mode="min")
    assert isinstance(scheduler, torch.optim.lr_scheduler.StepLR)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(cfg.optim.lr * cfg.schedule.gamma)
    assert build_scheduler(optimizer, make_config().schedule, 5, "min") is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", EXPECTED)
def test_on_cuda_each_optimizer_builds_with_the_implementation_of_the_table(name):
    cuda = torch.device("cuda")
    cfg = make_config(f"optim={name}").optim
    model = network().to(cuda)
    optimizer = build_optimizer(model.parameters(), cfg, cuda)
    train_steps_on = optimizer.param_groups[0]
    assert train_steps_on["fused" if "cuda" in OPTIMIZERS.get(name).fused_on else "foreach"]
    model(torch.ones(4, 5, device=cuda)).square().mean().backward()
    optimizer.step()
