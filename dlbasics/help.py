"""``scripts/train.py --help``: the config groups, their choices, and the keys of the chosen
ones with their defaults and what each is, printed by dlbasics itself from the registries and
schemas (dlbasics/schemas/) and the YAML files of configs/. It imports no torch and composes no
config, so it answers at once (Hydra's help, ``--hydra-help``, composes the whole config tree).

``--help`` shows the keys of every default choice; ``--help model=cnn`` those of model=cnn
(any ``group=choice`` given, e.g. ``--help optim=sgd schedule=cosine``).
"""

import inspect
import re
import textwrap
from collections.abc import Sequence
from dataclasses import MISSING, Field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from dlbasics.config import CHOICES, Config
from dlbasics.errors import ConfigError
from dlbasics.schemas.diagnostics import DiagConfig
from dlbasics.schemas.loggers import LoggerConfig
from dlbasics.schemas.losses import LossConfig, RegConfig
from dlbasics.schemas.trainer import TrainerConfig

HEADER = """\
dlbasics: train one model from the config tree (configs/), chosen by name, e.g.
  .venv/bin/python scripts/train.py model=mlp act=relu
  .venv/bin/python scripts/train.py model=perceptron data=or optim=sgd
  .venv/bin/python scripts/train.py -m model=mlp,dnn act=relu,tanh   # a sweep, one job per pair
  .venv/bin/python scripts/train.py model=cnn debug=fast   # check a config in seconds
  .venv/bin/python scripts/train.py --help model=cnn       # the keys of model=cnn
  .venv/bin/python scripts/train.py --hydra-help           # Hydra's own flags"""
FOOTER = """\
Exit status: 0 the run finished; 2 a mistake in the input (one line on stderr); 130/143
stopped by Ctrl-C/SIGTERM (after saving, once training has begun); 1 a bug in dlbasics.
A sweep (-m): 0 every job finished, 1 some failed, 2 a job that cannot run, found before
any ran."""

# The groups whose choices all share one schema (each choice's YAML file sets some of its keys).
SHARED_SCHEMAS: dict[str, type] = {
    "loss": LossConfig,
    "reg": RegConfig,
    "trainer": TrainerConfig,
    "logger": LoggerConfig,
    "diag": DiagConfig,
}
KEYED_GROUPS = [f.name for f in fields(Config) if f.name in CHOICES or f.name in SHARED_SCHEMAS]
YAML_COMMENT = re.compile(r"^(\w+):[^#\n]*#\s*(.*)$", re.MULTILINE)


def help_text(configs: Path, overrides: Sequence[str]) -> str:
    """What ``--help`` prints for a command line with ``overrides``, for the config tree in
    ``configs``; a ``group=choice`` that names no choice is a ConfigError."""
    groups = group_choices(configs)
    defaults = default_choices(configs)
    lines = [HEADER, "", "== Config groups (group=choice) =="]
    for group, choices in groups.items():
        default = f"  (default: {defaults[group]})" if defaults.get(group) else ""
        lines.append(f"{group}: {', '.join(choices)}{default}")
    chosen = chosen_choices(overrides, groups)
    if not chosen:  # every default choice that has keys
        chosen = {g: [defaults[g]] for g in KEYED_GROUPS if defaults.get(g)}
    lines += ["", "== Keys (group.key=value): the value each choice sets, and what it is =="]
    for group, names in chosen.items():
        for name in names:
            lines += ["", *choice_lines(configs, group, name)]
    return "\n".join([*lines, "", FOOTER])


def group_choices(configs: Path) -> dict[str, list[str]]:
    """Group → its choices: a registry's names, or the YAML files of a group without one."""
    found = {}
    for directory in sorted(p for p in configs.iterdir() if p.is_dir() and p.name != "hydra"):
        registry = CHOICES.get(directory.name)
        found[directory.name] = (
            registry.names() if registry else sorted(p.stem for p in directory.glob("*.yaml"))
        )
    return found


