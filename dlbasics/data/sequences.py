"""Sequence data sets for recurrent networks: samples of shape (time steps, features).

- ``seq_digits``: each 8×8 digit read row by row, 8 steps of 8 pixels (sequential MNIST, small).
- ``sine``: forecast the next value of a noisy sine wave from a window of it.
- ``adding``: Hochreiter & Schmidhuber's adding problem, a test of long-range memory.
"""

import math

import torch

from dlbasics.data.bundled import bundled_tensors
from dlbasics.data.core import DATASETS, DataSplits, split
from dlbasics.schemas.data import AddingDataConfig, BundledDataConfig, SineDataConfig

# Angular frequencies of the sine waves, in radians per step: periods of 10 to 30 steps.
SINE_OMEGA = (2 * math.pi / 30, 2 * math.pi / 10)


@DATASETS.register("seq_digits", BundledDataConfig)
def _seq_digits(cfg: BundledDataConfig) -> DataSplits:
    """scikit-learn's digits as sequences: step t is row t of the image."""
    images, labels = bundled_tensors("digits")
    x = images.reshape(-1, 8, 8)  # (n, 8 rows, 8 pixels)
    return split(cfg.name, x, labels, cfg)


@DATASETS.register("sine", SineDataConfig)
def _sine(cfg: SineDataConfig) -> DataSplits:
    """Windows x_t = sin(ω·t + φ) + noise·ε, t = 0 … length − 1, with ω and φ drawn per
    window. The target is the noise-free next value sin(ω·length + φ), so a perfect forecaster
    scores 0; with ``many_to_many`` every step t has a target, sin(ω·(t + 1) + φ)."""
    g = torch.Generator().manual_seed(cfg.seed)
    n, length = cfg.n_samples, cfg.length
    low, high = SINE_OMEGA
    omega = low + (high - low) * torch.rand(n, 1, generator=g)
    phase = 2 * math.pi * torch.rand(n, 1, generator=g)
    clean = torch.sin(omega * torch.arange(length + 1) + phase)  # (n, length + 1)
    x = clean[:, :length] + cfg.noise * torch.randn(n, length, generator=g)
    y = clean[:, 1:].unsqueeze(-1) if cfg.many_to_many else clean[:, length:]
    return split(cfg.name, x.unsqueeze(-1), y, cfg, task="regression")


@DATASETS.register("adding", AddingDataConfig)
def _adding(cfg: AddingDataConfig) -> DataSplits:
    """Each step carries two features: a number drawn from U(0, 1) and a mark (0 or 1). Exactly
    two steps are marked, one in each half; the target is the sum of their numbers.

    Predicting the mean sum (1) scores the variance of a sum of two U(0, 1), 1/6 ≈ 0.167. The
    first mark lies up to ``length`` steps before the end, so the network must hold it in
    memory that long: the test a plain RNN fails at long lengths and an LSTM passes.
    """
    g = torch.Generator().manual_seed(cfg.seed)
    n, length, half = cfg.n_samples, cfg.length, cfg.length // 2
    values = torch.rand(n, length, generator=g)
    first = torch.randint(0, half, (n,), generator=g)
    second = torch.randint(half, length, (n,), generator=g)
    marks = torch.zeros(n, length)
    rows = torch.arange(n)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    target = values[rows, first] + values[rows, second]
    return split(cfg.name, torch.stack([values, marks], dim=-1), target, cfg, task="regression")
