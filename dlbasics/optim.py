"""Optimizers (`optim=NAME`) and learning-rate schedules (`optim.schedule=NAME`).

Each optimizer is PyTorch's (same hyper-parameters, same state, same state_dict: checkpoints
load into either) with a leaner ``step``. PyTorch's CPU default loops over the parameters in
Python; its fused implementation updates them all in one kernel (SGD, Adagrad, Adam, AdamW) but
still spends most of a small model's step in Python around that kernel: regrouping every tensor
by device and dtype, a profiler label, the torch.compile guards. Our ``step`` gathers the lists
and calls the same kernel (for RMSprop, which has none, the same foreach operations), so the
numbers are PyTorch's to the last bit (tests/test_optim.py). On the digits MLP, one Adam step
took 108 µs through torch.optim's fused step, 43 µs here; the Python loop took 0.3–0.7 ms.

It also keeps torch._dynamo out of a run: torch.optim.Optimizer wraps ``add_param_group``,
``zero_grad``, ``state_dict``, ``load_state_dict`` and ``step`` in guards against torch.compile
that import torch._dynamo on their first call, 1.5–3 s of start-up on a 2-core CPU. We call the
methods inside the guards: dlbasics compiles models (``trainer.compile``), never an optimizer.
Step hooks (``register_step_pre_hook``) are not run and the profiler sees no "Optimizer.step"
label; dlbasics uses neither.
"""

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from dlbasics.config import OptimConfig
from dlbasics.hot_path import constant, no_grad
from dlbasics.registry import Registry

Params = Iterable[nn.Parameter]
Optimizer = torch.optim.Optimizer


def _unguarded(method: Callable) -> Callable:
    """An Optimizer method without the torch.compile guard around it (functools.wraps keeps
    the method inside as ``__wrapped__``)."""
    return getattr(method, "__wrapped__", method)


class LeanStep:
    """Mixed into a torch.optim class: ``step`` gathers the parameters that have gradients and
    their state, then calls ``_update(group, params, grads, grad_scale, found_inf)``, which the
    optimizer defines with the kernel of PyTorch's fused (or foreach) implementation."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        _unguarded(Optimizer.add_param_group)(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        if not set_to_none:
            return _unguarded(Optimizer.zero_grad)(self, set_to_none)
        for group in self.param_groups:  # (torch.optim wraps this in a profiler label)
            for p in group["params"]:
                p.grad = None

    def state_dict(self) -> dict[str, Any]:
        return _unguarded(Optimizer.state_dict)(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        _unguarded(Optimizer.load_state_dict)(self, state_dict)

    @no_grad
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # Set by torch.amp.GradScaler.step for optimizers whose kernel unscales the gradients
        # and skips the update when they hold inf/NaN (trainer.precision=16-mixed).
        grad_scale = getattr(self, "grad_scale", None)
        found_inf = getattr(self, "found_inf", None)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                grads = [p.grad for p in params]
                self._update(group, params, grads, grad_scale, found_inf)
        return loss

    step.hooked = True  # tells Optimizer not to wrap it in a profiler label and step hooks

    def _update(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        grad_scale: Tensor | None,
        found_inf: Tensor | None,
    ) -> None:
        raise NotImplementedError


def _scalar_dtype() -> torch.dtype:
    """The dtype of the step counters of PyTorch's unfused optimizers."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _add_one(steps: list[Tensor]) -> None:
    """Add 1 to every step counter. Given the number 1, the foreach kernel wraps it into a new
    tensor for each counter on the CPU: 28 µs a step for an MLP's six counters, 10 µs given
    a tensor of 1 for each."""
    torch._foreach_add_(steps, [constant(1, steps[0].device, steps[0].dtype)] * len(steps))


def _count_step(steps: list[Tensor], found_inf: Tensor | None) -> None:
    """Step counters (bias corrections, decays) count a step skipped for inf/NaN as not taken,
    as PyTorch's fused implementations do."""
    if found_inf is not None:
        torch._foreach_sub_(steps, [found_inf] * len(steps))


class SGD(LeanStep, torch.optim.SGD):
    def _update(self, group, params, grads, grad_scale, found_inf) -> None:
        momentum = group["momentum"]
        buffers: list[Tensor] = []
        first_step = False
        if momentum != 0:
            states = [self.state[p] for p in params]
            first_step = all(state.get("momentum_buffer") is None for state in states)
            if first_step:  # the kernel starts each buffer at the gradient
                for state, grad in zip(states, grads, strict=True):
                    state["momentum_buffer"] = torch.empty_like(grad)
            buffers = [state["momentum_buffer"] for state in states]
        torch._fused_sgd_(
            params,
            grads,
            buffers,
            weight_decay=group["weight_decay"],
            momentum=momentum,
            lr=group["lr"],
            dampening=group["dampening"],
            nesterov=group["nesterov"],
            maximize=group["maximize"],
            is_first_step=first_step,
            grad_scale=grad_scale,
            found_inf=found_inf,
        )


