"""Sweeps as a user runs them: real Hydra multiruns in subprocesses, read back from disk."""

import csv
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
from tensorboard.plugins.hparams import plugin_data_pb2

from conftest import CONFIGS, ROOT, TRAIN_SCRIPT, read_metrics, run_cli
from dlbasics.errors import ConfigError
from dlbasics.sweeps.callback import grid_jobs
from dlbasics.sweeps.curves import plot_file_names
from dlbasics.sweeps.overrides import job_values, swept_keys
from dlbasics.sweeps.record import read_record
from dlbasics.sweeps.report import build_report, write_report_files
from dlbasics.sweeps.results import JobResult, choose_ranking, rank_jobs
from dlbasics.sweeps.resume import resume_argv

# 8 jobs: data × loss × seed. loss=bce on iris (three classes) fails by design, twice.
SWEEP = ("data=xor,iris", "loss=auto,bce", "seed=0,1", "trainer.epochs=4")
FAILING_BY_DESIGN = {"6", "7"}  # the iris/bce jobs: the product's order is the order given


def job_dirs(sweep_dir: Path) -> dict[str, Path]:
    return {p.name: p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()}


def statuses(sweep_dir: Path) -> dict[str, str]:
    found = {name: read_record(path) for name, path in job_dirs(sweep_dir).items()}
    return {name: record.status for name, record in found.items() if record is not None}


