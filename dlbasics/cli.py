"""How `scripts/train.py` ends, as a process: its exit status and what it prints.

0    the run finished (including stop_reason diverged: metrics.json says so)
2    the user's input cannot be used: a config mistake (Hydra's own included), a bad data
     file or checkpoint, an output directory that cannot be written; one paragraph on
     stderr, never a traceback, before training starts where it can be known then
130  stopped by SIGINT, 143 by SIGTERM (128 + the signal, as a shell reports), after
     writing last.pt and metrics.json
1    anything else: a bug in dlbasics, shown with its traceback
"""

import functools
import os
import re
import signal
import sys
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import Any, NoReturn

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    OmegaConfBaseException,
    ValidationError,
)

from dlbasics.config import CHOICES, unknown_key_message
from dlbasics.config_guard import INSTANTIATE_KEYS, code_key_message
from dlbasics.errors import UserError
from dlbasics.schemas.models import OPTIONAL_GROUPS

USER_ERROR = 2


class _Task:
    running = False  # set on entering the task function, cleared when it returns


def task(function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a Hydra task function: a UserError exits 2 with its message; a run stopped by a
    signal exits 128 + the signal once it has saved its state."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        _Task.running = True
        try:
            metrics = function(*args, **kwargs)
        except UserError as error:
            fail(str(error))
        if metrics.get("stop_signal"):
            sys.exit(128 + signal.Signals[metrics["stop_signal"]])
        _Task.running = False
        return metrics.get("best_monitor")  # what a sweeper (e.g. Optuna) optimises

    return run


def run_app(app: Callable[[], Any], argv: list[str]) -> None:
    """Run a ``@hydra.main`` app so that every config mistake exits 2 with one paragraph.
    ``argv`` is its command line, already checked by config_guard.refuse_code_in_arguments
    (what the user typed, before the app adds overrides of its own)."""
    # Hydra would print its composition errors over several lines and exit 1; with this set
    # it raises them to us instead (and shows a bug in our code with its full traceback).
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        app()
    except KeyboardInterrupt:  # Ctrl-C before training began, or a second one while saving
        print("interrupted (SIGINT); what was written before stays as it is.", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
    except (HydraException, OmegaConfBaseException, AssertionError) as error:
        if _Task.running or (
            isinstance(error, AssertionError) and not key_of_a_left_out_group(error)
        ):
            raise
        fail(describe_hydra_error(error, argv))
    except OSError as error:
        if _Task.running:
            raise
        # Before the task: Hydra could not create the run directory or its train.log.
        fail(unwritable(error))


def unwritable(error: OSError) -> str:
    """The line for a run directory that cannot be created or written."""
    return (
        f"cannot write the run directory ({error.filename}: {error.strerror}); choose "
        "another with hydra.run.dir=… (or hydra.sweep.dir=… with -m)."
    )


# What to undo when the input is refused (run_lock.RunDirectoryGuard: the directory a refused
# run made), called by fail() before it exits.
_ON_REFUSAL: list[Callable[[], None]] = []


def on_refusal(undo: Callable[[], None]) -> None:
    """Call ``undo`` if the run is refused (fail) from now on."""
    _ON_REFUSAL.append(undo)


def interrupt_on_ctrl_c() -> None:
    """From here on Ctrl-C raises KeyboardInterrupt (run_app: exit 130; during training the
    run saves and stops, interrupt.py). scripts/train.py holds SIGINT back while it starts,
    Hydra composes the config and torch loads: one sent meanwhile interrupts here."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if hasattr(signal, "pthread_sigmask"):  # POSIX
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def key_of_a_left_out_group(error: Exception) -> bool:
    """Whether ``error`` is OmegaConf's failed assertion on an override of a key under a group
    the config leaves out (``reg.dropout=0.1`` with model=perceptron, whose reg is null)."""
    return isinstance(error, AssertionError) and "Unexpected type for root: NoneType" in str(error)


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    while _ON_REFUSAL:
        _ON_REFUSAL.pop()()
    sys.exit(USER_ERROR)


# --- Hydra's errors as one paragraph -----------------------------------------------------------


def describe_hydra_error(error: Exception, overrides: list[str]) -> str:
    """Hydra's or OmegaConf's composition error as one line naming the key and what it takes;
    ``overrides`` are the command line's, to point at the one that cannot be parsed."""
    cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else error
    if key_of_a_left_out_group(error):
        typed = [
            o.lstrip("+~") for o in overrides if o.lstrip("+~").partition(".")[0] in OPTIONAL_GROUPS
        ]
        key = typed[0] if typed else "a key of act or reg"
        group = key.partition(".")[0]
        return (
            f"{key} does not apply: the chosen model takes no {group} (a model without hidden "
            f"activations or penalties, such as model=perceptron, leaves {group} out); "
            "--help model=NAME lists what a model takes."
        )
    if isinstance(error, MissingConfigException) and error.options is not None:
        group, _, choice = (error.missing_cfg_file or "").rpartition("/")
        return (
            f"{group}={choice} is not a choice of {group}; choose one of: "
            f"{', '.join(sorted(error.options))}."
        )
    if isinstance(error, OverrideParseException):
        which = _unparsable(overrides) or "an override"
        return f"{which} cannot be parsed: {_one_line(str(error))}"
    key = getattr(cause, "full_key", None)
    schema = getattr(cause, "object_type", None)
    name = getattr(cause, "key", None)
    if key and name in INSTANTIATE_KEYS:
        return code_key_message(key)
    if key and is_dataclass(schema):
        known = {f.name: f.type for f in fields(schema)}
        if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and name not in known:
            registry = CHOICES.get(key.rpartition(".")[0])
            return unknown_key_message(key, known, registry and registry.choice_of(schema))
        if isinstance(cause, ValidationError) and name in known:
            value = getattr(cause, "value", None)
            return f"{key}={value!r} is not allowed: {_type_name(known[name])} expected."
    misplaced = MISPLACED_KEY.search(str(error))  # a group file that sets another's key
    if misplaced:  # (`cell=lstm` with model=mlp: Hydra tells it only in its message)
        _, schema_name, key = misplaced.groups()
        group = key.rpartition(".")[0]
        schemas = CHOICES[group].schemas().values() if group in CHOICES else []
        schema = next((s for s in schemas if s.__name__ == schema_name), None)
        if schema is not None:
            known = {f.name for f in fields(schema)}
            return unknown_key_message(key, known, CHOICES[group].choice_of(schema))
    message = _one_line(str(cause))
    return f"{key}: {message}" if key and key not in message else message


MISPLACED_KEY = re.compile(r"Key '(\w+)' not in '(\w+)'\s+full_key: (\S+)")


def _unparsable(overrides: list[str]) -> str | None:
    parser = OverridesParser.create()
    for override in overrides:
        if "=" in override and not override.startswith("-"):
            try:
                parser.parse_overrides([override])
            except HydraException:
                return f"the override {override!r}"
    return None


TYPE_NAMES = {"float": "a number", "int": "an integer", "bool": "true or false", "str": "text"}


def _type_name(annotation: Any) -> str:
    """``int | None`` → "an integer or null"."""
    parts = str(annotation).replace("typing.", "").split(" | ")
    if len(parts) == 1:
        parts = [getattr(annotation, "__name__", parts[0])]
    return " or ".join("null" if p == "None" else TYPE_NAMES.get(p, p) for p in parts)


def _one_line(message: str) -> str:
    """The lines before OmegaConf's `full_key:` details and Hydra's search path, joined."""
    kept = []
    for line in message.strip().splitlines():
        if line.strip().startswith(("full_key:", "Config search path", "See https://")):
            break
        if line.strip():
            kept.append(line.strip())
    return " ".join(kept)
