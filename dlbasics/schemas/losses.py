"""The schemas of dlbasics/losses.py: the keys of `loss` and of `reg` (penalties, dropout)."""

from dataclasses import dataclass

from dlbasics.schema import check, check_choice

# loss.name: auto, the task's default (losses.py: DEFAULT_LOSS), or one of those losses
LOSSES = ("auto", "bce", "cross_entropy", "mse")


@dataclass
class LossConfig:
    """The loss the model is trained on."""

    name: str = "auto"  # auto: cross_entropy (multi-class), bce (binary), mse (regression)

    def __post_init__(self) -> None:
        check_choice("loss.name", self.name, LOSSES)


@dataclass
class RegConfig:
    """Regularisation (`reg=l1|l2|dropout`, combinable): what keeps a model from fitting the
    noise of its training set."""

    l1: float = 0.0  # coefficient of sum(|w|) over weight matrices, added to the loss
    l2: float = 0.0  # coefficient of sum(w**2) over weight matrices, added to the loss
    dropout: float = 0.0  # probability of dropping each hidden unit while training

    def __post_init__(self) -> None:
        check(self.l1 >= 0, "reg.l1", self.l1, "must be >= 0")
        check(self.l2 >= 0, "reg.l2", self.l2, "must be >= 0")
        check(0 <= self.dropout < 1, "reg.dropout", self.dropout, "a probability in [0, 1)")
