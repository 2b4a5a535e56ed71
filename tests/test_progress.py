"""What a fit shows while it runs: one plain line per epoch, at most 80 columns, on the console
and in train.log; on a terminal, a bar inside a long epoch that leaves those lines alone.

Run as a script (``python tests/test_progress.py LOG_DIR [--long]``), this file is the small
program the terminal tests watch: it sets up logging as configs/hydra/job_logging/dlbasics.yaml
does and drives Progress through a few epochs.
"""

import io
import logging
import logging.config
import os
import re
import select
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlbasics.progress import NullProgress, Progress, epoch_line

ROOT = Path(__file__).resolve().parents[1]
JOB_LOGGING = ROOT / "configs" / "hydra" / "job_logging" / "dlbasics.yaml"

CLASSIFIER = {"train_loss": 0.123456, "train_acc": 0.965, "val_loss": 0.098765, "val_acc": 0.97222}
REGRESSION = {"train_loss": 0.0123456, "train_acc": None, "val_loss": 0.02345, "val_acc": None}
RBM = {
    "train_loss": 0.0612,
    "val_loss": 0.0634,
    "train_pll": -98.123,
    "val_pll": -101.456,
    "train_free_energy": -45.1,
    "val_free_energy": -44.3,
    "gap_free_energy": 0.812,
}

# The driven fit: epoch i/1000 at 12.3 s makes the classifier's line exactly 80 characters.
EPOCHS, RUN, STEPS, SECONDS = 1000, 4, 30, 12.3
LONG_EPOCH, STEP_SECONDS, MESSAGE_STEP = 2, 0.1, 25  # 3 s: the bar shows from 2 s on
MESSAGE = "a message logged while the bar is up"
EXPECTED = [epoch_line(epoch, EPOCHS, CLASSIFIER, SECONDS) for epoch in range(1, RUN + 1)]
SCREEN = [*EXPECTED[: LONG_EPOCH - 1], MESSAGE, *EXPECTED[LONG_EPOCH - 1 :]]
ESCAPE = re.compile(r"\x1b(\[[0-9;?]*[@-~]|[^\[])")


def drive(log_dir: Path, long_epoch: bool) -> None:
    """Log as Hydra's job logging config does, and fit RUN epochs of STEPS steps."""
    import yaml  # PyYAML, a dependency of omegaconf

    config = yaml.safe_load(JOB_LOGGING.read_text())
    config["handlers"]["file"]["filename"] = str(log_dir / "train.log")
    logging.config.dictConfig(config)

    def slowly(steps):
        for step in steps:
            time.sleep(STEP_SECONDS)
            yield step

    with Progress(EPOCHS, "val_loss") as progress:
        for epoch in range(1, RUN + 1):
            steps = list(range(STEPS))
            slow = long_epoch and epoch == LONG_EPOCH
            for step in progress.batches(epoch, slowly(steps) if slow else steps, STEPS):
                if epoch == LONG_EPOCH and step == MESSAGE_STEP:
                    logging.getLogger("dlbasics").warning(MESSAGE)
            progress.end_epoch(epoch, CLASSIFIER, SECONDS)


def render(output: str, columns: int = 80) -> tuple[list[str], int]:
    """The lines a terminal of ``columns`` columns shows after ``output`` (its scrollback
    included), and how many times a line was too long and wrapped."""
    screen: list[list[str]] = [[]]
    row = col = wraps = 0
    position = 0
    while position < len(output):
        escape = ESCAPE.match(output, position)
        if escape:
            sequence = escape.group(1)
            if sequence.endswith("A"):  # cursor up
                row = max(0, row - int(sequence[1:-1] or 1))
            elif sequence.endswith("K"):  # erase to the end of the line
                del screen[row][col:]
            position = escape.end()
            continue
        char = output[position]
        position += 1
        if char == "\r":
            col = 0
        elif char == "\n":
            row += 1
        elif char == "\b":
            col = max(0, col - 1)
        elif char >= " ":
            if col == columns:  # the cursor waits at the right edge: the next character wraps
                row, col, wraps = row + 1, 0, wraps + 1
            while len(screen) <= row:
                screen.append([])
            line = screen[row]
            line.extend(" " * (col + 1 - len(line)))
            line[col] = char
            col += 1
        while len(screen) <= row:
            screen.append([])
    lines = ["".join(line).rstrip() for line in screen]
    while lines and not lines[-1]:
        lines.pop()
    return lines, wraps


