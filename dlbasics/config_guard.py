"""A config from someone else cannot run code or write outside the run directory.

Hydra can import and call what a config names: `_target_` (instantiate, and Hydra's own
callbacks, launchers and sweepers), logging's `class`, `()` and `ext://` (hydra.job_logging),
the Optuna sweeper's `custom_search_space`, submitit's `setup` shell lines; `hydra.job.env_set`
changes the environment, a log handler's file name writes anywhere, and `--experimental-rerun`
unpickles a file. What a user brings (the command line, a `--config-dir`, the directories of
`hydra.searchpath`) is therefore checked before Hydra reads anything:

- no key anywhere names code to import (CODE_KEYS), and no value is an `ext://` reference;
- under `hydra`, a user may set only the keys of HYDRA_KEYS (run and sweep directories, the
  launcher's and sweeper's documented settings, the Optuna search space as data) and choose
  only the hydra/* options of HYDRA_CHOICES; a user's config directory holds no hydra/*
  configs and its files reach `hydra` only through those keys;
- every resolver refuses to make a dict or a list (``harden_resolvers``, which each entry
  point calls): an interpolation such as ``${oc.create:{_target_: …}}`` yields a value, never
  a node that could be instantiated.

The package's own configs (configs/) are trusted.
"""

import argparse
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ValueType
from hydra.errors import HydraException
from hydra.main import get_args_parser
from omegaconf import DictConfig, ListConfig, OmegaConf

from dlbasics.errors import ConfigError

# Keys through which Hydra's `instantiate` imports and calls whatever a config names, and
# logging.config's factories.
INSTANTIATE_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")
CODE_KEYS = (*INSTANTIATE_KEYS, "()", "class")
# The hydra.* keys a user may set: patterns over the dotted key.
HYDRA_KEYS = [
    re.compile(pattern)
    for pattern in (
        r"hydra\.run\.dir",
        r"hydra\.sweep\.(dir|subdir)",
        r"hydra\.searchpath",  # the directories are checked as config directories
        r"hydra\.mode",
        r"hydra\.verbose",
        r"hydra\.job\.chdir",
        r"hydra\.output_subdir",
        # joblib and submitit (hydra/launcher=joblib|slurm|submitit_*): sizes and limits
        r"hydra\.launcher\.(n_jobs|pre_dispatch|batch_size|verbose|timeout_min|nodes"
        r"|tasks_per_node|cpus_per_task|gpus_per_node|mem_gb|mem_per_gpu|mem_per_cpu"
        r"|array_parallelism|max_num_timeout|partition|qos|account|comment|constraint"
        r"|exclude|signal_delay_s|name)",
        # the Optuna sweeper: the search, its space as data (strings of the sweep grammar)
        r"hydra\.sweeper\.(direction|study_name|storage|n_trials|n_jobs|max_failure_rate)",
        r"hydra\.sweeper\.sampler\.(seed|n_startup_trials|consider_endpoints|multivariate)",
        r"hydra\.sweeper\.params(\..+)?",
    )
]
# The hydra/* groups a user may choose in, and their options (Hydra's, its plugins', ours).
HYDRA_CHOICES = {
    "hydra/launcher": ("basic", "joblib", "slurm", "submitit_local", "submitit_slurm", "stacked"),
    "hydra/sweeper": ("basic", "optuna"),
    "hydra/job_logging": ("dlbasics", "stdout", "default", "disabled", "none"),
    "hydra/hydra_logging": ("default", "disabled", "none"),
}
SWEEPER_PARAMS = "hydra.sweeper.params."  # its keys: the swept keys, its values: their spaces
STORAGE = re.compile(r"sqlite:///[\w./-]+\.db")  # an Optuna study kept in a file of its own


def refuse_code_in_arguments(argv: list[str]) -> None:
    """Check a command line, and the YAML files of the config directories it adds, before
    Hydra reads anything; raise ConfigError naming the key and the override or file. The
    command line is read with Hydra's own parser, as Hydra will read it (a flag may be given
    by any unambiguous prefix: ``--config-d`` is ``--config-dir``)."""
    parsed = parse_hydra_args(argv)
    if parsed is None:  # Hydra refuses it, and says why, before it reads anything
        return
    if parsed.experimental_rerun is not None:
        raise ConfigError(
            "--experimental-rerun loads a pickle file, which can run any code; dlbasics does "
            "not accept it. Rerun with the overrides in the run's .hydra/overrides.yaml."
        )
    name = parsed.config_name or ""
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise ConfigError(
            f"--config-name {name}: a config is named by its place in the config directories "
            "(e.g. --config-name config), not by a path that leaves them."
        )
    for arg in parsed.overrides:
        problem = _override_problem(arg)
        if problem is not None:
            key, why = problem
            raise ConfigError(f"{key} (in the override {arg!r}): {why}")
    directories = _user_config_dirs(parsed)
    for directory in directories:  # grows when a file adds hydra.searchpath entries
        for path in _yaml_files(directory):
            document = _read_yaml(path)
            problem = _file_problem(path.relative_to(directory), path.read_text(), document)
            if problem is not None:
                key, why = problem
                raise ConfigError(f"{key} in {path}: {why}")
            searchpath = _dig(document, "hydra", "searchpath") or []
            entries = [searchpath] if isinstance(searchpath, str) else searchpath
            added = (d.resolve() for d in _as_dirs(entries))
            directories += [d for d in added if d not in directories]


