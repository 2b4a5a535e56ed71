"""One source for each default and each list of choices: where a second copy exists, it is
checked here, key by key, and any difference fails with the group, the choice and the key.

Defaults stand in two places: a choice's YAML file in configs/ (what a user reads, and what
runs) and its schema dataclass in dlbasics/schemas/ (what a config made in Python, such as
``TrainerConfig()``, gets). The YAML is the source; the rules for the schema are:

- A group whose choices each have a schema (``dlbasics.config.CHOICES``: model, data, act,
  optim, schedule, ensemble): every key a choice's YAML file sets equals its schema's default.
  The one exception is ``name``, the choice's own name, which a schema shared by several
  choices (data=iris, data=wine) cannot hold for each. A choice that needs a default other than
  the one of the schema it shares needs a schema of its own.
- A group whose choices share one schema (trainer, loss, reg, logger, diag): the schema's
  defaults are those of the group's default choice, the one configs/config.yaml's defaults list
  names; that YAML file equals the schema on every key it sets. Every other choice sets only
  what makes it that choice (trainer=batch: mode, batch_size, epochs), each to a value other
  than the schema's; its other keys are the schema's.
- The top-level keys of configs/config.yaml (``seed``) equal the defaults of ``Config``.

A key a YAML file leaves out has one source already, its schema. A schema's interpolation
(``data.seed: ${seed}``) is compared as written.

Lists of choices: a group's YAML files are its choices, and ``--help`` lists them
(dlbasics/help.py: a registry's names, or a group's YAML files). They must be the names the code
knows: a registry's (tests/test_config.py checks those of CHOICES), or the names the schema
checks (``loss.name`` in LOSSES, …). The lists written out in configs/config.yaml's defaults
comments and in the README's "Config groups" table must be those files.
"""

import re
from dataclasses import fields

import pytest
from doc_commands import ROOT, section
from omegaconf import OmegaConf

from conftest import CONFIGS
from dlbasics.config import CHOICES, Config, flatten
from dlbasics.help import group_choices
from dlbasics.schemas.diagnostics import DiagConfig
from dlbasics.schemas.loggers import LOGGERS, LoggerConfig
from dlbasics.schemas.losses import LOSSES, LossConfig, RegConfig
from dlbasics.schemas.models import CELLS
from dlbasics.schemas.trainer import TRAINER_MODES, TrainerConfig

# The groups whose choices share one schema, and that schema.
SHARED_SCHEMAS = {
    "trainer": TrainerConfig,
    "loss": LossConfig,
    "reg": RegConfig,
    "logger": LoggerConfig,
    "diag": DiagConfig,
}
# Groups without a registry whose choices the code names, and the key a choice's file sets to
# its own name.
NAMED_IN_CODE = {
    "trainer": (TRAINER_MODES, "mode"),
    "loss": (LOSSES, "name"),
    "logger": (LOGGERS, "name"),
    "cell": (CELLS, "cell"),  # `cell=gru` is short for model.cell=gru
}
# Every group a user chooses in, whose list of choices is written out.
CHOICE_GROUPS = sorted({*CHOICES, *SHARED_SCHEMAS, *NAMED_IN_CODE})
ROOT_CONFIG = CONFIGS / "config.yaml"


def yaml_choices(group: str) -> list[str]:
    """A group's choices: its YAML files in configs/."""
    return sorted(path.stem for path in (CONFIGS / group).glob("*.yaml"))


def yaml_keys(group: str, choice: str) -> dict:
    """The keys a choice's YAML file sets (``early_stopping.patience`` for nested ones)."""
    node = OmegaConf.to_container(OmegaConf.load(CONFIGS / group / f"{choice}.yaml"))
    node.pop("defaults", None)
    return flatten(node)


def schema_defaults(schema: type) -> dict:
    """A schema's defaults by key, MISSING (``???``) and interpolations as written."""
    return flatten(OmegaConf.to_container(OmegaConf.structured(schema)))


def same(yaml_value, schema_value) -> bool:
    """Equal values (1 and 1.0 alike, as the schema converts them), a bool only to a bool."""
    return yaml_value == schema_value and isinstance(yaml_value, bool) == isinstance(
        schema_value, bool
    )


def default_choice(group: str) -> str:
    """The choice configs/config.yaml's defaults list names for ``group``."""
    for entry in OmegaConf.to_container(OmegaConf.load(ROOT_CONFIG))["defaults"]:
        if isinstance(entry, dict) and group in entry:
            return entry[group]
    raise AssertionError(f"configs/config.yaml names no default for {group}")