def default_choices(configs: Path) -> dict[str, str | None]:
    """Group → the choice configs/config.yaml's defaults list makes (None: no choice)."""
    entries = yaml.safe_load((configs / "config.yaml").read_text())["defaults"]
    return {
        key: value for entry in entries if isinstance(entry, dict) for key, value in entry.items()
    }


def chosen_choices(overrides: Sequence[str], groups: dict[str, list[str]]) -> dict[str, list[str]]:
    """Group → the choices the ``group=choice`` overrides name (a sweep's several)."""
    chosen: dict[str, list[str]] = {}
    for override in overrides:
        key, equals, value = override.partition("=")
        group = key.lstrip("+")
        if not equals or group not in groups:
            continue
        for name in value.split(","):
            if name not in groups[group]:
                raise ConfigError(
                    f"{group}={name} is not a choice of {group}; choose one of: "
                    f"{', '.join(groups[group])}."
                )
            chosen.setdefault(group, []).append(name)
    return chosen


def choice_lines(configs: Path, group: str, name: str) -> list[str]:
    """``group=name``: what it is (its YAML file's first comment), then each key's value
    (the YAML file's, else the schema's default) and comment (the schema's, else the file's)."""
    path = configs / group / f"{name}.yaml"  # none for a choice of one's own config directory
    text = path.read_text() if path.is_file() else ""
    about = [line.lstrip("# ") for line in _leading_comments(text)]
    registry = CHOICES.get(group)
    schema = registry.schemas().get(name) if registry else SHARED_SCHEMAS.get(group)
    if schema is None:  # a group without keys of its own: its file says what it does
        return [f"{group}={name}", *(f"  {line}" for line in about)]
    document = yaml.safe_load(text) or {}
    set_here = {key: value for key, value in document.items() if key != "defaults"}
    comments = {**dict(YAML_COMMENT.findall(text)), **field_comments(schema)}
    lines = [f"{group}={name}" + (f": {about[0]}" if about else "")]
    for key, value, comment in _keys(schema, group, set_here, comments):
        lines.append(f"  {key}={value}" + (f"  # {comment}" if comment else ""))
    return lines


def _keys(
    schema: type, prefix: str, set_here: dict[str, Any], comments: dict[str, str]
) -> list[tuple[str, str, str]]:
    """(group.key, value, comment) of every key of ``schema``, nested schemas' keys too."""
    rows = []
    for f in fields(schema):
        default = _default(f)
        if is_dataclass(default):  # trainer.early_stopping.…
            nested = set_here.get(f.name) or {}
            rows += _keys(
                type(default), f"{prefix}.{f.name}", nested, field_comments(type(default))
            )
            continue
        value = set_here.get(f.name, default)
        rows.append((f"{prefix}.{f.name}", _shown(value), comments.get(f.name, "")))
    return rows


def field_comments(schema: type) -> dict[str, str]:
    """Each field's comment in the schema's source: the comment after it, or the comment
    lines just above it; a base class's where the schema's own line has none."""
    comments: dict[str, str] = {}
    for cls in reversed(schema.__mro__):
        if is_dataclass(cls):
            comments.update(_own_comments(cls))
    return comments


FIELD_LINE = re.compile(r"^    (\w+)\s*:[^#]*(?:#\s*(.*))?$")


def _own_comments(cls: type) -> dict[str, str]:
    """The comments of the fields ``cls`` itself defines (not its bases')."""
    found, above = {}, []
    for line in textwrap.dedent(inspect.getsource(cls)).splitlines()[1:]:
        if line.startswith("    #"):
            above.append(line.strip().lstrip("#").strip())
            continue
        match = FIELD_LINE.match(line)
        comment = (match.group(2) or " ".join(above)) if match else ""
        if match and comment:
            found[match.group(1)] = comment
        above = []
    return found


def _default(f: Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return "???"


def _shown(value: Any) -> str:
    """A value as it is written on the command line: null, true, [128, 64], ${seed}."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return str(value)


def _leading_comments(text: str) -> list[str]:
    """The comment lines a YAML file starts with, less its ``@package`` line."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if not line.startswith("# @package"):
            lines.append(line)
    return lines