def run_in_terminal(*args: str, columns: int = 80, timeout: float = 60) -> str:
    """Run this file as a script on a pseudo-terminal ``columns`` wide; all it wrote."""
    import fcntl
    import termios

    primary, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {**script_env(), "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": "24"}
    process = subprocess.Popen(
        [sys.executable, __file__, *args],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        start_new_session=True,
    )
    os.close(secondary)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the script has exited and closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        else:
            pytest.fail("the script on the terminal did not finish")
        assert process.wait(timeout=10) == 0, b"".join(chunks).decode(errors="replace")
    finally:
        process.kill()
        os.close(primary)
    return b"".join(chunks).decode()


def script_env() -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("TQDM_DISABLE", None)
    return env


def log_messages(log_dir: Path) -> list[str]:
    """train.log's messages, without their timestamps."""
    lines = (log_dir / "train.log").read_text().splitlines()
    return [re.sub(r"^\[[^]]*\] ", "", line) for line in lines]


@pytest.fixture
def logged():
    """What the "dlbasics" logger logs at INFO, as a pipe or a file would receive it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("dlbasics")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# --- the epoch line -------------------------------------------------------------------------


def test_the_epoch_line_names_its_metrics_as_keras_does():
    line = epoch_line(3, 20, CLASSIFIER, 1.234)
    assert line == "epoch  3/20  loss 0.1235  acc 0.9650  val_loss 0.0988  val_acc 0.9722  1.2s"
    assert epoch_line(3, 20, REGRESSION, 754.4) == "epoch  3/20  loss 0.0123  val_loss 0.0234  754s"


@pytest.mark.parametrize("epochs", [1, 20, 1000])
@pytest.mark.parametrize("seconds", [0.04, 12.3, 99.96, 754.4, 9999.6, 86_400])
@pytest.mark.parametrize(
    "metrics, monitor, shown",
    [
        (CLASSIFIER, "val_loss", ["loss 0.1235", "acc 0.9650", "val_loss 0.0988", "val_acc"]),
        (CLASSIFIER, "train_acc", ["loss 0.1235", "acc 0.9650", "val_loss 0.0988", "val_acc"]),
        (REGRESSION, "val_loss", ["loss 0.0123", "val_loss 0.0234"]),
        (RBM, "val_loss", ["loss 0.0612", "val_loss 0.0634"]),
        (RBM, "val_pll", ["loss 0.0612", "val_loss 0.0634", "val_pll -101.4"]),
        (RBM, "gap_free_energy", ["loss 0.0612", "val_loss 0.0634", "gap_free_energy 0.812"]),
        (RBM, "train_free_energy", ["val_loss 0.0634", "train_free_energy -45.1"]),
    ],
)
def test_every_epoch_line_fits_80_columns_and_keeps_its_metrics(
    epochs, seconds, metrics, monitor, shown
):
    line = epoch_line(epochs, epochs, metrics, seconds, monitor)
    assert len(line) <= 80, line
    assert line.startswith(f"epoch {epochs}/{epochs} "), line
    for field in shown:
        assert field in line, (field, line)
    if metrics.get("train_acc") is None:
        assert "acc" not in line, line
    assert re.search(r"  ?(\d+\.\ds|\d+s|\d+h\d\dm)$", line), line


@pytest.mark.parametrize("value", [1e12, -1e-12, 123456.789, float("nan"), float("-inf")])
def test_a_line_of_extreme_values_still_fits(value):
    metrics = dict.fromkeys(CLASSIFIER, value) | {"gap_free_energy": value}
    line = epoch_line(10**6, 10**6, metrics, 10**6, "gap_free_energy")
    assert len(line) <= 80 and line.startswith("epoch 1000000/1000000"), line


# --- a pipe, a file, CI ---------------------------------------------------------------------


def test_elsewhere_than_a_terminal_each_epoch_is_one_plain_logged_line(logged):
    stream = io.StringIO()  # where a bar would go: not a terminal
    steps = [0, 1, 2]
    with Progress(3, "val_loss", stream) as progress:
        assert not progress.live
        for epoch in (1, 2, 3):
            assert progress.batches(epoch, steps, len(steps)) is steps  # no wrapper per step
            progress.end_epoch(epoch, CLASSIFIER, 0.5)
    assert stream.getvalue() == ""
    output = logged.getvalue()
    assert "\r" not in output and "\x1b" not in output
    assert output.splitlines() == [epoch_line(e, 3, CLASSIFIER, 0.5) for e in (1, 2, 3)]


def test_a_dumb_terminal_gets_no_bar(monkeypatch):
    monkeypatch.setenv("TERM", "dumb")
    steps = [0, 1]
    assert Progress(3, "val_loss", Terminal()).batches(1, steps, 2) is steps


def test_a_quiet_fit_shows_nothing(logged):
    steps = [0, 1]
    with NullProgress() as progress:
        assert progress.batches(1, steps, 2) is steps
        progress.end_epoch(1, CLASSIFIER, 0.5)
    assert logged.getvalue() == ""


def test_piped_output_and_train_log_get_every_epoch_line_and_no_control_codes(tmp_path):
    result = subprocess.run(
        [sys.executable, __file__, str(tmp_path)],
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == SCREEN
    assert result.stderr == ""
    for control in ("\r", "\x1b", "\b"):
        assert control not in result.stdout
    assert log_messages(tmp_path) == SCREEN


# --- a terminal -----------------------------------------------------------------------------


def test_the_bar_inside_an_epoch_is_cleared_when_it_ends_or_breaks(monkeypatch):
    monkeypatch.setattr("dlbasics.progress.DELAY", 0)
    stream = Terminal()
    with Progress(3, "val_loss", stream) as progress:
        assert progress.live
        assert list(progress.batches(1, range(5), 5)) == list(range(5))
        for step in progress.batches(2, range(5), 5):
            if step == 2:  # an interrupted epoch: no end_epoch
                break
    assert re.search(r"epoch 1/3: .*\| 0/5 \[.*steps/s\]", stream.getvalue())
    assert render(stream.getvalue()) == ([], 0)


@pytest.mark.skipif(sys.platform == "win32", reason="a pseudo-terminal needs a POSIX system")
def test_on_an_80_column_terminal_every_epoch_line_stays_whole_under_a_live_bar(tmp_path):
    assert {len(line) for line in EXPECTED} == {80}  # a full row: the edge of wrapping
    output = run_in_terminal(str(tmp_path), "--long")
    # The long epoch's bar was drawn: steps, steps/s and the time left.
    assert re.search(
        rf"epoch {LONG_EPOCH}/{EPOCHS}: +\d+%\|.*\| \d+/{STEPS} "
        r"\[00:0\d<00:0\d, +[\d.]+ steps/s\]",
        output,
    ), output
    lines, wraps = render(output, columns=80)
    assert wraps == 0, lines
    assert lines == SCREEN  # each line whole, in order, none overwritten; the bar is gone
    assert log_messages(tmp_path) == SCREEN


# --- the real command line ------------------------------------------------------------------


def test_the_cli_prints_and_keeps_in_train_log_every_epoch_line(tmp_path):
    """Through Hydra's own logging config (console and train.log), once the Trainer calls
    Progress.batches and Progress.end_epoch."""
    from conftest import read_metrics, run_cli

    result = run_cli("data=xor", "model=mlp", "trainer.epochs=3", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    epochs = read_metrics(tmp_path)["epochs_run"]
    kept = [line for line in log_messages(tmp_path) if line.startswith("epoch ")]
    assert [line.split()[1] for line in kept] == [f"{e}/3" for e in range(1, epochs + 1)]
    for line in kept:
        assert len(line) <= 80 and " loss " in line and " val_loss " in line, line
    printed = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert printed == kept


if __name__ == "__main__":
    drive(Path(sys.argv[1]), long_epoch="--long" in sys.argv[2:])
