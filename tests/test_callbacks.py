"""Callbacks (dlbasics/callbacks.py, docs/callbacks.md): the hooks are called in the documented
order, a user's callback can stop a fit or drop a step, and every fit of a run calls it."""

import subprocess
import sys

import pytest
from doc_commands import fenced_blocks

from conftest import ROOT, make_config
from dlbasics.callbacks import Callback
from dlbasics.run import train

QUICK = ["data=iris", "logger=none", "trainer.checkpoints=false"]


class Recorder(Callback):
    """The hooks called, by name, in order."""

    def __init__(self):
        self.calls = []

    def on_fit_start(self, loop):
        self.calls.append("fit_start")

    def on_epoch_start(self, loop):
        self.calls.append("epoch_start")

    def on_after_backward(self, loop, loss):
        self.calls.append("after_backward")

    def on_step_end(self, loop):
        self.calls.append("step_end")

    def on_validation_end(self, loop):
        self.calls.append("validation_end")

    def on_epoch_end(self, loop):
        self.calls.append("epoch_end")

    def on_fit_end(self, loop):
        self.calls.append("fit_end")


def test_the_hooks_are_called_in_the_documented_order(tmp_path):
    recorder = Recorder()
    cfg = make_config(*QUICK, "trainer.epochs=2", "trainer.limit_batches=2")
    train(cfg, tmp_path, progress=False, callbacks=[recorder])
    step = ["after_backward", "step_end"]
    epoch = ["epoch_start", *step, *step, "validation_end", "epoch_end"]
    assert recorder.calls == ["fit_start", *epoch, *epoch, "fit_end"]


class StopAfter(Callback):
    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_validation_end(self, loop):
        if loop.epoch == self.epochs:
            loop.wants_stop = "early_stopping"


class DropEveryOtherStep(Callback):
    def __init__(self):
        self.seen = 0

    def on_after_backward(self, loop, loss):
        self.seen += 1
        loop.skip_step = self.seen % 2 == 0


def test_a_callback_stops_the_fit_and_drops_steps(tmp_path):
    dropper = DropEveryOtherStep()
    recorder = Recorder()  # after the dropper: it does not see the dropped steps
    cfg = make_config(
        *QUICK, "trainer.epochs=50", "trainer.batch_size=16", "trainer.limit_batches=4"
    )
    metrics = train(cfg, tmp_path, progress=False, callbacks=[StopAfter(3), dropper, recorder])
    assert (metrics["stop_reason"], metrics["epochs_run"]) == ("early_stopping", 3)
    assert dropper.seen == 12 and metrics["steps"] == 6
    assert recorder.calls.count("after_backward") == recorder.calls.count("step_end") == 6


@pytest.mark.parametrize("overrides", [["ensemble=voting", "ensemble.members=2"], ["model=dbn"]])
def test_every_fit_of_a_run_calls_the_users_callbacks(tmp_path, overrides):
    """A stacked ensemble's one fit, and a DBN's pre-training phases and fine-tuning."""
    recorder = Recorder()
    data = ["data=digits"] if "model=dbn" in overrides else []
    cfg = make_config(*QUICK, *data, *overrides, "trainer.epochs=1", "trainer.limit_batches=1")
    train(cfg, tmp_path, progress=False, callbacks=[recorder])
    fits = recorder.calls.count("fit_start")
    assert fits == recorder.calls.count("fit_end") >= (3 if "model=dbn" in overrides else 1)



def test_the_pages_example_runs_as_written(tmp_path):
    (example,) = [
        text
        for language, text in fenced_blocks((ROOT / "docs" / "callbacks.md").read_text())
        if language == "python"
    ]
    result = subprocess.run(
        [sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    reason, epochs, seen = result.stdout.split()[-3:]
    assert reason == "early_stopping" and epochs == seen and 1 <= int(epochs) < 200
