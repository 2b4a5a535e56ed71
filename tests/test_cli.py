"""scripts/train.py as a user runs it: the default run, and clear errors for mistakes."""


import pytest

from conftest import read_metrics, run_cli, train_or_refuse


def test_default_run_trains_digits_mlp_to_97_percent_and_says_where(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr
    metrics = read_metrics(run_dir)
    assert metrics["test_acc"] >= 0.97
    lines = result.stdout.strip().splitlines()
    assert sum(line.startswith("epoch ") for line in lines) == metrics["epochs_run"]
    assert "test_acc" in lines[-2] and lines[-1] == f"run directory: {run_dir}"
    assert all(len(line) <= 80 for line in lines[:-1])  # an 80-column terminal: no wrapping
    for artefact in (
        "metrics.json",
        "train.log",
        ".hydra/config.yaml",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
    ):
        assert (run_dir / artefact).exists(), artefact
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))


def test_debug_fast_checks_a_config_in_one_epoch_of_a_few_batches_without_checkpoints(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(f"hydra.run.dir={run_dir}", "debug=fast")
    assert result.returncode == 0, result.stderr
    metrics = read_metrics(run_dir)
    assert (metrics["epochs_run"], metrics["steps"]) == (1, 3)
    assert metrics["test_acc"] is not None  # validated and tested as usual
    assert not (run_dir / "checkpoints").exists()
    assert "limit_batches=3 checkpoints=false" in result.stdout
    # a run with overrides is a TensorBoard run named by them, as a sweep's jobs are
    assert list((run_dir / "tb" / "debug=fast").glob("events.out.tfevents.*"))


# Each kind of mistake, and the words its one line must hold. A process started for each costs
# seconds (torch is imported to compose the config): those marked CLI are run as a user runs
# them, one per way an error reaches the user (Hydra's composition, Hydra's override parser,
# a schema, the top-level hint, a check made once the data are loaded); the others go through
# the same code in this process.
CLI = pytest.mark.cli
MISTAKES = [
    pytest.param(["model=mlpp"], ["model=mlpp", "mlp, perceptron"], marks=CLI),
    pytest.param(["optim.lr=-1"], ["optim.lr", "> 0"], marks=CLI),
    (["trainer.batch_size=0"], ["trainer.batch_size", ">= 1"]),
    (["trainer.limit_batches=0"], ["trainer.limit_batches", ">= 1"]),
    (["reg.dropout=1.5"], ["reg.dropout", "[0, 1)"]),
    (["optim.lrr=0.1"], ["optim.lrr", "eps, lr, name"]),
    (["optim=sgd", "optim.momentum=0.5"], ["optim.momentum", "optim=momentum, nesterov"]),
    (["model=perceptron", "act=tanh"], ["act=tanh", "model=cnn, dnn, mlp"]),
    (["+model.width=3"], ["model.width", "hidden"]),
    (["optim.lr=fast"], ["optim.lr", "fast", "a number"]),
    (["trainer.early_stopping.patiense=3"], ["patiense", "patience"]),
    pytest.param(["device=cpu"], ["device is not a known key", "trainer.device?"], marks=CLI),
    (["+patience=3"], ["Did you mean schedule.patience or trainer.early_stopping.patience?"]),
    pytest.param(["optim.lr=[1,"], ["cannot be parsed", "[1,"], marks=CLI),
    (["cell=lstm"], ["model.cell does not apply to model=mlp", "model=rnn"]),
    (["model.hidden=[4000000000]"], ["model=mlp would have", "GiB", "model.hidden=[4000000000]"]),
    pytest.param(["loss=bce", "trainer.epochs=1"], ["loss=bce", "binary"], marks=CLI),
]


@pytest.mark.parametrize("args, expected", MISTAKES)
def test_user_mistakes_get_one_line_naming_the_key(request, tmp_path, args, expected):
    """Hydra's own composition errors (unknown choice, key or type) included; on the real
    command line: exit 2, the line on stderr, no traceback."""
    if request.node.get_closest_marker("cli"):
        result = run_cli(f"hydra.run.dir={tmp_path}", *args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
        message = result.stderr
    else:
        message = train_or_refuse([*args, "trainer.epochs=1", "logger=none"], tmp_path)
        assert "\n" not in message and message not in ("trained", "diverged")
    for text in expected:
        assert text in message, (text, message)


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


@pytest.mark.cli
def test_help_lists_the_groups_and_says_what_each_exit_status_means():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    assert "optim: adagrad, adam, adamw, momentum, nesterov, rmsprop, sgd" in result.stdout
    assert "schedule: cosine, none, plateau, step" in result.stdout
    assert "Exit status: 0 the run finished; 2 a mistake" in result.stdout
    assert "A sweep (-m): 0 every job finished, 1 some failed, 2 a job that cannot run" in (
        " ".join(result.stdout.split())
    )
