"""The schema of dlbasics/diagnostics.py: the keys of `diag` (what is measured while training)."""

from dataclasses import dataclass

from dlbasics.schema import check


@dataclass
class DiagConfig:
    """Diagnostics (dlbasics/diagnostics.py, boundary.py): all off by default, and then free."""

    grad_norms: bool = False  # grad_norm/<layer>, grad_norm/total: mean over an epoch's steps
    weight_norms: bool = False  # diag/weight_norm/<layer> at the end of each epoch
    # diag/act_mean, act_std, saturated (sigmoid, tanh), dead (relu, leaky_relu) per layer
    activations: bool = False
    histograms_every: int = 0  # diag/weights/<layer>, diag/grads/<layer> every N epochs; 0: never
    decision_boundary: bool = False  # 2-D inputs: an image in TensorBoard and a PNG, at the end

    def __post_init__(self) -> None:
        check(
            self.histograms_every >= 0,
            "diag.histograms_every",
            self.histograms_every,
            "a number of epochs >= 1, or 0 for no histograms",
        )

    @property
    def per_epoch(self) -> bool:
        """Whether anything is measured while training (the decision boundary is drawn after)."""
        return self.grad_norms or self.weight_norms or self.activations or self.histograms_every > 0
