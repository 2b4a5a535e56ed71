"""scripts/train.py with a stand-in for ``dlbasics.stacked_runs.group_key``, while that is a
stub that stacks nothing: jobs whose configs are equal but for the member keys stack, so that
tests of ``hydra/launcher=stacked`` go through its stacked path. Run it as train.py is run:

    python tests/stand_in_stacking.py -m hydra/launcher=stacked seed=0,1
"""

import dataclasses
import json
import runpy
import sys
from pathlib import Path

from dlbasics import stacked_runs
from dlbasics.config import Config

TRAIN_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train.py"


def config_less_members(cfg: Config) -> str:
    """The job's config without the keys in which stacked members may differ, as JSON."""
    tree = dataclasses.asdict(cfg)
    for key in stacked_runs.MEMBER_KEYS:
        *parents, last = key.split(".")
        node = tree
        for parent in parents:
            node = node.get(parent) or {}
        node.pop(last, None)
    return json.dumps(tree, sort_keys=True, default=str)


if __name__ == "__main__":
    stacked_runs.group_key = config_less_members
    sys.argv[0] = str(TRAIN_SCRIPT)
    runpy.run_path(str(TRAIN_SCRIPT), run_name="__main__")