def parse_hydra_args(args: list[str]) -> argparse.Namespace | None:
    """Hydra's command-line arguments parsed as Hydra parses them (``.multirun``,
    ``.overrides``, ``.config_dir``, …), or None when Hydra would refuse them (it then says
    why)."""
    parser = get_args_parser()

    def refuse(message: str) -> NoReturn:  # instead of printing usage and exiting: Hydra will
        raise _MalformedArgs(message)

    parser.error = refuse  # type: ignore[method-assign]
    try:
        return parser.parse_args(args)
    except _MalformedArgs:
        return None


class _MalformedArgs(Exception):
    pass


def _yaml_files(directory: Path) -> list[Path]:
    """The YAML files below ``directory`` as Hydra finds them: through links to directories
    too (each directory once)."""
    found, seen = [], set()
    for root, subdirectories, files in os.walk(directory, followlinks=True):
        real = Path(root).resolve()
        if real in seen:  # a link back up the tree
            subdirectories.clear()
            continue
        seen.add(real)
        found += [Path(root) / f for f in files if f.endswith((".yaml", ".yml"))]
    return sorted(found)


CODE = (
    "dlbasics does not import classes or functions named in configs (Hydra's _target_, "
    "logging's class, '()' and ext://), so a config file from someone else cannot run code; "
    "components are chosen by name (e.g. model=mlp, optim=adam)."
)
HYDRA = (
    "under hydra a config may set only the run and sweep directories, the launcher's and "
    "sweeper's settings and the search space (hydra.run.dir, hydra.sweep.dir, "
    "hydra.launcher.n_jobs, hydra.sweeper.params.…), and choose "
    + "; ".join(f"{group}={'|'.join(options)}" for group, options in HYDRA_CHOICES.items())
    + ": the rest could run code or write outside the run directory."
)
Problem = tuple[str, str]  # the key, and what is wrong with it


def code_key_message(key: str) -> str:
    return f"{key}: {CODE}"


# --- the command line --------------------------------------------------------------------------


def _override_problem(arg: str) -> Problem | None:
    """What is wrong with one override, or None."""
    if "=" not in arg and not arg.startswith("~"):
        return None
    if arg.startswith("-"):
        return None
    try:
        override = OverridesParser.create().parse_overrides([arg])[0]
    except HydraException:
        return None  # not an override Hydra can parse: it reports that itself
    key = override.key_or_group
    parts = key.replace("/", ".").split(".")
    if any(part in CODE_KEYS for part in parts):
        return key, CODE
    package = override.package or ""
    if package.split(".")[0] in ("hydra", "_global_"):
        return f"{key}@{package}", HYDRA
    values = _override_values(override) if override.value_type is not None else []
    inner = next((found for v in values if (found := _find_code(v)) is not None), None)
    if inner is not None:
        return (f"{key}.{inner}" if inner else key), CODE
    if parts[0] != "hydra":
        return None
    if "/" in key:  # a hydra/* group
        options = HYDRA_CHOICES.get(key)
        if options is None or not all(str(v) in options for v in values):
            return f"{key}={'|'.join(map(str, values))}", HYDRA
        return None
    return _hydra_value_problem(key, values)


def _override_values(override: Any) -> list[Any]:
    """The value of an override, or each value of a sweep (none of an interval: numbers)."""
    if override.value_type == ValueType.INTERVAL_SWEEP:
        return []
    if override.is_sweep_override():
        return [str(value) for value in override.sweep_string_iterator()]
    return [override.value()]