def start_cli(*args: str, cwd: Path = ROOT) -> subprocess.Popen:
    """Start scripts/train.py as run_cli does, without waiting for it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(TRAIN_SCRIPT), *args]
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    sweep_dir = tmp_path_factory.mktemp("sweep")
    result = run_cli("-m", f"hydra.sweep.dir={sweep_dir}", *SWEEP)
    return sweep_dir, result


def test_every_job_gets_the_run_directory_of_a_single_run(sweep):
    sweep_dir, _ = sweep
    jobs = job_dirs(sweep_dir)
    assert sorted(jobs, key=int) == [str(n) for n in range(8)]
    for name, run_dir in jobs.items():
        overrides = list(OmegaConf.load(run_dir / ".hydra/overrides.yaml"))
        assert read_record(run_dir).overrides == overrides
        if name in FAILING_BY_DESIGN:
            continue
        for artefact in ("metrics.json", "train.log", "checkpoints/best.pt", "checkpoints/last.pt"):
            assert (run_dir / artefact).is_file(), (name, artefact)
        assert read_metrics(run_dir)["epochs_run"] == 4
        assert read_record(run_dir).status == "completed"


def test_a_failing_job_is_recorded_and_the_sweep_goes_on(sweep):
    sweep_dir, result = sweep
    assert result.returncode == 1, result.stdout + result.stderr  # some jobs failed
    assert {name for name, status in statuses(sweep_dir).items() if status == "failed"} == (
        FAILING_BY_DESIGN
    )
    for name in FAILING_BY_DESIGN:
        record = read_record(sweep_dir / name)
        assert "loss=bce needs a binary task" in record.error
        assert "loss=bce needs a binary task" in (sweep_dir / name / "train.log").read_text()
        assert not (sweep_dir / name / "metrics.json").exists()
    assert "6 of 8 jobs completed, 2 failed" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_tensorboard_over_the_sweep_root_compares_every_job_with_its_hparams(sweep):
    sweep_dir, _ = sweep
    runs = EventMultiplexer().AddRunsFromDirectory(str(sweep_dir))  # what `tensorboard` does
    runs.Reload()
    completed = {name for name in job_dirs(sweep_dir) if name not in FAILING_BY_DESIGN}
    # Each run named by its job's overrides (Hydra's override_dirname: sorted, comma-joined)
    names = {name: ",".join(sorted(read_record(sweep_dir / name).overrides)) for name in completed}
    assert set(runs.Runs()) == {f"{name}/tb/{names[name]}" for name in completed}
    assert names["0"] == "data=xor,loss=auto,seed=0,trainer.epochs=4"
    for name in completed:
        overrides = dict(line.split("=") for line in read_record(sweep_dir / name).overrides)
        run = f"{name}/tb/{names[name]}"
        assert [event.step for event in runs.Scalars(run, "loss/val")] == [1, 2, 3, 4]
        test_acc = read_metrics(sweep_dir / name)["test_acc"]
        assert runs.Scalars(run, "final/test_acc")[0].value == pytest.approx(test_acc, rel=1e-5)
        content = runs.PluginRunToTagToContent("hparams")[run]
        # No experiment summary: TensorBoard then puts the columns whose values differ first.
        assert set(content) == {"_hparams_/session_start_info", "_hparams_/session_end_info"}
        hparams = plugin_data_pb2.HParamsPluginData.FromString(
            content["_hparams_/session_start_info"]
        ).session_start_info.hparams
        assert hparams["data.name"].string_value == overrides["data"]
        assert hparams["loss.name"].string_value == overrides["loss"]
        assert hparams["seed"].number_value == int(overrides["seed"])
        assert hparams["model.name"].string_value == "mlp"
        assert hparams["optim.lr"].number_value == pytest.approx(0.001)
        assert hparams["trainer.early_stopping.enabled"].WhichOneof("kind") == "bool_value"
        assert not any(key.startswith(("diag.", "logger.")) for key in hparams)


def test_tensorboards_hparams_tab_shows_the_swept_keys_first(sweep):
    """What TensorBoard's HParams plugin makes of the sweep's runs, through its own backend."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context

    sweep_dir, _ = sweep
    runs = plugin_event_multiplexer.EventMultiplexer()
    runs.AddRunsFromDirectory(str(sweep_dir))
    runs.Reload()
    provider = data_provider.MultiplexerDataProvider(runs, str(sweep_dir))
    tb = base_plugin.TBContext(logdir=str(sweep_dir), data_provider=provider, multiplexer=runs)
    plugin, request = backend_context.Context(tb), context.RequestContext()
    experiment = plugin.experiment_from_metadata(
        request,
        "",
        True,
        plugin.hparams_metadata(request, ""),
        plugin.hparams_from_data_provider(request, "", None),
        hparams_limit=5,  # the columns it shows at first
    )
    shown = {info.name: info for info in experiment.hparam_infos}
    # seed=0,1 sets data.seed and trainer.seed too: they differ as well
    assert list(shown) == ["data.name", "data.seed", "loss.name", "seed", "trainer.seed"]
    assert all(info.differs for info in shown.values())
    assert shown["seed"].type == api_pb2.DATA_TYPE_FLOAT64
    metrics = {info.name.tag for info in experiment.metric_infos}
    assert {"final/test_acc", "final/test_loss", "loss/val"} <= metrics


def test_each_jobs_first_line_names_every_swept_key(sweep):
    _, result = sweep
    lines = result.stdout.splitlines()
    # The line after Hydra's own (which lists every override of the job) is the job's first.
    firsts = [lines[i + 1] for i, line in enumerate(lines) if "[HYDRA] \t#" in line]
    assert firsts[0] == "job 0: data=xor loss=auto seed=0"  # not trainer.epochs: not swept
    assert firsts[7] == "job 7: data=iris loss=bce seed=1"
    assert len(firsts) == 8


