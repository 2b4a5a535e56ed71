"""The launcher class Hydra instantiates for ``hydra/launcher=stacked``."""

from collections.abc import Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class StackedLauncher(Launcher):
    """Runs a sweep's jobs in this process, as Hydra's basic launcher does, except that jobs
    whose configs differ only in what stacked members can differ in train as one stack."""

    def __init__(self) -> None:
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(
        self,
        *,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
    ) -> None:
        self.config = config
        self.task_function = task_function
        self.hydra_context = hydra_context

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        # Imported here, not at the top: Hydra imports this module whenever it starts, and
        # _core imports dlbasics (and torch).
        from . import _core

        return _core.launch(self, job_overrides, initial_job_idx)
