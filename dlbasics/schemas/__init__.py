"""What a config can say, without torch: the schema (a dataclass of keys, types, defaults and
range checks) of every component the torch-using modules build, and each group's registry of
choices. One module here per module there: ``schemas/optim.py`` holds the schemas of
``dlbasics/optim.py``, which imports them back. (A module without torch keeps its schema:
``EarlyStoppingConfig`` is in dlbasics/early_stopping.py.)

``dlbasics/config.py`` composes and checks a config from these alone, so ``scripts/train.py
--help`` and a config mistake answer before torch is imported (it takes seconds to load); the
builders come in when a run is built (dlbasics/registry.py).
"""
