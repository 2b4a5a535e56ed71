"""The whole config: how the groups compose, and the checks that need more than one group.

Each choice of a group (`model=mlp`, `optim=adam`, `data=digits`, `act=relu`, `schedule=cosine`)
has its own schema, a dataclass in dlbasics/schemas/ (beside no torch: this module, and so a
config mistake or ``--help``, answers before torch is imported), holding only the keys that
choice takes; its registry is the one list of the group's choices. ``register_configs`` puts
every schema in Hydra's ConfigStore (``schema/<group>/<name>``), where the choice's YAML file in
``configs/`` names it, so a misspelt key, a key of another choice or a value of the wrong type
fails while Hydra composes. ``validate`` then turns the composed config into these
dataclasses, which checks ranges (``__post_init__``), and refuses what the chosen model ignores
— all before training.
"""

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from dlbasics.config_guard import INSTANTIATE_KEYS, code_key_message
from dlbasics.errors import ConfigError
from dlbasics.registry import Registry
from dlbasics.schema import check_seed
from dlbasics.schemas.activations import HIDDEN_ACTIVATIONS
from dlbasics.schemas.data import DATASETS
from dlbasics.schemas.diagnostics import DiagConfig
from dlbasics.schemas.ensembles import ENSEMBLES, EnsembleConfig
from dlbasics.schemas.loggers import LoggerConfig
from dlbasics.schemas.losses import LossConfig, RegConfig
from dlbasics.schemas.models import MODELS, OPTIONAL_GROUPS
from dlbasics.schemas.optim import OPTIMIZERS, SCHEDULES
from dlbasics.schemas.trainer import TrainerConfig

# The groups whose choices each have a schema of their own, and where those are registered.
CHOICES: dict[str, Registry] = {
    "model": MODELS,
    "data": DATASETS,
    "act": HIDDEN_ACTIVATIONS,
    "optim": OPTIMIZERS,
    "schedule": SCHEDULES,
    "ensemble": ENSEMBLES,
}


@dataclass
class Config:
    model: Any = MISSING
    data: Any = MISSING
    act: Any = None  # the hidden layers' activation; absent for a model that has none to choose
    loss: LossConfig = field(default_factory=LossConfig)
    optim: Any = MISSING
    schedule: Any = MISSING
    reg: RegConfig | None = None  # L1/L2 penalties and dropout; absent where they do not apply
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    diag: DiagConfig = field(default_factory=DiagConfig)
    # One model (none), or K of them combined (voting, bagging, boosting, stacking)
    ensemble: Any = field(default_factory=EnsembleConfig)
    seed: int = 0


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore (idempotent)."""
    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    for group, registry in CHOICES.items():
        for name, schema in registry.schemas().items():
            store.store(group=f"schema/{group}", name=name, node=schema)


def task_config(config: DictConfig) -> DictConfig:
    """A config Hydra composed, without its ``hydra`` node: what the task function is called
    with (a copy)."""
    task = copy.deepcopy(config)
    with read_write(task), open_dict(task):
        del task["hydra"]
    return task


def validate(cfg: DictConfig) -> Config:
    """Check a composed config and return it as typed dataclasses, or raise ConfigError."""
    try:
        _refuse_unknown_keys(cfg, "")
        if isinstance(cfg.get("seed"), int):  # named as typed, before data.seed follows it
            check_seed("seed", cfg.seed)
        config = OmegaConf.to_object(cfg)
    except MissingMandatoryValue as error:
        raise ConfigError(
            f"{error.full_key} is required and has no value; set it, e.g. {error.full_key}=…"
        ) from None
    except OmegaConfBaseException as error:
        raise ConfigError(_first_line_with_key(error)) from None
    if not isinstance(config, Config):
        raise ConfigError("the config does not follow dlbasics' schema (configs/config.yaml).")
    _refuse_groups_the_model_ignores(config)
    _resolve_unit_range(config)
    if config.reg is None:  # a model without penalties or dropout: none of them
        config.reg = RegConfig()
    return config


def config_from_yaml(text: str) -> Config:
    """The config a run was trained with, from the YAML its checkpoints hold: each group's
    schema found by the choice's name, then validated as a composed config is."""
    saved = OmegaConf.to_container(OmegaConf.create(text))
    node = OmegaConf.structured(Config)
    for group, registry in CHOICES.items():
        choice = (saved.get(group) or {}).get("name")
        if choice in registry.names():
            node[group] = OmegaConf.structured(registry.schemas()[choice])
    try:
        merged = OmegaConf.merge(node, saved)
    except OmegaConfBaseException as error:
        raise ConfigError(_first_line_with_key(error)) from None
    return validate(merged)


