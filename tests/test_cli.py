"""scripts/train.py as a user runs it: the default run, and clear errors for mistakes."""

import subprocess
import sys

import pytest

from conftest import ROOT, read_metrics, run_cli


def test_default_run_trains_digits_mlp_to_97_percent_and_says_where(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr
    metrics = read_metrics(run_dir)
    assert metrics["test_acc"] >= 0.97
    lines = result.stdout.strip().splitlines()
    assert sum(line.startswith("epoch ") for line in lines) == metrics["epochs_run"]
    assert "test_acc" in lines[-1] and str(run_dir) in lines[-1]
    for artefact in (
        "metrics.json",
        "train.log",
        ".hydra/config.yaml",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
    ):
        assert (run_dir / artefact).exists(), artefact
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    "args, expected",
    [
        (["model=mlpp"], ["model=mlpp", "mlp, perceptron"]),
        (["optim.lr=-1"], ["optim.lr", "> 0"]),
        (["trainer.batch_size=0"], ["trainer.batch_size", ">= 1"]),
        (["reg.dropout=1.5"], ["reg.dropout", "[0, 1)"]),
        (["optim.lrr=0.1"], ["optim.lrr", "lr, min_lr"]),
        (["+model.width=3"], ["model.width", "hidden"]),
        (["optim.lr=fast"], ["optim.lr", "fast", "a number"]),
        (["trainer.early_stopping.patiense=3"], ["patiense", "patience"]),
        (["device=cpu"], ["device is not a known key", "Did you mean trainer.device?"]),
        (["+patience=3"], ["Did you mean trainer.early_stopping.patience?"]),
        (["optim.lr=[1,"], ["cannot be parsed", "[1,"]),
        (["loss=bce", "trainer.epochs=1"], ["loss=bce", "binary"]),
    ],
)
def test_user_mistakes_exit_2_with_one_line_naming_the_key_and_no_traceback(
    tmp_path, args, expected
):
    """Hydra's own composition errors (unknown choice, key or type) included."""
    result = run_cli(f"hydra.run.dir={tmp_path}", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    for text in expected:
        assert text in result.stderr, (text, result.stderr)


def test_hydra_multirun_sweeps_groups(tmp_path):
    result = run_cli(
        "-m",
        f"hydra.sweep.dir={tmp_path}",
        "data=xor",
        "model=mlp,perceptron",
        "optim=sgd",
        "trainer=batch",
        "trainer.epochs=3",
        "logger=none",
    )
    assert result.returncode == 0, result.stderr
    jobs = sorted(p.parent for p in tmp_path.glob("*/metrics.json"))
    assert len(jobs) == 2


EXIT = """
import atexit, sys
from dlbasics.cli import exit_without_teardown
atexit.register(lambda: open(sys.argv[1], "w").write("exit handlers ran"))
print("buffered output")  # a pipe: block-buffered, written only when flushed
exit_without_teardown(eval(sys.argv[2]))
"""


@pytest.mark.parametrize("status, returncode", [(None, 0), (0, 0), (2, 2), (130, 130), ("why", 1)])
def test_the_exit_without_teardown_runs_exit_handlers_and_flushes_output(
    tmp_path, status, returncode
):
    marker = tmp_path / "marker"
    done = subprocess.run(
        [sys.executable, "-c", EXIT, str(marker), repr(status)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == returncode
    assert done.stdout == "buffered output\n"
    assert marker.read_text() == "exit handlers ran"
    assert done.stderr == ("why\n" if status == "why" else "")
