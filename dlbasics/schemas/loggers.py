"""The schema of dlbasics/loggers.py: the keys of `logger`."""

from dataclasses import dataclass

from dlbasics.schema import check_choice

LOGGERS = ("tensorboard", "none")


@dataclass
class LoggerConfig:
    """Where per-epoch metrics go: TensorBoard event files in the run directory, or nowhere."""

    name: str = "tensorboard"  # tensorboard | none

    def __post_init__(self) -> None:
        check_choice("logger.name", self.name, LOGGERS)