@pytest.mark.parametrize("group", CHOICES)
def test_each_choice_yaml_equals_its_own_schema(group):
    differences = []
    for choice, schema in CHOICES[group].schemas().items():
        if choice not in yaml_choices(group):
            differences.append(f"{group}={choice} is registered, but has no YAML file")
            continue
        defaults = schema_defaults(schema)
        for key, value in yaml_keys(group, choice).items():
            if key == "name":
                if value != choice:
                    differences.append(f"{group}={choice}: name is {value!r}, not {choice!r}")
            elif not same(value, defaults[key]):
                differences.append(
                    f"{group}={choice}: {key} is {value!r} in configs/{group}/{choice}.yaml, "
                    f"{defaults[key]!r} in {schema.__name__}"
                )
    assert not differences, "\n".join(differences)


@pytest.mark.parametrize("group", SHARED_SCHEMAS)
def test_a_shared_schema_holds_the_default_choice_and_the_others_only_differ(group):
    schema = SHARED_SCHEMAS[group]
    defaults = schema_defaults(schema)
    default = default_choice(group)
    differences = []
    for choice in yaml_choices(group):
        for key, value in yaml_keys(group, choice).items():
            where = f"{group}={choice}: {key} is {value!r}, {defaults[key]!r} in {schema.__name__}"
            if choice == default and not same(value, defaults[key]):
                differences.append(f"{where} (the default choice: they must be equal)")
            elif choice != default and same(value, defaults[key]):
                differences.append(f"{where} (written twice: leave it to the schema)")
    assert not differences, "\n".join(differences)


def test_the_top_level_keys_equal_the_config_schema():
    written = OmegaConf.to_container(OmegaConf.load(ROOT_CONFIG))
    defaults = {f.name: f.default for f in fields(Config)}
    for key in written.keys() - {"defaults", "hydra"}:
        assert same(written[key], defaults[key]), (
            f"{key} is {written[key]!r} in configs/config.yaml, {defaults[key]!r} in Config"
        )


def test_a_group_s_default_in_config_is_the_schema_of_config_yaml_s_default_choice():
    # Config() made in Python has one model (ensemble: the schema of ensemble=none).
    for f in fields(Config):
        if f.name in CHOICES and callable(f.default_factory):
            assert CHOICES[f.name].schemas()[default_choice(f.name)] is f.default_factory, f.name


@pytest.mark.parametrize("group", NAMED_IN_CODE)
def test_the_yaml_files_are_the_choices_the_code_names(group):
    names, key = NAMED_IN_CODE[group]
    assert yaml_choices(group) == sorted(names)
    for choice in yaml_choices(group):
        assert yaml_keys(group, choice)[key] == choice, f"configs/{group}/{choice}.yaml"


def written_lists_in_config_yaml() -> dict[str, list[str]]:
    """group → the choices its line of configs/config.yaml's defaults list names in its comment,
    as ``a | b | c``."""
    lists = {}
    for line in ROOT_CONFIG.read_text().splitlines():
        entry = re.match(r"\s*- (\w+): \S+\s*#(.*)", line)
        if entry:
            written = re.findall(r"\w+(?:\s*\|\s*\w+)+", entry[2])
            assert len(written) <= 1, f"two lists of choices in: {line}"
            if written:
                lists[entry[1]] = re.split(r"\s*\|\s*", written[0])
    return lists


def test_config_yaml_comments_list_each_group_s_choices():
    lists = written_lists_in_config_yaml()
    assert set(CHOICE_GROUPS) <= set(lists), "a group's line in config.yaml lists no choices"
    for group, written in lists.items():
        assert sorted(written) == yaml_choices(group), f"configs/config.yaml, {group}"


def written_lists_in_readme() -> dict[str, list[str]]:
    """group → the choices the README's "Config groups" table lists in its row."""
    lists = {}
    for line in section((ROOT / "README.md").read_text(), "Config groups").splitlines():
        cells = re.split(r"(?<!\\)\|", line)  # cells may hold escaped pipes: auto\|cpu
        if len(cells) > 3 and re.fullmatch(r" `\w+` ", cells[1]):
            lists[cells[1].strip(" `")] = re.findall(r"`(\w+)`", cells[2])
    return lists


def test_the_readme_table_lists_each_group_s_choices():
    lists = written_lists_in_readme()
    assert set(CHOICE_GROUPS) <= set(lists), "a group is missing from the README's table"
    for group, written in lists.items():
        assert sorted(written) == yaml_choices(group), f"README.md, Config groups, {group}"


def test_help_lists_the_yaml_files_themselves():
    listed = group_choices(CONFIGS)
    assert listed == {group: yaml_choices(group) for group in listed}
