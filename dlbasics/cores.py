"""How many CPU cores a run can have to itself: what trainer.threads=auto gives a large model.

Threads beyond the cores that are free do not add speed, they take it away: a thread waiting
for a core that another process holds stalls every other thread of the same matrix product at
its end. So "every core" is the cores this process may run on (its CPU affinity, which
taskset, a container or SLURM may narrow) less those other processes are running on when the
run starts (another job of a parallel sweep, anything else on the machine).
"""

import os
import time
from pathlib import Path

# The processes running besides this one are counted several times, a few milliseconds apart,
# and the fewest seen is taken: a process that runs for a moment does not count, one that
# keeps a core busy does.
READS = 5
READ_INTERVAL = 0.005  # seconds


def allowed_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def busy_elsewhere() -> int:
    """Threads of other processes running now: the kernel's count of runnable threads
    (/proc/loadavg) less this process' own, the fewest of READS reads. 0 where the system
    does not give the count (not Linux)."""
    counts = []
    for read in range(READS):
        if read:
            time.sleep(READ_INTERVAL)
        try:
            running = int(Path("/proc/loadavg").read_text().split()[3].partition("/")[0])
        except (OSError, ValueError, IndexError):
            return 0
        counts.append(running - running_here())
    return max(0, min(counts))


def running_here() -> int:
    """Threads of this process running now (this one, reading, among them)."""
    running = 0
    for stat in Path("/proc/self/task").glob("*/stat"):
        try:
            running += stat.read_text().rpartition(")")[2].split()[0] == "R"
        except (OSError, IndexError):
            continue  # a thread that ended meanwhile
    return running


def free_cores(limit: int) -> int:
    """The cores, at most ``limit``, that this process may use and no other is busy on: at
    least one."""
    return max(1, min(limit, allowed_cores() - busy_elsewhere()))
