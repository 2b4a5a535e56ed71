"""The launcher's config, registered as ``hydra/launcher=stacked``."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore


@dataclass
class StackedLauncherConf:
    """The stacked launcher has no settings: which jobs stack is decided by their configs
    (dlbasics/stacked_runs.py)."""

    _target_: str = "hydra_plugins.dlbasics_stacked_launcher.stacked_launcher.StackedLauncher"


ConfigStore.instance().store(
    group="hydra/launcher", name="stacked", node=StackedLauncherConf, provider="dlbasics"
)
