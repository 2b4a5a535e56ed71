"""Configs choose components by name: nothing a user passes may name code to import.

Hydra can import and call what a config names: `_target_` (instantiate, and Hydra's own
callbacks, launchers and sweepers), logging's `class` and `()` factories (hydra.job_logging),
and `--experimental-rerun` unpickles a file. A config from someone else (a shared experiment
directory, a copied command line) must not be able to run code, so all of these are refused,
on the command line and in the directories a user adds to the search path, before Hydra reads
anything.
"""

import sys
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from dlbasics.errors import ConfigError

# Keys through which Hydra's `instantiate` imports and calls whatever a config names.
INSTANTIATE_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")
CODE_KEYS = (*INSTANTIATE_KEYS, "()", "class")  # "()" and "class": logging.config factories
LOGGING_OVERRIDES = ("hydra.job_logging", "hydra.hydra_logging")


def refuse_code_in_arguments(argv: list[str]) -> None:
    """Refuse overrides, and YAML files in the user's config directories, that name code to
    import: checked before Hydra runs, which instantiates its callbacks and logging first."""
    if any(arg.startswith("--experimental-rerun") for arg in argv):
        raise ConfigError(
            "--experimental-rerun loads a pickle file, which can run any code; dlbasics does "
            "not accept it. Rerun with the overrides in the run's .hydra/overrides.yaml."
        )
    for arg in argv:
        key = _override_code_key(arg)
        if key is not None:
            raise ConfigError(code_key_message(f"{key} (in the override {arg!r})"))
    directories = _user_config_dirs(argv)
    for directory in directories:  # grows when a file adds hydra.searchpath entries
        for path in sorted(directory.rglob("*.y*ml")):
            document = _read_yaml(path)
            key = _find_code_key(document)
            if key is not None:
                raise ConfigError(code_key_message(f"{key} in {path}"))
            searchpath = _dig(document, "hydra", "searchpath") or []
            entries = [searchpath] if isinstance(searchpath, str) else searchpath
            added = (d.resolve() for d in _as_dirs(entries))
            directories += [d for d in added if d not in directories]


def _override_code_key(arg: str) -> str | None:
    """The key in one override (its name, or a key inside a dict value) that names code."""
    if "=" not in arg or arg.startswith("-"):
        return None
    try:
        override = OverridesParser.create().parse_overrides([arg])[0]
    except HydraException:
        return None  # not an override Hydra can parse: it reports that itself
    key = override.key_or_group
    parts = key.replace("/", ".").split(".")
    logging = key.startswith(LOGGING_OVERRIDES)
    if any(p in INSTANTIATE_KEYS or (logging and p in CODE_KEYS) for p in parts):
        return key
    inner = _find_code_key(override.value()) if override.value_type is not None else None
    return f"{key}.{inner}" if inner else None


def code_key_message(where: str) -> str:
    return (
        f"{where}: dlbasics does not import classes or functions named in configs (Hydra's "
        "_target_, logging's class and '()'), so a config file from someone else cannot run "
        "code; components are chosen by name (e.g. model=mlp, optim=adam)."
    )


def _user_config_dirs(argv: list[str]) -> list[Path]:
    """Directories the user adds to Hydra's search path: --config-dir/-cd, --config-path/-cp
    (relative to the script, or to the current directory) and hydra.searchpath=[…]."""
    found: list[str] = []
    for i, arg in enumerate(argv):
        for flag in ("--config-dir", "-cd", "--config-path", "-cp"):
            if arg == flag and i + 1 < len(argv):
                found.append(argv[i + 1])
            elif arg.startswith(f"{flag}="):
                found.append(arg.partition("=")[2])
        if arg.lstrip("+").startswith("hydra.searchpath="):
            found += arg.partition("=")[2].strip("[]").split(",")
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


def _find_code_key(node: Any, prefix: str = "") -> str | None:
    """The first key that names code, anywhere in a YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key in CODE_KEYS:
                return path
            found = _find_code_key(value, path)
            if found:
                return found
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found = _find_code_key(item, f"{prefix}[{index}]")
            if found:
                return found
    return None
