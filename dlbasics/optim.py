"""Optimizers (`optim=NAME`) and learning-rate schedules (`optim.schedule=NAME`).

Each optimizer updates all parameters in one fused kernel where PyTorch has one (SGD, Adagrad,
Adam, AdamW, on CPU and CUDA), else with its foreach implementation (RMSprop). PyTorch's CPU
default loops over the parameters in Python: on the digits MLP an Adam step took 0.7 ms that
way and 0.19 ms fused, more than the forward and backward passes together.
"""

from collections.abc import Callable, Iterable

import torch
from torch import nn

from dlbasics.config import OptimConfig
from dlbasics.registry import Registry

Params = Iterable[nn.Parameter]
FUSED = {"fused": True}  # one kernel for every parameter's update
FOREACH = {"foreach": True}  # one call per operation for all parameters, for those without
OPTIMIZERS: Registry[Callable[[Params, OptimConfig], torch.optim.Optimizer]] = Registry("optim")


@OPTIMIZERS.register("sgd")
def _sgd(params: Params, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Plain gradient descent: w ← w − lr·g."""
    return torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **FUSED)


@OPTIMIZERS.register("momentum")
def _momentum(params: Params, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Heavy ball: a velocity v ← μ·v + g accumulates past gradients; w ← w − lr·v."""
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **FUSED
    )


@OPTIMIZERS.register("nesterov")
def _nesterov(params: Params, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Momentum that looks ahead: the gradient is taken where the velocity is about to go."""
    return torch.optim.SGD(
        params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=True,
        weight_decay=cfg.weight_decay,
        **FUSED,
    )


@OPTIMIZERS.register("adagrad")
def _adagrad(params: Params, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Per-weight steps shrink with the sum of that weight's squared gradients."""
    return torch.optim.Adagrad(
        params, lr=cfg.lr, eps=cfg.eps, weight_decay=cfg.weight_decay, **FUSED
    )


@OPTIMIZERS.register("rmsprop")
def _rmsprop(params: Params, cfg: OptimConfig) -> torch.optim.Optimizer:
    """AdaGrad with a moving average (alpha) of squared gradients instead of their sum."""
    return torch.optim.RMSprop(
        params,
        lr=cfg.lr,
        alpha=cfg.alpha,
        eps=cfg.eps,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        **FOREACH,
    )


@OPTIMIZERS.register("adam")
def _adam(params: Params, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Momentum (beta1) and RMSprop scaling (beta2), with bias correction."""
    return torch.optim.Adam(
        params,
        lr=cfg.lr,
        betas=tuple(cfg.betas),
        eps=cfg.eps,
        weight_decay=cfg.weight_decay,
        **FUSED,
    )


@OPTIMIZERS.register("adamw")
def _adamw(params: Params, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Adam with weight decay applied to the weights directly, not through the gradient."""
    return torch.optim.AdamW(
        params,
        lr=cfg.lr,
        betas=tuple(cfg.betas),
        eps=cfg.eps,
        weight_decay=cfg.weight_decay,
        **FUSED,
    )


def build_optimizer(params: Params, cfg: OptimConfig) -> torch.optim.Optimizer:
    return OPTIMIZERS.get(cfg.name)(params, cfg)


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, epochs: int, monitor_mode: str
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    """The per-epoch schedule; ``plateau`` watches the early-stopping monitor."""
    sched = torch.optim.lr_scheduler
    if cfg.schedule == "step":
        return sched.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.schedule == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=cfg.min_lr)
    if cfg.schedule == "plateau":
        return sched.ReduceLROnPlateau(
            optimizer,
            mode=monitor_mode,
            factor=cfg.plateau_factor,
            patience=cfg.plateau_patience,
            min_lr=cfg.min_lr,
        )
    return None
