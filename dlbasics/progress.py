"""What a fit shows while it runs: one logged line per epoch, and on a terminal a live bar.

Every epoch ends with one line, logged to ``logging.getLogger("dlbasics")``: Hydra's console
handler prints it, its file handler keeps it in ``<run dir>/train.log``, and it stays on the
screen like the lines of Keras' ``fit``. It fits in 80 columns::

    epoch  3/20  loss 0.1234  acc 0.9650  val_loss 0.1234  val_acc 0.9650  1.2s

On a terminal, an epoch that runs for more than ``DELAY`` seconds also shows a tqdm bar
(steps done, steps/s, time left) that disappears when the epoch ends; in a Jupyter notebook
the bar is tqdm's widget (``tqdm.auto``, with ipywidgets installed). Anywhere else (a pipe,
a file, CI, ``| tee``) there is no bar, only the plain lines. ``TQDM_DISABLE=1`` turns the bar
off on a terminal too.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
from collections.abc import Iterable
from typing import TextIO, TypeVar

# tqdm.auto: the terminal's bar, or in a Jupyter notebook its widget (with ipywidgets)
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

T = TypeVar("T")

log = logging.getLogger("dlbasics")

WIDTH = 80  # columns of the smallest terminal in common use; the line must not wrap there
DELAY = 2.0  # seconds an epoch runs before its bar appears: short epochs need none
# The epoch line's names for the Trainer's metrics, as Keras' fit names them.
SHORT_NAMES = {
    "train_loss": "loss",
    "train_acc": "acc",
    "val_loss": "val_loss",
    "val_acc": "val_acc",
}
# {rate_noinv_fmt}: steps/s even when a step takes over a second (tqdm would show s/step).
BAR_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
    "[{elapsed}<{remaining}, {rate_noinv_fmt}]"
)


class Progress:
    """The epoch lines of one fit and, on a terminal, a live bar inside each epoch.

    Use it as a context manager around the fit: on a terminal, console logging then goes
    through ``tqdm.write``, so that a message logged while a bar is up does not cut into it.
    """

    def __init__(self, epochs: int, monitor: str, stream: TextIO | None = None):
        self.epochs = epochs
        self.monitor = monitor
        # The loggers whose console handlers print the epoch lines (Hydra's: the root's).
        self._consoles = _console_loggers(log)
        if stream is None:
            handlers = [h for logger in self._consoles for h in logger.handlers]
            consoles = [h.stream for h in handlers if _is_console(h)]
            stream = consoles[0] if consoles else sys.stderr
        self.stream = stream
        self.live = _is_terminal(stream) or in_notebook()
        self._bar: tqdm | None = None
        self._exit = contextlib.ExitStack()

    def __enter__(self) -> Progress:
        if self.live and self._consoles:
            self._exit.enter_context(logging_redirect_tqdm(self._consoles))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def batches(self, epoch: int, batches: Iterable[T], total: int) -> Iterable[T]:
        """One epoch's batches; on a terminal, wrapped in a bar that shows up after ``DELAY``
        seconds and is cleared when the epoch's batches run out (or the loop breaks)."""
        if not self.live:
            return batches  # a plain for loop: nothing added per step
        self._close_bar()
        self._bar = tqdm(
            batches,
            total=total,
            desc=f"epoch {epoch}/{self.epochs}",
            unit=" steps",
            bar_format=BAR_FORMAT,
            leave=False,
            delay=DELAY,
            file=self.stream,
            dynamic_ncols=True,  # follows the terminal's width, also when it is resized
        )
        return self._bar

    def end_epoch(self, epoch: int, metrics: dict[str, float | None], seconds: float) -> None:
        """Log the epoch's line (console and train.log)."""
        self._close_bar()
        log.info(epoch_line(epoch, self.epochs, metrics, seconds, self.monitor))

    def close(self) -> None:
        """Clear a bar left by an epoch that stopped part-way; give console logging back."""
        self._close_bar()
        self._exit.close()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class NullProgress:
    """Shows nothing: for a fit asked to be quiet (tests, ranks other than the first)."""

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def batches(self, epoch: int, batches: Iterable[T], total: int) -> Iterable[T]:
        return batches

    def end_epoch(self, epoch: int, metrics: dict[str, float | None], seconds: float) -> None:
        pass

    def close(self) -> None:
        pass


def epoch_line(
    epoch: int,
    epochs: int,
    metrics: dict[str, float | None],
    seconds: float,
    monitor: str = "val_loss",
    width: int = WIDTH,
) -> str:
    """The epoch's one line: epoch i/N, the train and validation loss (and accuracy), the
    monitored metric when it is another one, and the epoch's duration; at most ``width``
    characters.

    Two spaces between fields, four decimals where they fit; otherwise one space, then three
    digits. A line that fits in none of these (values of extreme magnitude, a vast epoch
    count) is cut, so that it never wraps.
    """
    names = [name for name in SHORT_NAMES if metrics.get(name) is not None]
    if monitor not in SHORT_NAMES and metrics.get(monitor) is not None:
        names.append(monitor)
    counter = f"epoch {epoch:>{len(str(epochs))}}/{epochs}"
    line = ""
    for sep, digits in (("  ", 4), (" ", 4), (" ", 3)):
        shown = [f"{SHORT_NAMES.get(n, n)} {_number(n, metrics[n], digits)}" for n in names]
        line = sep.join([counter, *shown, _duration(seconds)])
        if len(line) <= width:
            return line
    return line[: width - 3] + "..."


def _number(name: str, value: float, digits: int) -> str:
    """A metric's value: fixed point, or scientific notation where that would hide digits
    (below 0.01) or take more room (1000 and above)."""
    if not math.isfinite(value):
        return str(value)
    if name.endswith("_acc") or value == 0 or 1e-2 <= abs(value) < 1e3:
        return f"{value:.{digits}f}"
    return f"{value:.{digits - 1}e}"


def _duration(seconds: float) -> str:
    """Five characters below 10 hours (``12.3s``, ``754s``, ``2h47m``): the line keeps its
    layout as epochs grow longer."""
    if seconds < 99.95:
        return f"{seconds:.1f}s"
    if seconds < 9999.5:
        return f"{seconds:.0f}s"
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _is_console(handler: logging.Handler) -> bool:
    # tqdm's own test (logging_redirect_tqdm replaces exactly these handlers).
    return isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) in (
        sys.stdout,
        sys.stderr,
    )


def _console_loggers(logger: logging.Logger) -> list[logging.Logger]:
    """The loggers, from ``logger`` up to the root, that print its records on the console."""
    found = []
    current: logging.Logger | None = logger
    while current is not None:
        if any(_is_console(h) for h in current.handlers):
            found.append(current)
        current = current.parent if current.propagate else None
    return found


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (a notebook), where tqdm.auto draws the bar as a
    widget: tqdm's own test, which imports nothing."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _is_terminal(stream: TextIO) -> bool:
    # A dumb terminal (Emacs' compilation buffer, some CI consoles) cannot redraw a line.
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"
