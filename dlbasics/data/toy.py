"""Small generated data sets: logic gates, the oyster sorter, moons, circles and spirals."""

import math

import torch

from dlbasics.data.core import (
    DATASETS,
    DataSplits,
    as_targets,
    classification_spec,
    split,
)
from dlbasics.schemas.data import (
    CirclesDataConfig,
    GateDataConfig,
    GeneratedDataConfig,
    OystersDataConfig,
    SpiralsDataConfig,
)

GATE_INPUTS = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
GATE_OUTPUTS = {
    "and": [0, 0, 0, 1],
    "or": [0, 1, 1, 1],
    "nand": [1, 1, 1, 0],
    "xor": [0, 1, 1, 0],  # not linearly separable: no single line splits the 1s from the 0s
}


def _gate(cfg: GateDataConfig) -> DataSplits:
    """The four rows of a truth table; there is nothing to hold out, so every split is the
    whole table and accuracy means: how many of the four rows the model gets right."""
    y = torch.tensor(GATE_OUTPUTS[cfg.name])
    spec = classification_spec(cfg.name, GATE_INPUTS, y)
    x, t = GATE_INPUTS.clone(), as_targets(y, spec.task)
    return DataSplits(spec, x, t, x.clone(), t.clone(), x.clone(), t.clone())


for _name in GATE_OUTPUTS:
    DATASETS.register(_name, GateDataConfig)(_gate)


@DATASETS.register("oysters", OystersDataConfig)
def _oysters(cfg: OystersDataConfig) -> DataSplits:
    """docs/concepts.md §2: diameter (cm) → ripe. Ripe oysters are mostly large, but not all:
    P(ripe | d) = sigmoid((d − ripe_above_cm) / noise), so a hand-written `d > 7.5` rule is
    wrong on some oysters and a threshold learned from data can do better."""
    g = torch.Generator().manual_seed(cfg.seed)
    diameter = cfg.mean_cm + cfg.std_cm * torch.randn(cfg.n_samples, 1, generator=g)
    p_ripe = torch.sigmoid((diameter[:, 0] - cfg.ripe_above_cm) / max(cfg.noise, 1e-6))
    ripe = (torch.rand(cfg.n_samples, generator=g) < p_ripe).long()
    names = {"feature_names": ("diameter_cm",), "class_names": ("unripe", "ripe")}
    return split(cfg.name, diameter, ripe, cfg, **names)


@DATASETS.register("moons", GeneratedDataConfig)
def _moons(cfg: GeneratedDataConfig) -> DataSplits:
    """Two interleaving half circles (as scikit-learn's make_moons)."""
    g = torch.Generator().manual_seed(cfg.seed)
    n_outer = cfg.n_samples // 2
    n_inner = cfg.n_samples - n_outer
    t_outer = torch.linspace(0, math.pi, n_outer)
    t_inner = torch.linspace(0, math.pi, n_inner)
    outer = torch.stack([t_outer.cos(), t_outer.sin()], dim=1)
    inner = torch.stack([1 - t_inner.cos(), 1 - t_inner.sin() - 0.5], dim=1)
    x = torch.cat([outer, inner]) + cfg.noise * torch.randn(cfg.n_samples, 2, generator=g)
    y = torch.cat([torch.zeros(n_outer), torch.ones(n_inner)]).long()
    return split(cfg.name, x, y, cfg)


@DATASETS.register("circles", CirclesDataConfig)
def _circles(cfg: CirclesDataConfig) -> DataSplits:
    """A small circle inside a large one (as scikit-learn's make_circles)."""
    g = torch.Generator().manual_seed(cfg.seed)
    n_outer = cfg.n_samples // 2
    n_inner = cfg.n_samples - n_outer
    t_outer = torch.linspace(0, 2 * math.pi, n_outer + 1)[:-1]
    t_inner = torch.linspace(0, 2 * math.pi, n_inner + 1)[:-1]
    outer = torch.stack([t_outer.cos(), t_outer.sin()], dim=1)
    inner = cfg.factor * torch.stack([t_inner.cos(), t_inner.sin()], dim=1)
    x = torch.cat([outer, inner]) + cfg.noise * torch.randn(cfg.n_samples, 2, generator=g)
    y = torch.cat([torch.zeros(n_outer), torch.ones(n_inner)]).long()
    return split(cfg.name, x, y, cfg)


@DATASETS.register("spirals", SpiralsDataConfig)
def _spirals(cfg: SpiralsDataConfig) -> DataSplits:
    """Two interleaved spirals: arm 0 at angle θ and radius θ / θ_max, arm 1 the same turned
    by π; points spaced evenly along each arm from near the centre to radius 1."""
    g = torch.Generator().manual_seed(cfg.seed)
    n_first = cfg.n_samples // 2
    n_second = cfg.n_samples - n_first
    arms = []
    for count, offset in ((n_first, 0.0), (n_second, math.pi)):
        radius = torch.linspace(0.05, 1.0, count)
        angle = radius * cfg.turns * 2 * math.pi + offset
        arms.append(radius.unsqueeze(1) * torch.stack([angle.cos(), angle.sin()], dim=1))
    x = torch.cat(arms) + cfg.noise * torch.randn(cfg.n_samples, 2, generator=g)
    y = torch.cat([torch.zeros(n_first), torch.ones(n_second)]).long()
    return split(cfg.name, x, y, cfg)
