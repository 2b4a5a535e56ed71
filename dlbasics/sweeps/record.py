"""``job.json``: what happened to one job of a sweep, kept in the job's run directory.

A job's status goes ``running`` → ``completed`` | ``failed`` | ``interrupted``. A job whose
process was killed outright (SIGKILL, a lost node) stays ``running`` on disk; ``live_status``
tells it from one that is still at work by asking whether its process is alive.
"""

import json
import os
import socket
from dataclasses import asdict, dataclass, fields
from pathlib import Path

JOB_FILE = "job.json"

RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
INTERRUPTED = "interrupted"
UNFINISHED = "unfinished"  # recorded as running, but its process is gone


@dataclass
class JobRecord:
    status: str
    overrides: list[str]  # the job's own command-line overrides, as Hydra passed them
    job: int | None = None  # Hydra's job number within the sweep
    pid: int | None = None
    host: str | None = None
    started: float | None = None  # seconds since the epoch
    seconds: float | None = None  # wall time of the job, set when it ends
    error: str | None = None  # one paragraph: why it failed
    traceback: str | None = None  # for failures that are not the user's mistake


def new_record(overrides: list[str], job: int | None, started: float) -> JobRecord:
    return JobRecord(
        status=RUNNING,
        overrides=list(overrides),
        job=job,
        pid=os.getpid(),
        host=socket.gethostname(),
        started=started,
    )


def write_record(run_dir: Path, record: JobRecord) -> None:
    from dlbasics.checkpoint import write_json  # imports torch: not for readers of records

    write_json(asdict(record), run_dir / JOB_FILE)  # atomic: a reader never sees half a file


def read_record(run_dir: Path) -> JobRecord | None:
    try:
        data = json.loads((run_dir / JOB_FILE).read_text())
    except (OSError, ValueError):
        return None
    known = {f.name for f in fields(JobRecord)}
    return JobRecord(**{key: value for key, value in data.items() if key in known})


def live_status(record: JobRecord) -> str:
    """The recorded status, except that a ``running`` job whose process on this host has gone
    is ``unfinished``. (A job on another host cannot be asked; it stays ``running``.)"""
    if record.status != RUNNING or record.pid is None or record.host != socket.gethostname():
        return record.status
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return UNFINISHED
    except PermissionError:  # alive, under another user
        pass
    return RUNNING