def _hydra_value_problem(key: str, values: list[Any]) -> Problem | None:
    """An allowed hydra key must hold plain data: no dicts (which could be instantiated)."""
    if not any(pattern.fullmatch(key) for pattern in HYDRA_KEYS):
        return key, HYDRA
    for value in values:
        if key.startswith("hydra.sweeper.params"):  # the search space: key → sweep string
            inner = value.values() if isinstance(value, dict) else [value]
            if any(isinstance(v, dict) for v in inner):
                return key, HYDRA
            # Each entry becomes every job's override `param=value`: checked as one typed.
            params = value if isinstance(value, dict) else {key[len(SWEEPER_PARAMS) :]: value}
            for param, space in params.items():
                problem = _override_problem(f"{param}={space}") if param else None
                if problem is not None:
                    return f"{SWEEPER_PARAMS}{problem[0]}", problem[1]
        elif isinstance(value, dict) or (isinstance(value, list) and key != "hydra.searchpath"):
            return key, HYDRA
        if key == "hydra.sweeper.storage" and value is not None and not STORAGE.fullmatch(value):
            return f"{key}={value}", "an Optuna storage is a file of its own, sqlite:///NAME.db"
    return None


# --- configuration files -----------------------------------------------------------------------

def package_header(text: str) -> str | None:
    """The package a config file's header names, read as Hydra reads it: the ``# @key value``
    lines at its top (blank lines skipped, leading spaces allowed), up to the first other
    line; the last ``@package`` there counts."""
    package = None
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if not re.match(r"^\s*#\s*@", line):
            break
        words = line.lstrip("#").split()
        if len(words) == 2 and words[0] == "@package":
            package = words[1]
    return package


def _file_problem(relative: Path, text: str, document: Any) -> Problem | None:
    """What is wrong with one YAML file of a user's config directory, or None."""
    code = _find_code(document)
    if code is not None:
        return code or "a value", CODE
    if relative.parts[0] == "hydra":
        return f"a hydra/* config ({relative})", HYDRA
    header = package_header(text)
    # A file at the top of a config directory is in the global package unless it says so.
    package = header if header is not None else ("_global_" if len(relative.parts) == 1 else "")
    if package.startswith("hydra") or package.startswith("_global_.hydra"):
        return f"@package {package}", HYDRA
    if not isinstance(document, dict):
        return None
    for entry in document.get("defaults") or []:
        problem = _defaults_entry_problem(entry)
        if problem is not None:
            return problem
    if package == "_global_":  # its keys are the top level's
        for key, value in _leaves(document.get("hydra"), "hydra"):
            problem = _hydra_value_problem(key, [value])
            if problem is not None:
                return problem
    return None


def _defaults_entry_problem(entry: Any) -> Problem | None:
    """A defaults-list entry may pick a hydra/* option of HYDRA_CHOICES, nothing else there."""
    if isinstance(entry, str):  # a config by its path: `- /model/mlp@model.encoder`
        path, _, package = entry.partition("@")
        if package.split(".")[0] in ("hydra", "_global_") or path.lstrip("/").startswith("hydra"):
            return f"defaults: {entry}", HYDRA
        return None
    if not isinstance(entry, dict):
        return None
    for raw_key, value in entry.items():
        key = str(raw_key).removeprefix("override").strip()
        group, _, package = key.partition("@")
        group = group.strip().lstrip("/")
        if package.split(".")[0] in ("hydra", "_global_"):
            return f"defaults: {raw_key}", HYDRA
        if group.split("/")[0] == "hydra":
            options = HYDRA_CHOICES.get(group)
            if options is None or str(value) not in options:
                return f"defaults: {raw_key}: {value}", HYDRA
    return None


def _leaves(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """(dotted key, value) pairs of a YAML tree; the search space and search path whole."""
    if isinstance(node, dict) and prefix not in ("hydra.sweeper.params", "hydra.searchpath"):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}")
    elif node is not None or prefix != "hydra":
        yield prefix, node


