"""A run directory belongs to one process at a time.

A run (and each job of a sweep) holds an exclusive lock on ``<run dir>/.lock`` while it trains
and writes: a second process started in the same directory stops at once, naming the holder,
instead of both writing and the last one's files silently winning. The lock is ``flock``'s,
which the kernel drops when its process ends, however it ends; the file also says who holds
it (host and pid), for the message and for locks that ``flock`` cannot see: a lock left by a
process of another host (on a shared file system) is not taken over, and the message says how
to free it.
"""

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from dlbasics.errors import OutputError

LOCK_FILE = ".lock"


class RunDirectoryLock:
    """``with RunDirectoryLock(run_dir):`` — this process alone writes ``run_dir``."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK_FILE
        self.fd: int | None = None

    def __enter__(self) -> "RunDirectoryLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputError(
                f"the run directory {self.path.parent} is in use by {self._holder()}; "
                "choose another with hydra.run.dir=… (or wait for that run to end)."
            ) from None
        holder = _read(fd)
        here = socket.gethostname()
        if holder and holder.get("host") != here:
            os.close(fd)
            raise OutputError(
                f"the run directory {self.path.parent} was taken by {_describe(holder)}, "
                f"which this host ({here}) cannot see; if that run has ended, delete "
                f"{self.path} and start again, or choose another with hydra.run.dir=…"
            )
        # A record of this host is a lock its process left when it was killed: flock is ours.
        os.ftruncate(fd, 0)
        record = {"host": here, "pid": os.getpid(), "since": time.time()}
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self.fd = fd
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)  # an empty file: nobody holds it
            os.close(self.fd)  # and with it the flock
            self.fd = None

    def _holder(self) -> str:
        try:
            with open(self.path, "rb") as file:
                holder = json.loads(file.read() or b"{}")
        except (OSError, ValueError):
            holder = {}
        return _describe(holder) if holder else "another process"


def _read(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}


def _describe(holder: dict) -> str:
    since = holder.get("since")
    when = f", since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since))}" if since else ""
    return f"pid {holder.get('pid')} on host {holder.get('host')}{when}"
