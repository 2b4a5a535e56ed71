"""Components chosen by name: `model=mlp` looks up "mlp" in the model registry.

Names, not import paths, so a config file from someone else can only pick among what is
registered here; a wrong name answers with the list of valid names. Each entry may carry its
config schema (a dataclass of the keys that choice takes), which config.py puts in Hydra's
ConfigStore as ``schema/<group>/<name>``: the choice's YAML file names it in its defaults.
A registry is the only list of a group's choices.
"""

from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import Generic, TypeVar

from dlbasics.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → component table for one config group (e.g. ``model``)."""

    def __init__(self, key: str):
        self.key = key  # what the user sets to choose: `model=mlp`, `model.output_act=…`
        self._entries: dict[str, T] = {}
        self._schemas: dict[str, type] = {}

    def register(self, name: str, schema: type | None = None) -> Callable[[T], T]:
        """A decorator adding ``name`` → the decorated component (and its schema)."""

        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.key}: {name!r} is registered twice")
            self._entries[name] = entry
            if schema is not None:
                self._schemas[name] = schema
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

    def schemas(self) -> dict[str, type]:
        """Choice → the dataclass of the keys it takes."""
        return dict(self._schemas)

    def choices_with_key(self, key: str) -> list[str]:
        """The choices whose schema has ``key``: where a key the chosen one lacks belongs."""
        return [
            name
            for name, schema in sorted(self._schemas.items())
            if is_dataclass(schema) and key in {f.name for f in fields(schema)}
        ]

    def choice_of(self, schema: type) -> str | None:
        """The choice whose schema is ``schema``, when only one has it."""
        names = [name for name, known in self._schemas.items() if known is schema]
        return names[0] if len(names) == 1 else None

    def __contains__(self, name: object) -> bool:
        return name in self._entries
