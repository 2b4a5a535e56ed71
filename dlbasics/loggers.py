"""Where per-epoch metrics go: TensorBoard event files (`logger=tensorboard`) or nowhere."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from torch import Tensor

from dlbasics.schema import check_choice

LOGGERS = ("tensorboard", "none")


@dataclass
class LoggerConfig:
    name: str = "tensorboard"  # tensorboard | none

    def __post_init__(self) -> None:
        check_choice("logger.name", self.name, LOGGERS)


# How often the writer thread flushes its file. SummaryWriter's default, 120 s, would leave
# someone watching TensorBoard (which re-reads its logdir every few seconds) looking at a run
# that stands still for two minutes; a flush every 2 s shows each epoch at the next reload or
# the one after, and costs nothing worth counting. (Without TensorFlow, tensorboard appends
# each record to the file as it goes; with it, or on remote storage, the file is buffered
# until the flush.)
FLUSH_SECONDS = 2
# Events waiting for the writer thread (one per scalar, image or histogram). A hand-off to a
# full queue waits until that thread has written another record, which it checksums in Python
# while holding the interpreter lock; SummaryWriter's default of 10 is full as soon as a few
# fast epochs, or one epoch's per-layer diagnostics, come quicker than it writes. A thousand
# absorbs those bursts and still bounds the memory the waiting events take.
MAX_QUEUE = 1000


class Logger(Protocol):
    def log_scalars(self, scalars: dict[str, float], step: int) -> None: ...

    def log_images(self, images: dict[str, Tensor], step: int) -> None: ...

    def log_histograms(self, values: dict[str, Tensor], step: int) -> None: ...

    def log_figure(self, tag: str, figure: Any, step: int) -> None: ...

    def log_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None: ...

    def close(self) -> None: ...


class NullLogger:
    def log_scalars(self, scalars: dict[str, float], step: int) -> None:
        pass

    def log_images(self, images: dict[str, Tensor], step: int) -> None:
        pass

    def log_histograms(self, values: dict[str, Tensor], step: int) -> None:
        pass

    def log_figure(self, tag: str, figure: Any, step: int) -> None:
        pass

    def log_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardLogger:
    """Scalars per epoch, images, histograms and figures, plus the run's hyper-parameters and
    final metrics for the HParams tab, all in ``log_dir``, through torch's SummaryWriter (the
    events are serialized on the calling thread and written to disk by the writer's thread)."""

    def __init__(self, log_dir: Path):
        from torch.utils.tensorboard import SummaryWriter  # only when logging (import time)

        self.writer = SummaryWriter(
            log_dir=str(log_dir), max_queue=MAX_QUEUE, flush_secs=FLUSH_SECONDS
        )

    def log_scalars(self, scalars: dict[str, float], step: int) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)

    def log_images(self, images: dict[str, Tensor], step: int) -> None:
        """Images as (channels, height, width) tensors with values in [0, 1]."""
        for tag, pixels in images.items():
            self.writer.add_image(tag, pixels, step, dataformats="CHW")

    def log_histograms(self, values: dict[str, Tensor], step: int) -> None:
        for tag, tensor in values.items():
            self.writer.add_histogram(tag, tensor, step, bins="tensorflow")

    def log_figure(self, tag: str, figure: Any, step: int) -> None:
        """A matplotlib figure as an image (the Images tab); the caller keeps the figure."""
        self.writer.add_figure(tag, figure, step, close=False)

    def log_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        # add_hparams writes into the directory log_dir/run_name; without a run_name that is a
        # new sub-directory named by the time, which TensorBoard shows as a second run holding
        # the hyper-parameters but none of the curves. "." names the run's own directory, so
        # the HParams tab shows one run per training run, with its scalars. Its file sits
        # beside the scalars' file: the writer names each by time, host, process and a counter.
        self.writer.add_hparams(hparams, metrics, run_name=".")

    def close(self) -> None:
        """Writes out every event still queued, then closes the file."""
        self.writer.close()


def build_logger(name: str, log_dir: Path) -> Logger:
    return TensorBoardLogger(log_dir) if name == "tensorboard" else NullLogger()
