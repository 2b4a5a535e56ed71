"""Components chosen by name: `model=mlp` looks up "mlp" in the model registry.

Names, not import paths, so a config file from someone else can only pick among what is
registered here; a wrong name answers with the list of valid names. A registry is the only list
of a group's choices, in two halves:

- each choice's name and config schema (a dataclass of the keys it takes), declared in
  ``dlbasics/schemas/`` where no torch is imported: config.py puts the schemas in Hydra's
  ConfigStore as ``schema/<group>/<name>`` (the choice's YAML file names it in its defaults),
  and ``scripts/train.py --help`` lists them, both in a fraction of a second;
- each choice's builder, registered by the module that builds it with
  ``@MODELS.register("mlp", MLPConfig)``, which imports torch: that module is imported the
  first time a builder is asked for, when a run is built.
"""

import importlib
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import Generic, TypeVar

from dlbasics.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → component table for one config group (e.g. ``model``).

    ``choices``: each built-in choice's name and schema (None for a choice without keys of its
    own, as ``model.output_act``'s). ``builders``: the module whose import registers their
    builders (None: the choices are schemas only, as ``ensemble``'s)."""

    def __init__(self, key: str, choices: dict[str, type | None], builders: str | None = None):
        self.key = key  # what the user sets to choose: `model=mlp`, `model.output_act=…`
        self.builders = builders
        self._choices: dict[str, type | None] = dict(choices)
        self._entries: dict[str, T] = {}

    def register(self, name: str, schema: type | None = None) -> Callable[[T], T]:
        """A decorator adding ``name``'s builder, the decorated component: a built-in choice
        with the schema it was declared with, or a new choice with its own ``schema`` (a model
        of your own: docs/add-a-model.md)."""

        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.key}: {name!r} is registered twice")
            declared = self._choices.setdefault(name, schema)
            if schema is not None and declared is not schema:
                raise ValueError(
                    f"{self.key}: {name!r} is declared with {declared.__name__}, not "
                    f"{schema.__name__}"
                )
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        """The builder of choice ``name`` (its module imported first, where it is not yet)."""
        if name not in self._choices:
            raise ConfigError(
                f"{self.key}={name!r} is not known; choose one of: {', '.join(self.names())}."
            )
        if name not in self._entries and self.builders is not None:
            importlib.import_module(self.builders)
        if name not in self._entries:
            raise LookupError(f"{self.key}={name!r} is declared, but no builder is registered")
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._choices)

    def schemas(self) -> dict[str, type]:
        """Choice → the dataclass of the keys it takes."""
        return {name: schema for name, schema in self._choices.items() if schema is not None}

    def choices_with_key(self, key: str) -> list[str]:
        """The choices whose schema has ``key``: where a key the chosen one lacks belongs."""
        return [
            name
            for name, schema in sorted(self.schemas().items())
            if is_dataclass(schema) and key in {f.name for f in fields(schema)}
        ]

    def choice_of(self, schema: type) -> str | None:
        """The choice whose schema is ``schema``, when only one has it."""
        names = [name for name, known in self._choices.items() if known is schema]
        return names[0] if len(names) == 1 else None

    def __contains__(self, name: object) -> bool:
        return name in self._choices
