"""A sweep's jobs that differ only in what stacked members can differ in, trained as one
stacked computation (the `stacked` Hydra launcher, hydra_plugins/dlbasics_stacked_launcher).

(STUB while the stacked trainer is written: ``train_group`` trains the jobs one by one.)
"""

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from dlbasics.config import Config
from dlbasics.run import train

# The keys in which jobs of one stacked group may differ: each member has its own.
MEMBER_KEYS = (
    "seed",
    "data.seed",
    "trainer.seed",
    "optim.lr",
    "optim.weight_decay",
    "reg.l1",
    "reg.l2",
)


def group_key(cfg: Config) -> str | None:
    """Jobs whose keys are equal train together as one stacked group; None: this job cannot
    be stacked (it trains alone, as the basic launcher would train it)."""
    return None  # STUB: nothing stacks yet


def train_group(
    jobs: Sequence[tuple[Config, Path, str]],
    swept: Sequence[str] = (),
    job_log: Callable[[int], AbstractContextManager] = lambda index: nullcontext(),
) -> list[dict[str, Any] | BaseException]:
    """Train ``jobs`` — (validated config, run directory, name) each, as ``run.train`` takes
    them — and write each job's run directory as ``run.train`` would (metrics.json,
    preprocessing.json, tb/<name>, checkpoints/). Returns each job's metrics, or the exception
    that job failed with (a UserError for a mistake in its config). Lines about job ``i`` are
    logged inside ``job_log(i)`` (the launcher points them at that job's train.log)."""
    results: list[dict[str, Any] | BaseException] = []
    for index, (cfg, run_dir, name) in enumerate(jobs):  # STUB: one by one
        with job_log(index):
            try:
                results.append(train(cfg, run_dir, progress=False, name=name, swept=swept))
            except Exception as error:  # noqa: BLE001 - handed back per job
                results.append(error)
    return results