def test_report_rows_sorted_by_the_monitor_with_failures_and_seed_groups(sweep, tmp_path):
    sweep_dir, _ = sweep
    write_report_files(build_report(sweep_dir), tmp_path)
    with open(tmp_path / "report.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 8
    assert [row["status"] for row in rows] == ["completed"] * 6 + ["failed"] * 2
    # Classifiers monitored by val_loss rank by validation accuracy, best first: the losses
    # of bce and cross-entropy jobs do not compare.
    ranked = [float(row["final_val_acc"]) for row in rows[:6]]
    assert ranked == sorted(ranked, reverse=True)
    for row in rows[:6]:
        metrics = read_metrics(sweep_dir / row["job"])
        assert float(row["final_val_acc"]) == pytest.approx(metrics["final_val_acc"])
        assert float(row["best_val_loss"]) == pytest.approx(metrics["best_monitor"])
        assert int(row["epochs"]) == metrics["epochs_run"]
        assert row["stop_reason"] == metrics["stop_reason"]
        assert float(row["fit_seconds"]) == pytest.approx(metrics["fit_seconds"])
    assert {row["loss_function"] for row in rows[:6]} == {"bce", "cross_entropy"}
    failed = rows[6:]
    assert {(row["data"], row["loss"]) for row in failed} == {("iris", "bce")}
    assert all("binary task" in row["error"] for row in failed)

    with open(tmp_path / "report_seeds.csv") as file:
        groups = {(row["data"], row["loss"]): row for row in csv.DictReader(file)}
    assert set(groups) == {("xor", "auto"), ("xor", "bce"), ("iris", "auto"), ("iris", "bce")}
    assert groups[("iris", "bce")]["completed"] == "0/2"
    iris = [read_metrics(sweep_dir / name)["test_acc"] for name in ("4", "5")]
    assert float(groups[("iris", "auto")]["test_acc_mean"]) == pytest.approx(statistics.mean(iris))
    assert float(groups[("iris", "auto")]["test_acc_std"]) == pytest.approx(statistics.stdev(iris))
    markdown = (tmp_path / "report.md").read_text()
    assert "| 6 | iris | bce | 0 | failed |" in markdown
    assert "mean ± std" in markdown
    assert "sorted by final_val_acc" in markdown
    assert "warning: the jobs train with different loss functions (bce, cross_entropy)" in markdown


def test_report_script_prints_the_table_and_plots_the_validation_curves(sweep, tmp_path):
    sweep_dir, _ = sweep
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts/report.py"), str(sweep_dir), "--plot"]
        + ["--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "8 jobs: 6 completed, 2 failed" in result.stdout
    assert "seed groups (mean ± std over seeds)" in result.stdout
    assert "warning: the jobs train with different loss functions" in result.stdout
    for name in ("report.md", "report.csv", "loss_val.png", "acc_val.png"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "loss_val.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_plotted_tag_is_named_by_one_rule():
    tags = ["loss/val", "acc/val", "loss/train", "grad_norm/layer01", "lr"]
    assert plot_file_names(tags) == {
        "loss/val": "loss_val.png",
        "acc/val": "acc_val.png",
        "loss/train": "loss_train.png",
        "grad_norm/layer01": "grad_norm_layer01.png",
        "lr": "lr.png",
    }


def test_report_ranks_accuracy_monitors_highest_first_and_unfinished_jobs_last():
    def job(name: str, best: float | None, status: str = "completed") -> JobResult:
        metrics = {} if best is None else {"best_monitor": best, "task": "multiclass"}
        return JobResult(name, Path(name), {}, status, metrics, "val_acc", "max", None)

    jobs = [job("0", 0.8), job("1", None, "failed"), job("2", 0.9), job("3", None, "running")]
    ranking = choose_ranking(jobs)
    assert (ranking.column, ranking.mode) == ("best_val_acc", "max")
    assert [job.name for job in rank_jobs(jobs + [job("4", 0.85)], ranking)] == [
        "2",
        "4",
        "0",
        "1",
        "3",
    ]


def test_report_on_a_directory_without_jobs_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts/report.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {tmp_path} holds no jobs")


def test_joblib_launcher_runs_the_jobs_in_parallel_worker_processes(tmp_path):
    process = start_cli(
        "-m",
        f"hydra.sweep.dir={tmp_path}",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "data=xor,and",
        "trainer.epochs=2",
        "logger=none",
    )
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 0, output
    assert "Joblib.Parallel(n_jobs=2" in output
    assert statuses(tmp_path) == {"0": "completed", "1": "completed"}
    pids = {read_record(path).pid for path in job_dirs(tmp_path).values()}
    assert process.pid not in pids  # each job ran in a worker, not in the sweep's process


def test_slurm_preset_composes_into_submitit_launcher_settings():
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.cpus_per_task, launcher.gpus_per_node) == ("gpu", 2, 0)
    # The settings are the ones the launcher class takes (it only submits when it launches).
    assert type(instantiate(launcher)).__name__ == "SlurmLauncher"


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_sweep(tmp_path):
    result = run_cli(
        "-m",
        f"hydra.sweep.dir={tmp_path}",
        "hydra/launcher=submitit_local",
        "data=xor,iris",
        "trainer.epochs=3",
        "logger=none",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert statuses(tmp_path) == {"0": "completed", "1": "completed"}
    assert list(tmp_path.glob(".submitit/*"))


def test_optuna_search_runs_trials_and_survives_a_failed_one(tmp_path):
    # The preset's search space, with a learning rate of 1e30 among the choices: those trials
    # diverge, and the search must go on.
    result = run_cli(
        "-m",
        "hparams_search=mlp_digits",
        f"hydra.sweep.dir={tmp_path}",
        "hydra.sweeper.n_trials=6",
        "optim.lr=choice(0.01,1e30)",
        "trainer.epochs=2",
        "logger=none",
    )
    found = statuses(tmp_path)
    failed = [name for name, status in found.items() if status == "failed"]
    assert len(found) == 6
    assert len(failed) >= 1 and result.returncode == 1, result.stdout + result.stderr
    for name in failed:  # a diverged loss is a failed job, with a message that says so
        assert read_record(tmp_path / name).error.startswith("training diverged")
        assert read_metrics(tmp_path / name)["stop_reason"] == "diverged"
    completed = [tmp_path / name for name, status in found.items() if status == "completed"]
    best = min(read_metrics(run_dir)["best_monitor"] for run_dir in completed)
    results = OmegaConf.load(tmp_path / "optimization_results.yaml")
    assert results.best_value == pytest.approx(best)
    trial = OmegaConf.load(completed[0] / ".hydra/config.yaml")
    assert trial.data.name == "digits" and trial.model.name == "mlp"
    searched = {line.split("=")[0] for line in read_record(completed[0]).overrides}
    assert {"optim", "optim.lr", "model.hidden", "reg.dropout"} <= searched


# One short job, one long one (stopped while it trains), one that has not started yet.
RESUME_SWEEP = (
    "-m",
    "data=iris",
    "trainer=batch",
    "trainer.early_stopping.enabled=false",
    "trainer.checkpoint_every=10",
    "trainer.epochs=5,4000,6",
)


def wait_for_job_training(cwd: Path, process: subprocess.Popen, job: str) -> Path:
    """The sweep directory, once ``job`` has written its first checkpoint: it is inside the
    training loop, where a signal stops it between two steps."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        for sweep_dir in cwd.glob("multirun/*/*"):
            if (sweep_dir / job / "checkpoints" / "last.pt").exists():
                return sweep_dir
        time.sleep(0.05)
    raise AssertionError(f"job {job} did not start training")


@pytest.mark.parametrize(
    "stop",
    [
        # Both signals let the current step finish; the job records that it was interrupted.
        pytest.param(signal.SIGTERM, id="SIGTERM"),
        pytest.param(signal.SIGINT, marks=pytest.mark.slow, id="SIGINT"),
    ],
)
def test_resume_skips_completed_jobs_and_reruns_the_others(tmp_path, stop):
    process = start_cli(*RESUME_SWEEP, cwd=tmp_path)
    try:
        sweep_dir = wait_for_job_training(tmp_path, process, "1")
        live = build_report(sweep_dir)  # a report on a sweep that is still running
        assert {job.name: job.status for job in live.jobs} == {"0": "completed", "1": "running"}
        process.send_signal(stop)
        output = process.communicate(timeout=120)[0]
    finally:
        process.kill()
    assert process.returncode == 128 + stop, output
    stopped = {job.name: job.status for job in build_report(sweep_dir).jobs}
    assert stopped == {"0": "completed", "1": "interrupted"}, output
    first_metrics = (sweep_dir / "0/metrics.json").stat().st_mtime_ns

    result = run_cli(*RESUME_SWEEP, "--resume", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"resuming the sweep in multirun/{sweep_dir.parent.name}/{sweep_dir.name}" in (
        result.stdout
    )
    assert list(tmp_path.glob("multirun/*/*")) == [sweep_dir]
    skipped = [line for line in result.stdout.splitlines() if line.endswith("skipped")]
    assert len(skipped) == 1 and skipped[0].startswith("job 0 ")
    assert (sweep_dir / "0/metrics.json").stat().st_mtime_ns == first_metrics
    assert statuses(sweep_dir) == {"0": "completed", "1": "completed", "2": "completed"}
    assert read_metrics(sweep_dir / "1")["epochs_run"] == 4000
    # The stopped attempt's event files are gone: those left are one process' (…<pid>.<n>).
    files = list((sweep_dir / "1/tb").rglob("events.out.tfevents.*"))
    assert files and len({path.name.split(".")[-2] for path in files}) == 1
    job_1 = ",".join(sorted(read_record(sweep_dir / "1").overrides))
    assert {path.parent.name for path in files} == {job_1}  # tb/<its overrides>
    assert "trainer.epochs=4000" in job_1


@pytest.mark.parametrize(
    "args, expected",
    [
        (["data=iris", "--resume"], "--resume continues a sweep; add -m"),
        (["-m", "data=iris,xor", "--resume"], "no sweep under multirun/ was run with"),
        (["-m", "hydra.sweep.dir=nowhere", "--resume"], "hydra.sweep.dir=nowhere holds no"),
    ],
    ids=["not-a-sweep", "no-such-sweep", "empty-sweep-dir"],
)
def test_resume_without_a_sweep_to_resume_is_a_clear_error(tmp_path, args, expected):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_resuming_a_named_sweep_with_other_overrides_is_refused_and_deletes_nothing(tmp_path):
    # `-m seed=7,1,2 … --resume` into a `seed=0,1,2` sweep: job 0's directory holds seed 0's run.
    sweep_dir = tmp_path / "sweep"
    (sweep_dir / "0").mkdir(parents=True)
    (sweep_dir / "0" / "metrics.json").write_text("{}")
    recorded = {"hydra": {"job": {"config_name": "config"}, "overrides": {"task": ["seed=0,1,2"]}}}
    OmegaConf.save(recorded, sweep_dir / "multirun.yaml")
    argv = ["train.py", "-m", "seed=7,1,2", f"hydra.sweep.dir={sweep_dir}", "--resume"]
    with pytest.raises(ConfigError, match=r"ran seed=0,1,2, not seed=7,1,2"):
        resume_argv(argv, config_name="config")
    assert (sweep_dir / "0" / "metrics.json").exists()
    same = resume_argv([*argv[:2], "seed=0,1,2", *argv[3:]], config_name="config")
    assert f"hydra.sweep.dir={sweep_dir}" in same and "--resume" not in same


@pytest.mark.parametrize("launcher", ["basic", "stacked"])
def test_a_grid_sweep_with_a_job_that_cannot_run_stops_before_any_job_runs(tmp_path, launcher):
    # act does not apply to the perceptron: two of the four jobs are mistakes, known at once
    # (by the sweep's callback; the stacked launcher composes every job itself and checks them).
    result = run_cli(
        "-m",
        f"hydra.sweep.dir={tmp_path}",
        f"hydra/launcher={launcher}",
        "model=mlp,perceptron",
        "act=relu,tanh",
        "data=xor",
        "trainer.epochs=1",
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "error: 2 of the sweep's 4 jobs cannot run, so none was started:"
    assert lines[1].startswith("  job 2 (model=perceptron act=relu data=xor trainer.epochs=1): ")
    assert "act=relu does not apply to model=perceptron" in lines[1]
    assert "Traceback" not in result.stderr
    assert job_dirs(tmp_path) == {} if tmp_path.exists() else True


def test_the_grid_jobs_are_the_presets_sweep_overridden_by_the_command_line():
    jobs = grid_jobs(["act=tanh", "seed=0,1"], {"act": "relu,sigmoid", "data": "and,or"})
    assert jobs == [
        ["act=tanh", "data=and", "seed=0"],
        ["act=tanh", "data=and", "seed=1"],
        ["act=tanh", "data=or", "seed=0"],
        ["act=tanh", "data=or", "seed=1"],
    ]


def test_a_regression_sweep_ranks_by_its_monitor_lowest_first():
    def job(name: str, val_loss: float) -> JobResult:
        metrics = {"best_monitor": val_loss, "task": "regression", "loss": "mse"}
        return JobResult(name, Path(name), {}, "completed", metrics, "val_loss", "min", None)

    jobs = [job("0", 0.3), job("1", 0.1), job("2", 0.2)]
    ranking = choose_ranking(jobs)
    assert (ranking.column, ranking.mode) == ("best_val_loss", "min")
    assert [job.name for job in rank_jobs(jobs, ranking)] == ["1", "2", "0"]


def test_the_swept_keys_are_those_given_several_values_on_the_command_line_or_the_preset():
    task = ["act=tanh", "seed=0,1", "data=xor", "optim.lr=range(1,3)"]
    assert swept_keys(task, {"act": "relu,sigmoid", "model": "mlp"}) == ["seed", "optim.lr"]
    assert swept_keys([], {"optim.lr": "tag(log, interval(0.0001, 0.3))"}) == ["optim.lr"]
    assert job_values(["data=xor", "+seed=1", "act=tanh"], ["act", "seed"]) == [
        "act=tanh",
        "seed=1",
    ]


@pytest.mark.parametrize(
    "swept",
    [
        ["optim=momentum,nesterov", "optim.momentum=0.5"],
        ["ensemble=voting,bagging", "ensemble.members=3"],
        ["experiment=dying_relu,init", "model.depth=3", "debug=fast"],  # both: model=dnn
    ],
    ids=["optim", "ensemble", "experiment"],
)
def test_a_key_beside_a_swept_group_applies_to_every_job_whose_choice_takes_it(swept, tmp_path):
    """The default choice (optim=adam, ensemble=none) lacks the key: it is set per job."""
    result = run_cli(
        "-m", *swept, "data=iris", "trainer.epochs=1", "logger=none", f"hydra.sweep.dir={tmp_path}"
    )
    assert result.returncode == 0, result.stderr
    assert statuses(tmp_path) == {"0": "completed", "1": "completed"}
    group, _, value = swept[1].partition("=")
    for job in job_dirs(tmp_path).values():
        config = OmegaConf.load(job / ".hydra" / "config.yaml")
        assert str(OmegaConf.select(config, group)) == value
        assert swept[1] in OmegaConf.load(job / ".hydra" / "overrides.yaml")


def test_a_key_some_swept_choices_lack_stops_the_sweep_naming_those_jobs(tmp_path):
    result = run_cli(
        "-m", "optim=sgd,momentum", "optim.momentum=0.5", "data=iris", "trainer.epochs=1",
        "logger=none", f"hydra.sweep.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "error: 1 of the sweep's 2 jobs cannot run, so none was started:"
    assert lines[1].startswith("  job 0 (optim=sgd optim.momentum=0.5")
    assert "does not apply to optim=sgd" in lines[1]
    assert "a sweep of their own" in lines[2]
    assert not (tmp_path / "1" / "metrics.json").exists()