def _find_code(node: Any, prefix: str = "") -> str | None:
    """The first key that names code (or value that imports a module: logging's ext://),
    anywhere in a YAML document; "" for a value at the top."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key in CODE_KEYS:
                return path
            found = _find_code(value, path)
            if found is not None:
                return found
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found = _find_code(item, f"{prefix}[{index}]")
            if found is not None:
                return found
    elif isinstance(node, str) and node.strip().startswith("ext://"):
        return prefix
    return None


def _user_config_dirs(parsed: argparse.Namespace) -> list[Path]:
    """Directories the user adds to Hydra's search path: --config-dir/-cd, --config-path/-cp
    (relative to the script, or to the current directory) and hydra.searchpath=[…] (its
    entries as Hydra's override parser reads them: a quoted comma is part of a path)."""
    found = [d for d in (parsed.config_dir, parsed.config_path) if d is not None]
    for arg in parsed.overrides:
        try:
            override = OverridesParser.create().parse_overrides([arg])[0]
        except HydraException:
            continue
        if override.key_or_group == "hydra.searchpath" and override.value_type is not None:
            values = _override_values(override)
            for value in values:
                found += [str(v) for v in value] if isinstance(value, list) else [str(value)]
    script_dir = Path(sys.argv[0]).resolve().parent
    both = _as_dirs(found) + _as_dirs(str(script_dir / d) for d in found)
    return list(dict.fromkeys(path.resolve() for path in both))


def _as_dirs(entries: Any) -> list[Path]:
    """Search-path entries (plain paths or file://…) that are directories here; pkg://
    entries name installed packages, which are trusted like dlbasics itself."""
    paths = (str(e).strip().strip("'\"").removeprefix("file://") for e in entries)
    return [Path(p) for p in paths if p and not p.startswith("pkg://") and Path(p).is_dir()]


def _dig(node: Any, *keys: str) -> Any:
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # Hydra reports a file it cannot read when it gets to it


# --- resolvers ---------------------------------------------------------------------------------


class ResolverMadeANode(ValueError):
    """A resolver was asked for a dict or a list."""


def _value(name: str, result: Any) -> Any:
    """``result``, unless it is a dict or a list: in dlbasics an interpolation gives a value."""
    if isinstance(result, (dict, list, DictConfig, ListConfig)):
        made = "list" if isinstance(result, (list, ListConfig)) else "dict"
        raise ResolverMadeANode(
            f"${{{name}:…}} makes a {made}; in dlbasics an interpolation gives a value, "
            "never a config node (which Hydra could instantiate)"
        )
    return result


_NO_DEFAULT = object()  # a resolver's default argument that was not given


def env(key: str, default: Any = _NO_DEFAULT) -> str | None:
    """``${oc.env:NAME}``, ``${oc.env:NAME,default}``: an environment variable's text; the
    default, where it is unset, as text too (null stays null)."""
    if key in os.environ:
        return os.environ[key]
    if default is _NO_DEFAULT:
        raise KeyError(f"Environment variable '{key}' not found")
    return None if default is None else str(default)


def select(key: str, default: Any = _NO_DEFAULT, *, _parent_: Any, _root_: Any) -> Any:
    """``${oc.select:KEY,default}``: the value at KEY (from the top, or from this key's parent
    when KEY starts with a dot), or the default where there is none."""
    base = _parent_ if key.startswith(".") else _root_
    if default is _NO_DEFAULT:
        return _value("oc.select", OmegaConf.select(base, key))
    return _value("oc.select", OmegaConf.select(base, key, default=default))


def deprecated(key: str, message: str = "", *, _parent_: Any, _root_: Any) -> Any:
    """``${oc.deprecated:NEW_KEY}``: the value at NEW_KEY, with a warning that this key moved."""
    warnings.warn(message or f"a key is deprecated; use {key}", UserWarning, stacklevel=2)
    return _value("oc.deprecated", select(key, _parent_=_parent_, _root_=_root_))


def decode(text: str | None) -> Any:
    """``${oc.decode:TEXT}``: the value TEXT writes, read as YAML ("3" → 3, "true" → True)."""
    return _value("oc.decode", None if text is None else yaml.safe_load(text))


def create(value: Any) -> Any:
    """``${oc.create:…}`` makes a config node in OmegaConf; here only a value passes."""
    return _value("oc.create", yaml.safe_load(value) if isinstance(value, str) else value)


def _makes_a_list(name: str) -> Callable[..., Any]:
    """A resolver that makes a list in OmegaConf (a dict's keys or values): refused."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        return _value(name, [])

    return refuse


# OmegaConf's own resolvers, by name, as dlbasics implements them: each gives a value, never a
# dict or a list. Hydra's (now, hydra, python_version) return strings or nodes of the hydra
# config, whose user-set keys are checked above.
RESOLVERS: dict[str, Callable[..., Any]] = {
    "oc.env": env,
    "oc.select": select,
    "oc.deprecated": deprecated,
    "oc.decode": decode,
    "oc.create": create,
    "oc.dict.keys": _makes_a_list("oc.dict.keys"),
    "oc.dict.values": _makes_a_list("oc.dict.values"),
}


def harden_resolvers() -> None:
    """Put dlbasics' resolvers in the place of OmegaConf's, so that no interpolation makes a
    dict or a list. Every entry point calls it before a config is composed (scripts/train.py,
    its sweep jobs, the stacked launcher, dlbasics.load); calling it again changes nothing."""
    for name, resolver in RESOLVERS.items():
        OmegaConf.clear_resolver(name)
        OmegaConf.register_new_resolver(name, resolver)
