"""`torchrun --nproc_per_node=2 scripts/train.py …`: two real processes (gloo on the loopback)
train as one process would with the same global batch, stop together, and write one run."""

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

from conftest import TRAIN_SCRIPT, cli_env, make_config, read_metrics, train_in_process
from dlbasics.checkpoint import load_checkpoint
from dlbasics.data import build_data
from dlbasics.distributed import check_batch_fits_ranks
from dlbasics.errors import ConfigError
from dlbasics.losses import build_objective
from dlbasics.models import build_model
from dlbasics.trainer import Trainer

# An MLP that overfits 48 noisy points: early stopping ends it after 9 epochs. Batches of 15
# split 8 + 7 between two ranks, and each epoch's last batch of 3 splits 2 + 1: the average
# is only right when each rank's gradient counts by its share of the batch.
OVERFITS = [
    "data=moons",
    "data.n_samples=80",
    "data.noise=0.45",
    "model.hidden=[256,256]",
    "optim.lr=0.01",
    "trainer.epochs=400",
    "trainer.batch_size=15",
    "trainer.early_stopping.patience=5",
]
RANK_STOPPED = re.compile(r"^rank (\d): (\w+) after (\d+) epochs, (\d+) steps$", re.MULTILINE)


def start_torchrun(cwd, *args: str, nproc: int = 2) -> subprocess.Popen:
    """torchrun on this machine alone (--standalone: a free port on the loopback)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return subprocess.Popen(
        [*command, f"--nproc_per_node={nproc}", str(TRAIN_SCRIPT), *args],
        cwd=cwd,
        env={**cli_env(), "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextmanager
def torchrun_started(cwd, *args: str, nproc: int = 2) -> Iterator[subprocess.Popen]:
    """torchrun running in the background; on leaving, it and its ranks are ended."""
    launcher = start_torchrun(cwd, *args, nproc=nproc)
    try:
        yield launcher
    finally:
        if launcher.poll() is None:  # the test failed while it ran
            ranks = _worker_pids(launcher).values()
            launcher.terminate()  # passed on to the ranks; torchrun kills them after 30 s
            try:
                launcher.wait(timeout=60)
            except subprocess.TimeoutExpired:  # the ranks run in sessions of their own
                for pid in [*ranks, launcher.pid]:
                    os.kill(pid, signal.SIGKILL)


def torchrun(cwd, *args: str, nproc: int = 2, timeout: float = 300) -> tuple[int, str, str]:
    with torchrun_started(cwd, *args, nproc=nproc) as launcher:
        stdout, stderr = launcher.communicate(timeout=timeout)
    return launcher.returncode, stdout, stderr


def two_ranks_and_one(tmp_path, *args: str) -> tuple[dict, dict, str]:
    """The metrics of a run on two ranks (run directory tmp_path/run, started in tmp_path/cwd)
    and of the same run in this one process, and the two ranks' output."""
    (tmp_path / "cwd").mkdir()
    returncode, stdout, stderr = torchrun(
        tmp_path / "cwd", f"hydra.run.dir={tmp_path / 'run'}", *args
    )
    assert returncode == 0, stderr
    one = train_in_process(tmp_path / "one", *args, "logger=none")
    return read_metrics(tmp_path / "run"), one, stdout