class Adagrad(LeanStep, torch.optim.Adagrad):  # its state is made in __init__
    def _update(self, group, params, grads, grad_scale, found_inf) -> None:
        states = [self.state[p] for p in params]
        steps = [state["step"] for state in states]
        _add_one(steps)
        torch._fused_adagrad_(
            params,
            grads,
            [state["sum"] for state in states],
            steps,
            lr=group["lr"],
            lr_decay=group["lr_decay"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
            grad_scale=grad_scale,
            found_inf=found_inf,
        )
        _count_step(steps, found_inf)


class Adam(LeanStep, torch.optim.Adam):
    kernel = staticmethod(torch._fused_adam_)

    def _update(self, group, params, grads, grad_scale, found_inf) -> None:
        states = [self.state[p] for p in params]
        for state, p in zip(states, params, strict=True):
            if not state:  # as torch.optim.Adam(fused=True) makes it
                state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        steps = [state["step"] for state in states]
        _add_one(steps)
        beta1, beta2 = group["betas"]
        self.kernel(
            params,
            grads,
            [state["exp_avg"] for state in states],
            [state["exp_avg_sq"] for state in states],
            [],  # amsgrad's maxima: not used
            steps,
            amsgrad=False,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
            grad_scale=grad_scale,
            found_inf=found_inf,
        )
        _count_step(steps, found_inf)


class AdamW(LeanStep, torch.optim.AdamW):
    kernel = staticmethod(torch._fused_adamw_)
    _update = Adam._update


class RMSprop(LeanStep, torch.optim.RMSprop):
    """No fused kernel: the foreach operations of PyTorch's implementation (not centered)."""

    def _update(self, group, params, grads, grad_scale, found_inf) -> None:
        momentum, alpha = group["momentum"], group["alpha"]
        states = [self.state[p] for p in params]
        for state, p in zip(states, params, strict=True):
            if not state:  # as torch.optim.RMSprop makes it
                state["step"] = torch.zeros((), dtype=_scalar_dtype())
                state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if momentum > 0:
                    state["momentum_buffer"] = torch.zeros_like(
                        p, memory_format=torch.preserve_format
                    )
        _add_one([state["step"] for state in states])
        if group["weight_decay"] != 0:
            grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
        square_avgs = [state["square_avg"] for state in states]
        torch._foreach_mul_(square_avgs, alpha)
        torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - alpha)
        avg = torch._foreach_sqrt(square_avgs)
        torch._foreach_add_(avg, group["eps"])
        if momentum > 0:
            buffers = [state["momentum_buffer"] for state in states]
            torch._foreach_mul_(buffers, momentum)
            torch._foreach_addcdiv_(buffers, grads, avg)
            torch._foreach_add_(params, buffers, alpha=-group["lr"])
        else:
            torch._foreach_addcdiv_(params, grads, avg, value=-group["lr"])


OPTIMIZERS: Registry[Callable[[Params, OptimConfig], Optimizer]] = Registry("optim")
FUSED = {"fused": True}  # the options whose state the kernels above expect


@OPTIMIZERS.register("sgd")
def _sgd(params: Params, cfg: OptimConfig) -> Optimizer:
    """Plain gradient descent: w ← w − lr·g."""
    return SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **FUSED)


@OPTIMIZERS.register("momentum")
def _momentum(params: Params, cfg: OptimConfig) -> Optimizer:
    """Heavy ball: a velocity v ← μ·v + g accumulates past gradients; w ← w − lr·v."""
    return SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **FUSED)


@OPTIMIZERS.register("nesterov")
def _nesterov(params: Params, cfg: OptimConfig) -> Optimizer:
    """Momentum that looks ahead: the gradient is taken where the velocity is about to go."""
    return SGD(
        params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=True,
        weight_decay=cfg.weight_decay,
        **FUSED,
    )


@OPTIMIZERS.register("adagrad")
def _adagrad(params: Params, cfg: OptimConfig) -> Optimizer:
    """Per-weight steps shrink with the sum of that weight's squared gradients."""
    return Adagrad(params, lr=cfg.lr, eps=cfg.eps, weight_decay=cfg.weight_decay, **FUSED)


@OPTIMIZERS.register("rmsprop")
def _rmsprop(params: Params, cfg: OptimConfig) -> Optimizer:
    """AdaGrad with a moving average (alpha) of squared gradients instead of their sum."""
    return RMSprop(
        params,
        lr=cfg.lr,
        alpha=cfg.alpha,
        eps=cfg.eps,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        foreach=True,
    )


@OPTIMIZERS.register("adam")
def _adam(params: Params, cfg: OptimConfig) -> Optimizer:
    """Momentum (beta1) and RMSprop scaling (beta2), with bias correction."""
    return Adam(
        params,
        lr=cfg.lr,
        betas=tuple(cfg.betas),
        eps=cfg.eps,
        weight_decay=cfg.weight_decay,
        **FUSED,
    )


@OPTIMIZERS.register("adamw")
def _adamw(params: Params, cfg: OptimConfig) -> Optimizer:
    """Adam with weight decay applied to the weights directly, not through the gradient."""
    return AdamW(
        params,
        lr=cfg.lr,
        betas=tuple(cfg.betas),
        eps=cfg.eps,
        weight_decay=cfg.weight_decay,
        **FUSED,
    )


def build_optimizer(params: Params, cfg: OptimConfig) -> Optimizer:
    return OPTIMIZERS.get(cfg.name)(params, cfg)


def build_scheduler(
    optimizer: Optimizer, cfg: OptimConfig, epochs: int, monitor_mode: str
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
