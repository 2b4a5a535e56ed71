"""The schemas of dlbasics/optim.py: the keys of each optimizer (`optim=NAME`), each exactly
the arguments of its torch.optim class, and of each learning-rate schedule (`schedule=NAME`)."""

import math
from dataclasses import dataclass, field

from omegaconf import MISSING

from dlbasics.registry import Registry
from dlbasics.schema import check

# --- optimizers: one schema per choice, holding the keys that optimizer takes ---------------


@dataclass
class OptimConfig:
    """The keys every optimizer takes."""

    name: str = MISSING
    lr: float = 1e-3  # the learning rate
    weight_decay: float = 0.0  # L2 added to the gradient (decoupled from it for adamw)

    def __post_init__(self) -> None:
        check(0 < self.lr < math.inf, "optim.lr", self.lr, "a learning rate > 0, and finite")
        check(self.weight_decay >= 0, "optim.weight_decay", self.weight_decay, "must be >= 0")


@dataclass
class SGDConfig(OptimConfig):
    """Plain gradient descent: w ← w − lr·g."""

    name: str = "sgd"
    lr: float = 0.1


@dataclass
class MomentumConfig(OptimConfig):
    """Heavy ball: a velocity v ← μ·v + g accumulates past gradients; w ← w − lr·v."""

    name: str = "momentum"
    lr: float = 0.05
    momentum: float = 0.9  # μ: how much of the previous velocity is kept

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0 <= self.momentum < 1, "optim.momentum", self.momentum, "must be in [0, 1)")


@dataclass
class NesterovConfig(MomentumConfig):
    """Momentum that looks ahead: the gradient is taken where the velocity is about to go."""

    name: str = "nesterov"


@dataclass
class AdagradConfig(OptimConfig):
    """Per-weight steps shrink with the sum of that weight's squared gradients."""

    name: str = "adagrad"
    lr: float = 0.05
    eps: float = 1e-10  # added to the denominator for stability

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.eps > 0, "optim.eps", self.eps, "must be > 0")


@dataclass
class RMSpropConfig(OptimConfig):
    """AdaGrad with a moving average (alpha) of squared gradients instead of their sum."""

    name: str = "rmsprop"
    lr: float = 1e-3
    eps: float = 1e-8
    alpha: float = 0.99  # smoothing constant of the squared-gradient average
    momentum: float = 0.0  # optional momentum on top

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.eps > 0, "optim.eps", self.eps, "must be > 0")
        check(0 <= self.alpha < 1, "optim.alpha", self.alpha, "must be in [0, 1)")
        check(0 <= self.momentum < 1, "optim.momentum", self.momentum, "must be in [0, 1)")


@dataclass
class AdamConfig(OptimConfig):
    """Momentum (beta1) and RMSprop scaling (beta2), with bias correction."""

    name: str = "adam"
    lr: float = 1e-3
    eps: float = 1e-8
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # the two averages' decay

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.eps > 0, "optim.eps", self.eps, "must be > 0")
        ok = len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas)
        check(ok, "optim.betas", list(self.betas), "two numbers in [0, 1)")


@dataclass
class AdamWConfig(AdamConfig):
    """Adam with weight decay applied to the weights directly, not through the gradient."""

    name: str = "adamw"
    weight_decay: float = 0.01


# name → how dlbasics/optim.py builds its torch.optim class (OptimizerSpec)
OPTIMIZERS: Registry = Registry(
    "optim",
    {
        "sgd": SGDConfig,
        "momentum": MomentumConfig,
        "nesterov": NesterovConfig,
        "adagrad": AdagradConfig,
        "rmsprop": RMSpropConfig,
        "adam": AdamConfig,
        "adamw": AdamWConfig,
    },
    builders="dlbasics.optim",
)

# --- learning-rate schedules, stepped once per epoch -------------------------------------------


@dataclass
class ScheduleConfig:
    """No schedule: the learning rate stays at optim.lr."""

    name: str = "none"


@dataclass
class StepScheduleConfig(ScheduleConfig):
    """lr × gamma every step_size epochs."""

    name: str = "step"
    step_size: int = 30  # epochs between decays
    gamma: float = 0.1  # lr multiplier at each decay

    def __post_init__(self) -> None:
        check(self.step_size >= 1, "schedule.step_size", self.step_size, "must be >= 1")
        check(0 < self.gamma <= 1, "schedule.gamma", self.gamma, "must be in (0, 1]")


@dataclass
class CosineScheduleConfig(ScheduleConfig):
    """lr falls along half a cosine, from optim.lr to min_lr at the last epoch."""

    name: str = "cosine"
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        check(self.min_lr >= 0, "schedule.min_lr", self.min_lr, "must be >= 0")


@dataclass
class PlateauScheduleConfig(ScheduleConfig):
    """lr × factor when the early-stopping monitor has not improved for ``patience`` epochs."""

    name: str = "plateau"
    factor: float = 0.5
    patience: int = 5
    min_lr: float = 0.0  # lower bound

    def __post_init__(self) -> None:
        check(self.min_lr >= 0, "schedule.min_lr", self.min_lr, "must be >= 0")
        check(0 < self.factor < 1, "schedule.factor", self.factor, "must be in (0, 1)")
        check(self.patience >= 0, "schedule.patience", self.patience, "must be >= 0")


# name → (optimizer, its config, the fit's epochs, the monitor's mode) → torch's scheduler
SCHEDULES: Registry = Registry(
    "schedule",
    {
        "none": ScheduleConfig,
        "step": StepScheduleConfig,
        "cosine": CosineScheduleConfig,
        "plateau": PlateauScheduleConfig,
    },
    builders="dlbasics.optim",
)