def files_under(directory) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def test_two_ranks_train_as_one_process_stop_together_and_write_one_run(tmp_path):
    two, one, stdout = two_ranks_and_one(tmp_path, *OVERFITS)
    run_dir = tmp_path / "run"

    # Both ranks stopped early on the same epoch, after the same steps.
    stopped = {rank: rest for rank, *rest in RANK_STOPPED.findall(stdout)}
    assert stopped.keys() == {"0", "1"}, stdout
    assert stopped["0"] == stopped["1"] == ["early_stopping", "9", "36"]

    # The same run in one process: the same steps and epochs, the same losses up to rounding.
    assert two["world_size"] == 2 and one["world_size"] == 1
    for key in ("steps", "epochs_run", "stop_reason", "best_epoch", "n_train"):
        assert two[key] == one[key], key
    for key in ("train_loss", "val_loss", "best_val_loss", "test_loss"):
        assert two[key] == pytest.approx(one[key], rel=1e-5), key
    for key in ("train_acc", "val_acc", "test_acc"):
        assert two[key] == one[key], key

    # One set of artefacts, written by rank 0; none where torchrun was started.
    assert files_under(tmp_path / "cwd") == []
    written = files_under(run_dir)
    events = [name for name in written if name.startswith("tb/")]
    # TensorBoard's files (scalars, and the HParams summary beside them) of one process
    writers = {name.split(".")[-2] for name in events}  # …tfevents.<time>.<host>.<pid>.<n>
    assert events and len(writers) == 1, written
    assert set(written) - set(events) == {
        ".lock",  # rank 0's hold on the directory, released (empty)
        ".hydra/config.yaml",
        ".hydra/hydra.yaml",
        ".hydra/overrides.yaml",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
        "metrics.json",
        "preprocessing.json",
        "train.log",
    }
    assert "rank 1" not in (run_dir / "train.log").read_text()

    # best.pt loads into a model built in one process (no DDP `module.` prefixes) and scores
    # on the test split what the two ranks measured together.
    cfg = make_config(*OVERFITS)
    data = build_data(cfg.data)
    model = build_model(cfg, data.spec)
    model.load_state_dict(load_checkpoint(run_dir / "checkpoints" / "best.pt")["model"])
    objective = build_objective(cfg.loss.name, "auto", data.spec, cfg.reg, "mlp")
    trainer = Trainer(cfg.trainer, cfg.optim, cfg.schedule, torch.device("cpu"))
    test_loss, test_acc = trainer.evaluate(model, data.x_test, data.y_test, objective)
    assert (test_loss, test_acc) == (pytest.approx(two["test_loss"], rel=1e-6), two["test_acc"])


@pytest.mark.parametrize(
    "overrides, n_train, ranks, words",
    [
        (["trainer=sgd"], 90, 2, ["trainer.batch_size=1", "trainer=sgd", "2 ranks"]),
        (["trainer.batch_size=3"], 90, 4, ["trainer.batch_size=3", "4 ranks", "global"]),
        (["data=and", "trainer=batch"], 4, 8, ["a batch of 4 samples", "8 ranks"]),
    ],
)
def test_a_batch_smaller_than_the_ranks_is_refused_naming_the_key(overrides, n_train, ranks, words):
    with pytest.raises(ConfigError) as refused:
        check_batch_fits_ranks(make_config(*overrides).trainer, n_train, ranks)
    for word in words:
        assert word in str(refused.value), (word, str(refused.value))
    check_batch_fits_ranks(make_config("trainer.batch_size=4").trainer, n_train, 4)  # fits


def test_a_sweep_under_torchrun_is_refused_with_one_line(tmp_path):
    env = {**cli_env(), "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2"}
    result = subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT), "-m", f"hydra.sweep.dir={tmp_path}", "seed=0,1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: -m (a sweep) under torchrun")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "0" / "metrics.json").exists()


@pytest.mark.slow
def test_the_perceptron_rule_averages_over_two_ranks_as_over_one_batch(tmp_path):
    """The perceptron writes its .grad itself (no autograd for DDP to hook): the ranks
    average what it wrote, weighted by their parts of the batch (341 samples in batches of 25
    split 13 + 12)."""
    args = [
        "model=perceptron",
        "data=breast_cancer",
        "optim=sgd",
        "optim.lr=0.1",
        "trainer.batch_size=25",
        "trainer.epochs=20",
        "trainer.early_stopping.enabled=false",
        "logger=none",
    ]
    two, one, _ = two_ranks_and_one(tmp_path, *args)
    assert (two["steps"], two["epochs_run"]) == (one["steps"], one["epochs_run"]) == (280, 20)
    for key in ("train_loss", "val_loss", "test_loss"):
        assert two[key] == pytest.approx(one[key], rel=1e-5), key
    assert (two["train_acc"], two["test_acc"]) == (one["train_acc"], one["test_acc"])


