"""One process writes a run directory at a time; temporary files are removed only when their
writer is provably gone (dlbasics/run_lock.py, checkpoint.atomic_write)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import read_metrics, run_cli, start_cli, train_in_process
from dlbasics.checkpoint import HOST, save_checkpoint
from dlbasics.errors import OutputError
from dlbasics.run_lock import LOCK_FILE, RunDirectoryLock

LONG = ["data=iris", "trainer.epochs=100000", "trainer.early_stopping.enabled=false"]


def test_a_second_process_in_a_run_directory_exits_2_and_a_killed_ones_lock_is_taken_over(
    tmp_path,
):
    first = start_cli(f"hydra.run.dir={tmp_path}", *LONG, "trainer.checkpoint_every=1")
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "checkpoints" / "last.pt").exists():  # it is training
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
        first.send_signal(signal.SIGSTOP)  # its files stand still while the second tries
        written = {
            p: p.read_bytes() for p in [*(tmp_path / ".hydra").iterdir(), tmp_path / "train.log"]
        }
        second = run_cli(f"hydra.run.dir={tmp_path}", "data=iris", "trainer.epochs=1", "seed=3")
        assert second.returncode == 2, second.stderr
        assert second.stderr.startswith(f"error: the run directory {tmp_path} is in use by ")
        assert f"pid {first.pid} on host " in second.stderr
        # refused before Hydra wrote anything: the first run's record and log as they were
        assert {p: p.read_bytes() for p in written} == written
        first.send_signal(signal.SIGCONT)
        assert first.poll() is None  # the first run goes on
        first.send_signal(signal.SIGKILL)  # and dies without releasing anything itself
        first.wait(timeout=60)
    finally:
        first.kill()
        first.communicate()
    third = run_cli(f"hydra.run.dir={tmp_path}", "data=iris", "trainer.epochs=1", "logger=none")
    assert third.returncode == 0, third.stderr
    assert read_metrics(tmp_path)["epochs_run"] == 1
    assert (tmp_path / LOCK_FILE).read_text() == ""  # released at the end


def test_a_lock_of_another_host_is_not_taken_over(tmp_path):
    (tmp_path / LOCK_FILE).write_text(json.dumps({"host": "elsewhere", "pid": 4242}))
    with pytest.raises(OutputError, match=r"taken by pid 4242 on host elsewhere.*delete"):
        train_in_process(tmp_path, "data=and", "trainer.epochs=1", "logger=none")
    assert not (tmp_path / "metrics.json").exists()


def test_the_lock_is_held_while_the_run_writes_and_then_released(tmp_path):
    with RunDirectoryLock(tmp_path):
        with pytest.raises(OutputError, match=f"pid {os.getpid()} on host"):
            RunDirectoryLock(tmp_path).__enter__()  # one process, two holders: refused too
    with RunDirectoryLock(tmp_path):  # free again
        pass


def test_a_checkpoint_write_removes_only_temporary_files_whose_writer_is_gone(tmp_path):
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = tmp_path / f".last.pt.{HOST}.{finished.stdout.strip()}.tmp"
    alive = tmp_path / f".last.pt.{HOST}.{os.getppid()}.tmp"  # being written by a live process
    elsewhere = tmp_path / ".last.pt.another_host.1.tmp"  # pids of other hosts mean nothing here
    for path in (dead, alive, elsewhere):
        path.write_bytes(b"partial")
    save_checkpoint({"model": {}}, tmp_path / "last.pt")
    assert not dead.exists() and alive.exists() and elsewhere.exists()
    assert (tmp_path / "last.pt").exists()


@pytest.mark.parametrize(
    "mistake",
    [["optim.lr=-1"], ["data=iris", "trainer.batch_size=5000"]],
    ids=["in-the-config", "found-reading-the-data"],
)
def test_a_refused_run_leaves_no_directory(mistake, tmp_path):
    """Refused with exit 2 before training: no outputs/, no date directory, no run directory."""
    result = run_cli(*mistake, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
