"""The per-epoch progress output: plain lines in a log, a live bar on a terminal."""

import io

from dlbasics.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_one_line_per_epoch():
    stream = io.StringIO()
    progress = Progress(3, stream)
    for epoch in (1, 2, 3):
        progress.epoch(epoch, {"train_loss": 0.5, "val_acc": None}, 0.01)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines == [f"epoch {e}/3  train_loss 0.5000  0.0s" for e in (1, 2, 3)]


def test_a_terminal_gets_a_bar_that_rewrites_itself():
    stream = Terminal()
    progress = Progress(4, stream)
    progress.epoch(2, {"train_loss": 0.25}, 0.01)
    progress.close()
    output = stream.getvalue()
    assert output.startswith("\r[##########..........] epoch 2/4  train_loss 0.2500")
    assert output.endswith("\n") and output.count("\n") == 1