def _resolve_unit_range(config: Config) -> None:
    """A null ``data.unit_range`` means "as the model needs": true for a model whose inputs
    are probabilities (model=rbm with Bernoulli units, model=dbn), false otherwise. An explicit
    true or false stays as the user set it."""
    if hasattr(config.data, "unit_range") and config.data.unit_range is None:
        config.data.unit_range = config.model.needs_unit_range()


def _refuse_unknown_keys(node: Any, path: str) -> None:
    """Hydra's `+key=value` and a user's own YAML can add keys the schema lacks; refuse them,
    and `_target_` above all: configs choose components by name, never by import path."""
    if isinstance(node, ListConfig):
        for index, item in enumerate(node):
            _refuse_unknown_keys(item, f"{path}[{index}]")
        return
    if not isinstance(node, DictConfig):
        return
    schema = OmegaConf.get_type(node)
    known = {f.name for f in fields(schema)} if is_dataclass(schema) else None
    for key, value in node.items():
        full_key = f"{path}.{key}" if path else str(key)
        if key in INSTANTIATE_KEYS:
            raise ConfigError(code_key_message(full_key))
        if known is not None and key not in known:
            raise ConfigError(unknown_key_message(full_key, known, node.get("name")))
        _refuse_unknown_keys(value, full_key)


def _refuse_groups_the_model_ignores(config: Config) -> None:
    """`act=tanh` with a perceptron, or an L2 penalty with it, would change nothing: say so,
    rather than train what the user did not ask for. The model's YAML leaves out the groups
    it does not read, so one that is there was set by the user (command line, experiment,
    config directory)."""
    model = type(config.model)
    for group in OPTIONAL_GROUPS:
        value = getattr(config, group)
        if value is None or group in model.groups:
            continue
        if group == "act":
            what = f"act={value.name}"
        else:  # reg: only a setting that changes something
            settings = {f.name: getattr(value, f.name) for f in fields(value)}
            what = ", ".join(f"reg.{key}={v}" for key, v in settings.items() if v)
            if not what:
                continue
        users = [n for n, schema in sorted(MODELS.schemas().items()) if group in schema.groups]
        raise ConfigError(
            f"{what} does not apply to model={config.model.name}; {group} is used by "
            f"model={', '.join(users)}."
        )


def unknown_key_message(full_key: str, known: Iterable[str], choice: str | None = None) -> str:
    """One line for a key the chosen component's schema lacks: the choices of its group that
    take it (`optim.momentum` under optim=sgd), or for a top-level key that a group has
    (``device=cuda``), where it belongs (``trainer.device``)."""
    group, _, name = full_key.rpartition(".")
    takes = ", ".join(sorted(known))
    registry = CHOICES.get(group)
    users = registry.choices_with_key(name) if registry else []
    if users:
        chosen = f"{group}={choice}" if choice else f"the chosen {group}"
        return (
            f"{full_key} does not apply to {chosen}, which takes: {takes}; it is a key of "
            f"{group}={', '.join(users)}."
        )
    message = f"{full_key} is not a known key; {group or 'the top level'} accepts: {takes}."
    if name in CHOICES or name == "reg":
        message += f" {name} is a group of its own: {name}=…"
    elif not group:
        homes = _homes_of(name)
        if homes:
            message += f" Did you mean {' or '.join(homes)}?"
    return message


def _homes_of(name: str) -> list[str]:
    """The group keys called ``name``: trainer.device for device, model.hidden for hidden."""
    schemas: list[tuple[str, type]] = [
        (f.name, f.default_factory) for f in fields(Config) if is_dataclass(f.default_factory)
    ]
    schemas.append(("reg", RegConfig))
    for group, registry in CHOICES.items():
        schemas += [(group, schema) for schema in registry.schemas().values()]
    homes: list[str] = []
    while schemas:
        path, schema = schemas.pop(0)
        for f in fields(schema):
            if is_dataclass(f.default_factory):  # trainer.early_stopping.…
                schemas.append((f"{path}.{f.name}", f.default_factory))
            elif f.name == name and f"{path}.{name}" not in homes:
                homes.append(f"{path}.{name}")
    return homes


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict as ``group.key`` → value pairs (lists and other values kept as they are)."""
    if not isinstance(node, dict):
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _first_line_with_key(error: OmegaConfBaseException) -> str:
    message = str(error).splitlines()[0]
    key = getattr(error, "full_key", None)
    return f"{key}: {message}" if key and key not in message else message
