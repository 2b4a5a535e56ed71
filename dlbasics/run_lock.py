"""A run directory belongs to one process at a time.

A run (and each job of a sweep) holds an exclusive lock on ``<run dir>/.lock`` while it trains
and writes: a second process started in the same directory stops at once, naming the holder,
instead of both writing and the last one's files silently winning. The lock is ``flock``'s,
which the kernel drops when its process ends, however it ends; the file also says who holds
it (host and pid), for the message and for locks that ``flock`` cannot see: a lock left by a
process of another host (on a shared file system) is not taken over, and the message says how
to free it.

The lock is taken before anything is written into the directory: ``RunDirectoryGuard``, a
Hydra callback, takes it when a run starts, before Hydra writes ``.hydra/`` and opens the
run's log file (so a refused second process leaves the first run's files as they were), and
checks the config there too, so that a run refused for a config mistake creates no directory at
all. The run that starts there then takes that lock over (once: a second holder in the same
process is refused as any other).
"""

import fcntl
import json
import os
import shutil
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from dlbasics.cli import fail, on_refusal, unwritable
from dlbasics.config import task_config, validate
from dlbasics.errors import OutputError, UserError

LOCK_FILE = ".lock"
# Locks taken for the run about to start in a directory (RunDirectoryGuard), by the lock file:
# its descriptor, which that run's RunDirectoryLock takes over.
_HANDED_OVER: dict[Path, int] = {}


class RunDirectoryLock:
    """``with RunDirectoryLock(run_dir):`` — this process alone writes ``run_dir``."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK_FILE
        self.fd: int | None = None

    def __enter__(self) -> "RunDirectoryLock":
        if self.path.resolve() in _HANDED_OVER:  # taken for this run as it started
            self.fd = _HANDED_OVER.pop(self.path.resolve())
            return self
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

    def hand_over(self) -> None:
        """Leave the lock held for the next RunDirectoryLock of this directory to take over."""
        assert self.fd is not None
        _HANDED_OVER[self.path.resolve()] = self.fd
        self.fd = None

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


class RunDirectoryGuard(Callback):
    """A Hydra callback (configs/config.yaml, hydra.callbacks.run_directory) for a run, not a
    sweep: when the run starts, before Hydra creates its directory, writes ``.hydra/`` and
    opens its log file, the config is checked (a mistake exits 2 with nothing written) and
    the directory is locked (a directory another process holds exits 2 with its files left as
    they were). A run refused later, while its data is read, leaves no directory behind that
    it made itself and wrote nothing of its own into."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 alone writes
            return
        run_dir = Path(str(OmegaConf.select(config, "hydra.run.dir")))  # as run_job names it
        made = [d for d in (run_dir, *run_dir.parents) if not d.exists()]  # innermost first
        on_refusal(lambda: _remove_if_only_started(made))
        try:
            validate(task_config(config))
            RunDirectoryLock(run_dir).__enter__().hand_over()  # to the run, which releases it
        except UserError as error:
            fail(str(error))
        except OSError as error:  # the directory cannot be made
            fail(unwritable(error))


# What a run refused before it trained has in its directory: Hydra's record of its config and
# its log, and the lock.
STARTED_ONLY = {".hydra", "train.log", LOCK_FILE}


def _remove_if_only_started(made: list[Path]) -> None:
    """Remove the directories ``made`` (innermost first) by a run that was refused, as long as
    they hold nothing but what starting it wrote."""
    for directory in made:
        if not directory.is_dir():
            continue
        if directory == made[0]:
            if {entry.name for entry in directory.iterdir()} - STARTED_ONLY:
                return  # it wrote more: its work is kept
            shutil.rmtree(directory)
        elif not any(directory.iterdir()):
            directory.rmdir()  # a date directory, outputs/: empty once the run has gone
