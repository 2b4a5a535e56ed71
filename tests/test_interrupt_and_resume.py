"""SIGINT/SIGTERM finish the step under way, save last.pt and metrics.json, and exit 130/143;
`trainer.resume` continues the run so that it ends exactly as an uninterrupted one."""

import os
import signal
import threading
import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import make_config, read_metrics, start_cli, train_in_process
from dlbasics.checkpoint import load_checkpoint
from dlbasics.data import build_data
from dlbasics.errors import ConfigError
from dlbasics.interrupt import StopOnSignal
from dlbasics.losses import build_objective
from dlbasics.models import build_model
from dlbasics.trainer import Trainer

# Adam (optimizer state), a cosine schedule, dropout (the global RNG), shuffling (its own
# RNG), early stopping that keeps counting, and a last batch smaller than the others.
RESUMABLE = [
    "data=moons",
    "reg=dropout",
    "reg.dropout=0.2",
    "schedule=cosine",
    "trainer.batch_size=48",
    "trainer.epochs=10",
    "trainer.early_stopping.min_delta=0.5",  # so bad_epochs grows, yet never reaches 50
    "trainer.early_stopping.patience=50",
    "logger=none",
]


class SignalAtEpoch:
    """A logger that sends a real signal to this process once an epoch has been logged."""

    def __init__(self, epoch: int, number: int):
        self.epoch, self.number = epoch, number

    def log_scalars(self, scalars, step):
        if step == self.epoch:
            os.kill(os.getpid(), self.number)

    def log_hparams(self, hparams, metrics):
        pass

    def close(self):
        pass


def _fit(run_dir, logger=None, resume=None, signal_at_step=None):
    cfg = make_config(*RESUMABLE)
    data = build_data(cfg.data)
    torch.manual_seed(cfg.trainer.seed)
    model = build_model(cfg, data.spec)
    if signal_at_step is not None:  # a signal arriving while one particular step runs
        count = [0]

        def signal_in_step(module, inputs):
            if module.training:  # a training step's forward pass, not validation's
                count[0] += 1
                if count[0] == signal_at_step:
                    os.kill(os.getpid(), signal.SIGTERM)

        model.register_forward_pre_hook(signal_in_step)
    objective = build_objective(cfg.loss.name, "auto", data.spec, cfg.reg, "mlp")
    with StopOnSignal() as interrupt:
        trainer = Trainer(
            cfg.trainer,
            cfg.optim,
            cfg.schedule,
            torch.device("cpu"),
            logger=logger,
            checkpoint_dir=run_dir / "checkpoints",
            interrupt=interrupt,
        )
        return trainer.fit(model, data, objective, resume=resume), model


def _assert_same_state(a: dict, b: dict, where: str = "") -> None:
    assert a.keys() == b.keys(), where
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), f"{where}.{key}"
        elif isinstance(a[key], dict):
            _assert_same_state(a[key], b[key], f"{where}.{key}")
        else:
            assert a[key] == b[key], f"{where}.{key}"


@pytest.mark.parametrize(
    "stop_at",
    ["end of epoch 5", "step 3 of epoch 6"],  # at an epoch boundary, and part-way through one
)
def test_ten_epochs_equal_five_interrupted_then_resumed_bitwise(tmp_path, stop_at):
    straight, straight_model = _fit(tmp_path / "straight")

    if stop_at == "end of epoch 5":
        stopped, _ = _fit(tmp_path / "run", logger=SignalAtEpoch(5, signal.SIGINT))
        assert (stopped.epochs_run, stopped.stop_signal) == (5, signal.SIGINT)
    else:
        steps_per_epoch = straight.steps // straight.epochs_run
        stopped, _ = _fit(tmp_path / "run", signal_at_step=5 * steps_per_epoch + 3)
        assert (stopped.steps, stopped.stop_signal) == (5 * steps_per_epoch + 3, signal.SIGTERM)
    assert stopped.stop_reason == "interrupted"

    resumed, resumed_model = _fit(
        tmp_path / "run", resume=load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    )
    timing = {"fit_seconds"}
    assert {k: v for k, v in vars(resumed).items() if k not in timing} == {
        k: v for k, v in vars(straight).items() if k not in timing
    }
    for name, tensor in straight_model.state_dict().items():
        assert torch.equal(tensor, resumed_model.state_dict()[name]), name
    last = {
        name: load_checkpoint(tmp_path / name / "checkpoints" / "last.pt")
        for name in ("straight", "run")
    }
    for part in ("model", "optimizer", "scheduler", "early_stopping", "rng"):
        _assert_same_state(last["straight"][part], last["run"][part], part)


