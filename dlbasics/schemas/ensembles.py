"""The schemas of dlbasics/ensembles.py: the keys of each `ensemble=NAME`, and their registry."""

from dataclasses import dataclass

from dlbasics.registry import Registry
from dlbasics.schema import check, check_choice


@dataclass
class EnsembleConfig:
    """No ensemble: one model."""

    name: str = "none"


@dataclass
class VotingConfig(EnsembleConfig):
    """K models of the chosen family trained alone, their outputs averaged or voted."""

    name: str = "voting"
    members: int = 5  # K models of the chosen family, seeds trainer.seed … trainer.seed + K − 1
    vote: str = "soft"  # soft: mean probability (mean value for regression) | hard: majority

    def __post_init__(self) -> None:
        check(self.members >= 2, "ensemble.members", self.members, "at least 2")
        check_choice("ensemble.vote", self.vote, ("soft", "hard"))


@dataclass
class BaggingConfig(VotingConfig):
    """Voting, each member trained on a bootstrap sample of the training split."""

    name: str = "bagging"


@dataclass
class BoostingConfig(EnsembleConfig):
    """Members trained in turn, each weighting up the samples the ones before got wrong."""

    name: str = "boosting"
    members: int = 5  # at most; fewer when a member's weighted error reaches 0

    def __post_init__(self) -> None:
        check(self.members >= 2, "ensemble.members", self.members, "at least 2")


@dataclass
class StackingConfig(EnsembleConfig):
    """A meta-learner combining the members' out-of-fold predictions."""

    name: str = "stacking"
    members: int = 5
    folds: int = 5  # k: the training split cut in k parts for the out-of-fold predictions
    meta_epochs: int = 200  # the meta-learner's epochs (full-batch, Adam)

    def __post_init__(self) -> None:
        check(self.members >= 2, "ensemble.members", self.members, "at least 2")
        check(self.folds >= 2, "ensemble.folds", self.folds, "at least 2")
        check(self.meta_epochs >= 1, "ensemble.meta_epochs", self.meta_epochs, ">= 1")


# The choices, schemas only: dlbasics/ensembles.py builds each by its name.
ENSEMBLES: Registry = Registry(
    "ensemble",
    {
        schema.name: schema
        for schema in (EnsembleConfig, VotingConfig, BaggingConfig, BoostingConfig, StackingConfig)
    },
)
