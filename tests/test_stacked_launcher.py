"""hydra/launcher=stacked against Hydra's basic launcher: real multiruns in subprocesses, their
run directories compared file by file and number by number."""

import csv
import json
import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import (
    ROOT,
    TRAIN_SCRIPT,
    assert_each_nearest_its_own,
    assert_same_kind,
    cli_env,
    make_config,
    read_metrics,
)
from dlbasics import stacked_runs
from dlbasics.sweeps.callback import grid_jobs
from dlbasics.sweeps.curves import event_dir
from dlbasics.sweeps.record import read_record

group_key = stacked_runs.group_key

# 6 jobs that differ only in member keys: one stack.
SIX_JOBS = ("model=mlp", "data=digits", "seed=0,1,2", "optim.lr=0.001,0.01", "trainer.epochs=2")
# 4 jobs: lr=1e30 diverges, loss=bce on iris (three classes) is refused when the data is read.
FAILING = ("data=iris", "loss=auto,bce", "optim.lr=0.01,1e30", "trainer.epochs=2", "logger=none")
# How long, on how many threads and with how many other jobs a fit ran: how it ran, not what
# it learned.
NOT_RESULTS = ("fit_seconds", "threads", "stacked_with")
STACKING = re.compile(r"Stacking jobs (#\d+(?:, #\d+)*): trained together")