def test_train_interrupted_anywhere_then_resumed_writes_the_same_metrics(tmp_path):
    """Through `train()`, as the command line runs it: a SIGINT at whatever moment it lands."""
    args = ["data=digits", "trainer.epochs=12", "trainer.checkpoint_every=2", "logger=none"]
    straight = train_in_process(tmp_path / "straight", *args)

    def interrupt_after_first_checkpoint():
        while not (tmp_path / "run" / "checkpoints" / "last.pt").exists():
            time.sleep(0.002)
        os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=interrupt_after_first_checkpoint)
    sender.start()
    with StopOnSignal():  # a signal landing after the fit must not stop pytest itself
        interrupted = train_in_process(tmp_path / "run", *args)
    sender.join()
    assert interrupted["stop_reason"] == "interrupted"
    assert interrupted["stop_signal"] == "SIGINT"
    assert read_metrics(tmp_path / "run") == interrupted

    resumed = train_in_process(tmp_path / "resumed", *args, f"trainer.resume={tmp_path / 'run'}")
    differ = {"fit_seconds", "resumed_from"}
    assert {k: v for k, v in resumed.items() if k not in differ} == {
        k: v for k, v in straight.items() if k not in differ
    }
    assert resumed["resumed_from"] == str(tmp_path / "run")


def test_resume_refuses_a_different_config_and_a_finished_run(tmp_path):
    train_in_process(tmp_path / "run", "data=iris", "trainer.epochs=3", "logger=none")
    with pytest.raises(ConfigError, match=r"optim\.lr=0\.1 here but 0\.001"):
        train_in_process(
            tmp_path / "again",
            "data=iris",
            "trainer.epochs=5",
            "optim.lr=0.1",
            f"trainer.resume={tmp_path / 'run'}",
            "logger=none",
        )
    with pytest.raises(ConfigError, match="already trained 3 epochs; raise trainer.epochs"):
        train_in_process(
            tmp_path / "again",
            "data=iris",
            "trainer.epochs=3",
            f"trainer.resume={tmp_path / 'run'}",
            "logger=none",
        )
    longer = train_in_process(
        tmp_path / "longer",
        "data=iris",
        "trainer.epochs=5",
        f"trainer.resume={tmp_path / 'run' / 'checkpoints' / 'last.pt'}",
        "logger=none",
    )
    assert (longer["epochs_run"], longer["stop_reason"]) == (5, "max_epochs")


def _interrupt_cli(run_dir, number: int, *args: str):
    """Start a long run, wait until it has trained an epoch, send `number`, wait for it."""
    process = start_cli(
        f"hydra.run.dir={run_dir}",
        "trainer.epochs=100000",
        "trainer.early_stopping.enabled=false",
        "trainer.checkpoint_every=1000",
        *args,
    )
    for line in process.stdout:
        if line.startswith("epoch "):
            break
    process.send_signal(number)
    stdout, stderr = process.communicate(timeout=120)
    return process.returncode, stdout, stderr


def test_sigint_saves_the_run_flushes_tensorboard_and_exits_130(tmp_path):
    returncode, stdout, stderr = _interrupt_cli(tmp_path, signal.SIGINT)
    assert returncode == 130, stderr
    assert "Traceback" not in stderr
    metrics = read_metrics(tmp_path)
    assert (metrics["stop_reason"], metrics["stop_signal"]) == ("interrupted", "SIGINT")
    assert metrics["epochs_run"] >= 1
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert (last["steps"], last["stop_reason"]) == (metrics["steps"], "interrupted")
    # the run's TensorBoard run, named by its overrides
    name = (
        "trainer.checkpoint_every=1000,trainer.early_stopping.enabled=false,trainer.epochs=100000"
    )
    events = EventAccumulator(str(tmp_path / "tb" / name))
    events.Reload()
    assert len(events.Scalars("loss/train")) == metrics["epochs_run"]
    assert f"trainer.resume={tmp_path}" in stdout


def test_sigterm_exits_143_and_the_run_resumes_from_its_directory(tmp_path):
    quick = ["data=iris", "logger=none"]
    returncode, _, stderr = _interrupt_cli(tmp_path / "run", signal.SIGTERM, *quick)
    assert returncode == 143, stderr
    stopped = read_metrics(tmp_path / "run")
    assert (stopped["stop_reason"], stopped["stop_signal"]) == ("interrupted", "SIGTERM")

    # Resuming is not about the process: in this one, as the command line would run it.
    target = stopped["epochs_run"] + 2
    resumed = train_in_process(
        tmp_path / "resumed",
        f"trainer.epochs={target}",
        "trainer.early_stopping.enabled=false",
        *quick,
        f"trainer.resume={tmp_path / 'run'}",
    )
    assert (resumed["epochs_run"], resumed["stop_reason"]) == (target, "max_epochs")
    assert resumed["steps"] > stopped["steps"]


@pytest.mark.parametrize("after", [0.3, 1.5], ids=["importing", "starting"])
def test_ctrl_c_before_training_begins_exits_130_without_a_traceback(tmp_path, after):
    # 1000 epochs without early stopping: still running whenever the signal comes
    no_stop = ["trainer.epochs=1000", "trainer.early_stopping.enabled=false", "logger=none"]
    process = start_cli(f"hydra.run.dir={tmp_path}", *no_stop)
    time.sleep(after)  # some moment of the start-up: the imports, Hydra, the data
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
