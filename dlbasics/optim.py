"""Optimizers (`optim=NAME`) and learning-rate schedules (`schedule=NAME`), docs/concepts.md §6.

Every optimizer is one of torch.optim's own classes, built from the table OPTIMIZERS: its
schema lists exactly the keys that optimizer takes, each passed to the class under the same
name. Checkpoints hold its ordinary ``state_dict``, which loads into a plain torch.optim object.

Where torch documents a fused implementation (one kernel updates every parameter), it is used:
Adam, AdamW and SGD on CPU and CUDA, Adagrad on CPU (its CUDA kernel came in later torch
releases than the oldest we support). The others take the foreach implementation, which
updates all parameters with a few multi-tensor operations instead of a Python loop.
"""

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from dlbasics.schemas.optim import (
    OPTIMIZERS,
    SCHEDULES,
    AdagradConfig,
    AdamConfig,
    AdamWConfig,
    CosineScheduleConfig,
    MomentumConfig,
    NesterovConfig,
    OptimConfig,
    PlateauScheduleConfig,
    RMSpropConfig,
    ScheduleConfig,
    SGDConfig,
    StepScheduleConfig,
)

Params = Iterable[nn.Parameter]
Scheduler = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau

# --- optimizers: each choice's torch.optim class (its schema: dlbasics/schemas/optim.py) -----


@dataclass(frozen=True)
class OptimizerSpec:
    """How `optim=NAME` builds its torch.optim class: the schema's keys are its arguments."""

    cls: type[torch.optim.Optimizer]
    fixed: dict[str, Any]  # arguments the choice itself sets (nesterov=True)
    fused_on: frozenset[str]  # device types with a fused kernel (torch's docs, since 2.4)


CPU_AND_CUDA = frozenset({"cpu", "cuda"})
for _name, _schema, _spec in [
    ("sgd", SGDConfig, OptimizerSpec(torch.optim.SGD, {}, CPU_AND_CUDA)),
    ("momentum", MomentumConfig, OptimizerSpec(torch.optim.SGD, {}, CPU_AND_CUDA)),
    ("nesterov", NesterovConfig, OptimizerSpec(torch.optim.SGD, {"nesterov": True}, CPU_AND_CUDA)),
    ("adagrad", AdagradConfig, OptimizerSpec(torch.optim.Adagrad, {}, frozenset({"cpu"}))),
    ("rmsprop", RMSpropConfig, OptimizerSpec(torch.optim.RMSprop, {}, frozenset())),
    ("adam", AdamConfig, OptimizerSpec(torch.optim.Adam, {}, CPU_AND_CUDA)),
    ("adamw", AdamWConfig, OptimizerSpec(torch.optim.AdamW, {}, CPU_AND_CUDA)),
]:
    OPTIMIZERS.register(_name, _schema)(_spec)


def build_optimizer(
    params: Params, cfg: OptimConfig, device: torch.device
) -> torch.optim.Optimizer:
    """torch.optim's optimizer for ``cfg``, fused where torch has a kernel for ``device``."""
    spec = OPTIMIZERS.get(cfg.name)
    arguments = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name != "name"}
    if "betas" in arguments:
        arguments["betas"] = tuple(arguments["betas"])
    implementation = {"fused": True} if device.type in spec.fused_on else {"foreach": True}
    return spec.cls(params, **arguments, **spec.fixed, **implementation)


# --- learning-rate schedules, stepped once per epoch -------------------------------------------


# name → (optimizer, its config, the fit's epochs, the monitor's mode) → torch's scheduler
lr_scheduler = torch.optim.lr_scheduler
SCHEDULES.register("none", ScheduleConfig)(lambda optimizer, cfg, epochs, mode: None)
SCHEDULES.register("step", StepScheduleConfig)(
    lambda optimizer, cfg, epochs, mode: lr_scheduler.StepLR(optimizer, cfg.step_size, cfg.gamma)
)
SCHEDULES.register("cosine", CosineScheduleConfig)(
    lambda optimizer, cfg, epochs, mode: lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=epochs, eta_min=cfg.min_lr
    )
)
SCHEDULES.register("plateau", PlateauScheduleConfig)(
    lambda optimizer, cfg, epochs, mode: lr_scheduler.ReduceLROnPlateau(
        optimizer, mode=mode, factor=cfg.factor, patience=cfg.patience, min_lr=cfg.min_lr
    )
)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, epochs: int, monitor_mode: str
) -> Scheduler | None:
    """The per-epoch schedule of ``cfg`` over a fit of ``epochs``; ``plateau`` watches the
    early-stopping monitor, which improves in ``monitor_mode`` (min or max)."""
    return SCHEDULES.get(cfg.name)(optimizer, cfg, epochs, monitor_mode)