@pytest.mark.slow
def test_on_nan_skip_skips_the_same_steps_on_every_rank(tmp_path):
    """A non-finite loss on either rank's part of a batch makes both skip that step, as one
    process skips the whole batch (were they to decide alone, their weights would part)."""
    args = [
        "data=iris",
        "optim=sgd",
        # Overflows to inf at the second step: a loss that grows finite but huge first would
        # stop the run as diverged (EXPLODED) before any step is skipped.
        "optim.lr=1e15",
        "trainer.batch_size=16",
        "trainer.epochs=30",
        "trainer.on_nan=skip",
        "logger=none",
    ]
    two, one, stdout = two_ranks_and_one(tmp_path, *args)
    assert one["skipped_steps"] > 0
    for key in ("skipped_steps", "steps", "epochs_run", "stop_reason", "test_acc"):
        assert two[key] == one[key], key
    assert "every step of epoch 2 had a non-finite loss" in stdout


def _worker_pids(launcher: subprocess.Popen) -> dict[int, int]:
    """rank → pid of the processes torchrun started (its children, with RANK in their
    environment)."""
    children = open(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read().split()
    ranks = {}
    for pid in map(int, children):
        try:
            environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        except FileNotFoundError:  # ended meanwhile
            continue
        for variable in environ:
            if variable.startswith(b"RANK="):
                ranks[int(variable.partition(b"=")[2])] = pid
    return ranks


def _wait_for_epoch(launcher: subprocess.Popen) -> None:
    for line in launcher.stdout:
        if line.startswith("epoch "):
            return
    raise AssertionError("the run ended before its first epoch")


LONG_RUN = [
    "data=digits",
    "trainer.epochs=100000",
    "trainer.early_stopping.enabled=false",
    "logger=none",
]


@pytest.mark.slow
def test_a_rank_that_stops_answering_fails_the_job_instead_of_hanging_it(tmp_path):
    run = f"hydra.run.dir={tmp_path / 'run'}"
    with torchrun_started(tmp_path, run, "trainer.distributed_timeout=5", *LONG_RUN) as launcher:
        _wait_for_epoch(launcher)
        os.kill(_worker_pids(launcher)[1], signal.SIGSTOP)  # frozen: alive, but never answers
        # Rank 0 gives up after 5 s; torchrun then kills the frozen rank (after its 30 s grace).
        _, stderr = launcher.communicate(timeout=240)
    assert launcher.returncode != 0
    assert "Timed out waiting 5000ms" in stderr


@pytest.mark.slow
def test_sigterm_stops_every_rank_at_the_epoch_end_and_resume_finishes_the_same_run(tmp_path):
    """torchrun passes the signal to each rank; they agree to stop after the same epoch,
    rank 0 saves, and a resumed torchrun run ends as an uninterrupted one does."""
    args = ["data=digits", "trainer.epochs=30", "reg=dropout", "reg.dropout=0.2", "logger=none"]
    returncode, _, stderr = torchrun(tmp_path, f"hydra.run.dir={tmp_path / 'straight'}", *args)
    assert returncode == 0, stderr

    with torchrun_started(tmp_path, f"hydra.run.dir={tmp_path / 'run'}", *args) as launcher:
        _wait_for_epoch(launcher)
        time.sleep(0.5)
        launcher.send_signal(signal.SIGTERM)
        stdout, _ = launcher.communicate(timeout=120)
    stopped = {rank: rest for rank, *rest in RANK_STOPPED.findall(stdout)}
    assert stopped["0"] == stopped["1"] and stopped["0"][0] == "interrupted", stdout
    interrupted = read_metrics(tmp_path / "run")
    assert (interrupted["stop_reason"], interrupted["stop_signal"]) == ("interrupted", "SIGTERM")
    assert interrupted["epochs_run"] < 30

    resume = f"trainer.resume={tmp_path / 'run'}"
    returncode, _, stderr = torchrun(
        tmp_path, f"hydra.run.dir={tmp_path / 'resumed'}", *args, resume
    )
    assert returncode == 0, stderr
    straight, resumed = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "resumed")
    differ = {"fit_seconds", "resumed_from"}
    assert {k: v for k, v in resumed.items() if k not in differ} == {
        k: v for k, v in straight.items() if k not in differ
    }

    # The two ranks' last.pt also continues in one process (its dropout draws differ).
    alone = train_in_process(tmp_path / "alone", *args, resume)
    assert alone["stop_reason"] != "interrupted" and alone["world_size"] == 1