def run_stacked(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """scripts/train.py ``args`` hydra/launcher=stacked, as run_cli runs it."""
    return _finish(start_stacked(*args, cwd=cwd))


def start_stacked(*args: str, cwd: Path = ROOT) -> subprocess.Popen:
    """run_stacked, without waiting for it."""
    return _start(TRAIN_SCRIPT, [*args, "hydra/launcher=stacked"], cwd)


def run_both(sweep_dirs: tuple[Path, Path], sweep: tuple[str, ...]) -> tuple:
    """``sweep`` under the basic launcher and the stacked one, side by side."""
    basic = _start(TRAIN_SCRIPT, ["-m", f"hydra.sweep.dir={sweep_dirs[0]}", *sweep], ROOT)
    stacked = start_stacked("-m", f"hydra.sweep.dir={sweep_dirs[1]}", *sweep)
    return _finish(basic), _finish(stacked)


def _start(script: Path, args: list[str], cwd: Path) -> subprocess.Popen:
    command = [sys.executable, str(script), *args]
    return subprocess.Popen(
        command, cwd=cwd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(process: subprocess.Popen) -> subprocess.CompletedProcess:
    """What the process printed and its exit status, once it has ended."""
    try:
        stdout, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def job_dirs(sweep_dir: Path) -> dict[str, Path]:
    return {p.name: p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()}


def statuses(sweep_dir: Path) -> dict[str, str]:
    return {name: read_record(path).status for name, path in job_dirs(sweep_dir).items()}


def files(run_dir: Path) -> set[str]:
    """The files of a run directory, event files by their folder (their names hold the
    host, the process and the time)."""
    found = set()
    for path in run_dir.rglob("*"):
        if path.is_file():
            name = path.relative_to(run_dir).as_posix()
            found.add(re.sub(r"events\.out\.tfevents\..*$", "events.out.tfevents.*", name))
    return found


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(event_dir(run_dir)), size_guidance={"scalars": 0})
    events.Reload()
    return {
        tag: [(event.step, event.value) for event in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
    }


def expected_stacks(sweep: tuple[str, ...]) -> list[list[int]]:
    """The jobs of a grid sweep that stack, by group_key: each stack of two jobs or more."""
    by_key: dict[str, list[int]] = {}
    for number, overrides in enumerate(grid_jobs(list(sweep), None)):
        key = group_key(make_config(*overrides))
        if key is not None:
            by_key.setdefault(key, []).append(number)
    return [numbers for numbers in by_key.values() if len(numbers) > 1]


def stacks_in(output: str) -> list[list[int]]:
    """The stacks the launcher says it trained, by job number."""
    return [
        [int(number.lstrip("#")) for number in found.split(", ")]
        for found in STACKING.findall(output)
    ]


def log_lines(run_dir: Path) -> list[str]:
    """The lines of a run's train.log, without their time stamps."""
    text = (run_dir / "train.log").read_text()
    return [line.partition("] ")[2] for line in text.splitlines() if line.startswith("[")]


@pytest.fixture(scope="module")
def six_jobs(tmp_path_factory):
    """The same 6-job sweep under the basic launcher and the stacked one."""
    basic, stacked = tmp_path_factory.mktemp("basic"), tmp_path_factory.mktemp("stacked")
    return basic, stacked, *run_both((basic, stacked), SIX_JOBS)


def test_a_sweep_of_member_keys_trains_as_one_stack(six_jobs):
    _, _, basic_run, stacked_run = six_jobs
    assert basic_run.returncode == 0, basic_run.stdout + basic_run.stderr
    assert stacked_run.returncode == 0, stacked_run.stdout + stacked_run.stderr
    assert expected_stacks(SIX_JOBS) == [[0, 1, 2, 3, 4, 5]]
    assert stacks_in(stacked_run.stdout) == [[0, 1, 2, 3, 4, 5]]
    assert "sweep: 6 of 6 jobs completed, 0 failed" in stacked_run.stdout
    assert "Traceback" not in stacked_run.stdout + stacked_run.stderr


def test_stacked_jobs_write_the_files_and_numbers_of_the_basic_launcher(six_jobs):
    basic, stacked, _, _ = six_jobs
    assert sorted(job_dirs(stacked)) == sorted(job_dirs(basic)) == [str(n) for n in range(6)]
    for name, run_dir in job_dirs(stacked).items():
        alone = basic / name
        assert files(run_dir) == files(alone), name
        assert {"train.log", "job.json", "checkpoints/best.pt"} <= files(run_dir)
        for saved in ("config.yaml", "overrides.yaml"):
            assert OmegaConf.load(run_dir / ".hydra" / saved) == OmegaConf.load(
                alone / ".hydra" / saved
            ), (name, saved)
        hydra = OmegaConf.load(run_dir / ".hydra/hydra.yaml").hydra
        assert (hydra.job.num, hydra.runtime.output_dir) == (int(name), str(run_dir))
        assert hydra.runtime.choices["hydra/launcher"] == "stacked"
        assert read_record(run_dir).status == read_record(alone).status == "completed"
        assert read_record(run_dir).overrides == read_record(alone).overrides
        metrics, expected = (
            {key: value for key, value in read_metrics(d).items() if key not in NOT_RESULTS}
            for d in (run_dir, alone)
        )
        assert_same_kind(metrics, expected, f"job {name}: metrics.json")
        preprocessing = [
            json.loads((d / "preprocessing.json").read_text()) for d in (run_dir, alone)
        ]
        assert preprocessing[0] == preprocessing[1], name  # fitted on the same split alike
    # its numbers: those of its own job alone, to rounding (conftest: comparing runs)
    assert_each_nearest_its_own(job_dirs(stacked), job_dirs(basic))


def test_stacked_jobs_log_the_curves_of_the_basic_launcher(six_jobs):
    basic, stacked, _, _ = six_jobs
    for name in job_dirs(stacked):
        expected, found = scalars(basic / name), scalars(stacked / name)
        assert found.keys() == expected.keys() and found["loss/val"][-1][0] == 2, name
        assert_same_kind(
            {tag: [step for step, _ in points] for tag, points in found.items()},
            {tag: [step for step, _ in points] for tag, points in expected.items()},
            f"job {name}: tb",
        )


def test_each_stacked_job_has_a_train_log_of_its_own_lines(six_jobs):
    basic, stacked, _, _ = six_jobs
    for name, run_dir in job_dirs(stacked).items():
        lines = log_lines(run_dir)
        assert lines[0] == log_lines(basic / name)[0]  # e.g. "job 3: seed=1 optim.lr=0.01"
        assert f"run directory: {run_dir}" in lines
        for other in job_dirs(stacked).keys() - {name}:
            assert not any(line.startswith(f"job {other}:") for line in lines), (name, other)
            assert f"run directory: {stacked / other}" not in lines, (name, other)


def test_report_reads_a_stacked_sweep_as_a_basic_one(six_jobs, tmp_path):
    basic, stacked, _, _ = six_jobs
    tables = {}
    for sweep_dir in (basic, stacked):
        out = tmp_path / sweep_dir.name
        result = subprocess.run(
            [sys.executable, str(ROOT / "scripts/report.py"), str(sweep_dir), "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "6 jobs: 6 completed" in result.stdout
        tables[sweep_dir] = {row["job"]: row for row in _csv(out / "report.csv")}
    for job, row in tables[stacked].items():
        alone = tables[basic][job]
        assert row["status"] == alone["status"] == "completed"
        for column in ("final_val_acc", "test_acc", "test_loss", "best_val_loss"):
            assert math.isfinite(float(row[column])) and math.isfinite(float(alone[column]))


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path) as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def failing(tmp_path_factory):
    """A sweep with failing jobs under both launchers."""
    basic, stacked = tmp_path_factory.mktemp("basic"), tmp_path_factory.mktemp("stacked")
    return basic, stacked, *run_both((basic, stacked), FAILING)


def test_failed_jobs_of_a_stack_are_recorded_and_the_others_complete(failing):
    basic, stacked, basic_run, stacked_run = failing
    assert stacks_in(stacked_run.stdout) == expected_stacks(FAILING) == [[0, 1], [2, 3]]
    expected = {"0": "completed", "1": "failed", "2": "failed", "3": "failed"}
    assert statuses(stacked) == statuses(basic) == expected
    for name in expected:
        assert read_record(stacked / name).error == read_record(basic / name).error
    assert read_record(stacked / "1").error.startswith("training diverged")
    assert "loss=bce needs a binary task" in read_record(stacked / "2").error
    assert "loss=bce needs a binary task" in (stacked / "2" / "train.log").read_text()
    results = [
        {key: value for key, value in read_metrics(d / "0").items() if key not in NOT_RESULTS}
        for d in (stacked, basic)
    ]
    assert_same_kind(*results, "job 0")
    # The exit status and the summary of the basic launcher
    assert stacked_run.returncode == basic_run.returncode == 1, stacked_run.stdout
    assert "sweep: 1 of 4 jobs completed, 3 failed" in stacked_run.stdout
    assert "Traceback" not in stacked_run.stdout + stacked_run.stderr


def test_resume_skips_completed_jobs_and_stacks_the_others_again(failing):
    _, stacked, _, _ = failing
    first_metrics = (stacked / "0/metrics.json").stat().st_mtime_ns
    result = run_stacked("-m", f"hydra.sweep.dir={stacked}", *FAILING, "--resume")
    assert result.returncode == 1, result.stdout + result.stderr
    skipped = [line for line in result.stdout.splitlines() if line.endswith("skipped")]
    assert len(skipped) == 1 and skipped[0].startswith("job 0 ")
    assert (stacked / "0/metrics.json").stat().st_mtime_ns == first_metrics
    # Job 1 has no partner left to stack with: it runs alone; the refused pair stacks again.
    assert stacks_in(result.stdout) == [[2, 3]]
    assert statuses(stacked) == {"0": "completed", "1": "failed", "2": "failed", "3": "failed"}


@pytest.mark.slow  # an Optuna study: the slowest of these
def test_an_optuna_search_stacks_the_trials_of_a_batch_and_records_refused_ones(tmp_path):
    # One batch of 4 trials; a learning rate of -1 is refused by validate, as a job's config.
    result = run_stacked(
        "-m",
        "hparams_search=mlp_digits",
        f"hydra.sweep.dir={tmp_path}",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=4",
        "optim.lr=choice(0.01,0.02,-1.0)",
        "optim=adam",
        "model.hidden=[32]",
        "reg.dropout=0.0",
        "trainer.epochs=2",
        "logger=none",
    )
    found = statuses(tmp_path)
    failed = sorted(name for name, status in found.items() if status == "failed")
    completed = sorted(name for name, status in found.items() if status == "completed")
    assert len(found) == 4 and failed and len(completed) >= 2, result.stdout + result.stderr
    assert result.returncode == 1
    for name in failed:
        assert read_record(tmp_path / name).error == (
            "optim.lr=-1.0 is not allowed: a learning rate > 0, and finite."
        )
    assert stacks_in(result.stdout) == [[int(name) for name in completed]]
    results = OmegaConf.load(tmp_path / "optimization_results.yaml")
    best = min(read_metrics(tmp_path / name)["best_monitor"] for name in completed)
    assert results.best_value == pytest.approx(best)


# Two seeds of a run long enough to be stopped while it trains.
LONG = (
    "-m",
    "data=iris",
    "trainer=batch",
    "trainer.early_stopping.enabled=false",
    "trainer.checkpoint_every=10",
    "trainer.epochs=3000",
    "seed=0,1",
)


def _training(tmp_path) -> bool:
    """Whether job 0 of the sweep in tmp_path says it trains, stacked."""
    logs = list(tmp_path.glob("multirun/*/*/0/train.log"))
    return bool(logs) and "parameters), stacked with" in logs[0].read_text()


@pytest.mark.slow
def test_a_stopped_stack_ends_the_sweep_and_resume_finishes_it(tmp_path):
    process = start_stacked(*LONG, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 240
        while not _training(tmp_path):  # the group's fit has begun
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
    finally:
        stopped = _finish(process)
    output = stopped.stdout + stopped.stderr
    assert stopped.returncode == 128 + signal.SIGTERM, output
    [sweep_dir] = tmp_path.glob("multirun/*/*")
    found = statuses(sweep_dir)
    assert found == {"0": "interrupted", "1": "interrupted"}, output
    assert "run the same command with --resume" in output

    result = run_stacked(*LONG, "--resume", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert statuses(sweep_dir) == {"0": "completed", "1": "completed"}
    assert read_metrics(sweep_dir / "0")["epochs_run"] == 3000
