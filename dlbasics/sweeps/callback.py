"""At the end of a sweep: one line per failed job, and the exit status.

Registered in ``configs/config.yaml`` under ``hydra.callbacks``; Hydra calls it in the process
that launched the sweep, after every job has returned (whatever the launcher).
"""

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from dlbasics.sweeps.record import COMPLETED, JOB_FILE, read_record

# The exit status is the number of jobs that did not complete, capped below the range the shell
# uses for "killed by signal N" (128 + N).
MAX_EXIT_STATUS = 100


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        failed = summarize(sweep_dir)
        if failed:
            sys.exit(min(failed, MAX_EXIT_STATUS))


def summarize(sweep_dir: Path) -> int:
    """Print how the sweep's jobs ended; return how many did not complete."""
    records = [read_record(path.parent) for path in sorted(sweep_dir.glob(f"*/{JOB_FILE}"))]
    records = [record for record in records if record is not None]
    not_completed = [record for record in records if record.status != COMPLETED]
    print(
        f"sweep: {len(records) - len(not_completed)} of {len(records)} jobs completed, "
        f"{len(not_completed)} failed  ({sweep_dir})"
    )
    for record in sorted(not_completed, key=lambda record: record.job or 0):
        print(f"  job {record.job} ({' '.join(record.overrides)}): {record.status}: {record.error}")
    print(f"report: python scripts/report.py {sweep_dir}")
    return len(not_completed)
