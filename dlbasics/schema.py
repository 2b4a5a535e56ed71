"""Checks the config schemas run on their values (each schema's ``__post_init__``).

Every component's schema is a dataclass next to the code that builds the component; Hydra
checks types and key names while composing, these checks the ranges, so that a wrong value
fails before training with one line naming the key and what it accepts.
"""

from collections.abc import Iterable
from typing import Any

from dlbasics.errors import ConfigError


def check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}.")


def check_choice(key: str, value: str, choices: Iterable[str]) -> None:
    choices = list(choices)
    check(value in choices, key, value, "choose one of " + ", ".join(choices))


def check_seed(key: str, value: int) -> None:
    """Seeds are what torch.manual_seed takes: 0 to 2**63 − 1 (a default not yet resolved, the
    top-level ``${seed}``, is checked where it is set)."""
    if isinstance(value, int):
        check(0 <= value < 2**63, key, value, "an integer from 0 to 2**63 - 1")


def check_size(key: str, value: float | None, what: str = "") -> None:
    """A held-out (or kept) part of a data set: a fraction in (0, 1), or a whole count >= 1."""
    ok = value is None or (0 < value < 1) or (value >= 1 and float(value).is_integer())
    check(ok, key, value, f"{what}a fraction in (0, 1) or a whole count >= 1")


def check_sizes(key: str, sizes: list[int], at_least_one: bool = False) -> None:
    """Layer sizes (or channel counts): each >= 1, and with ``at_least_one`` not empty."""
    ok = all(size >= 1 for size in sizes) and (len(sizes) >= 1 or not at_least_one)
    allowed = "one or more sizes, each >= 1" if at_least_one else "every size must be >= 1"
    check(ok, key, list(sizes), allowed)
