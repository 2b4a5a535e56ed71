"""``hydra/launcher=stacked``: a sweep's jobs that differ only in what stacked members can
differ in (seeds, learning rate, weight decay, penalties) trained together in one process, each
job's run directory written as Hydra's basic launcher would write it.

A Hydra plugin: Hydra finds it by scanning the ``hydra_plugins`` namespace package, so this
folder has no ``hydra_plugins/__init__.py`` above it. ``config.py`` registers the launcher's
config, ``stacked_launcher.py`` is the class Hydra instantiates, and ``_core.py`` the work
(imported only when a sweep is launched: Hydra imports every public module here at start-up).
"""
