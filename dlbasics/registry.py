"""Components chosen by name: `model=mlp` looks up "mlp" in the model registry.

Names, not import paths, so a config file from someone else can only pick among what is
registered here; a wrong name answers with the list of valid names.
"""

from collections.abc import Callable
from typing import Generic, TypeVar

from dlbasics.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → component table for one config key (e.g. ``model.name``)."""

    def __init__(self, key: str):
        self.key = key
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.key}: {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise ConfigError(
                f"{self.key}={name!r} is not known; choose one of: {', '.join(self.names())}."
            )
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
