"""Where per-epoch metrics go: TensorBoard event files (`logger=tensorboard`) or nowhere."""

import time
from pathlib import Path
from typing import Any, Protocol

from torch import Tensor

HAND_OFF_SECONDS = 1.0  # how long scalars may wait before going to TensorBoard's writer


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


def checksum_records_in_c() -> None:
    """Have TensorBoard's writer checksum its records with google-crc32c's C code.

    Every record of an event file ends with a CRC32C checksum, which tensorboard's writer
    computes in pure Python, on its own thread but holding the interpreter lock: 20 µs for an
    epoch's scalars, 4 ms for a 20 KB image, time taken from training. google-crc32c computes
    the same checksum (tests/test_tensorboard.py compares them) in 0.2 µs. Without its C
    extension, the writer keeps its own."""
    import google_crc32c
    from tensorboard.summary.writer import record_writer

    if google_crc32c.implementation != "c":
        return

    def masked_crc32c(data: bytes) -> int:  # the masking of tensorboard's masked_crc32c
        crc = google_crc32c.value(data)
        return (((crc >> 15) | ((crc << 17) & 0xFFFFFFFF)) + 0xA282EAD8) & 0xFFFFFFFF

    record_writer.masked_crc32c = masked_crc32c


class TensorBoardLogger:
    """Scalars per epoch, plus the run's hyper-parameters and final metrics for the HParams
    tab, all in one event file under ``log_dir``.

    Scalars reach the writer's thread once a second rather than every epoch: each hand-off
    wakes that thread, which then competes with training for the interpreter (0.4-0.6 ms an
    epoch on a 2-core CPU, as long as an epoch of a hand-written loop on a 4-sample data set).
    The writer writes the file every two minutes and on close anyway (SummaryWriter's
    flush_secs).

    The writer's queue is unbounded (max_queue=0). With SummaryWriter's default of 10, a
    hand-off of more epochs waits for that thread to write them: 200 epochs took 70-280 ms to
    hand off (with tensorboard's pure-Python checksums), 4.5 ms with the unbounded queue."""

    def __init__(self, log_dir: Path):
        from torch.utils.tensorboard import SummaryWriter  # slow import; only when used

        checksum_records_in_c()
        self.writer = SummaryWriter(str(log_dir), max_queue=0)
        self.pending: list[tuple[int, float, dict[str, float]]] = []  # (step, wall time, scalars)
        self.hand_off_at = time.monotonic() + HAND_OFF_SECONDS

    def log_scalars(self, scalars: dict[str, float], step: int) -> None:
        self.pending.append((step, time.time(), scalars))
        if time.monotonic() >= self.hand_off_at:
            self.hand_off()

    def hand_off(self) -> None:
        """Give the pending scalars to the writer, each epoch's as one event."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        file_writer = self.writer._get_file_writer()
        for step, wall_time, scalars in self.pending:
            values = [Summary.Value(tag=tag, simple_value=float(v)) for tag, v in scalars.items()]
            file_writer.add_summary(Summary(value=values), step, wall_time)
        self.pending.clear()
        self.hand_off_at = time.monotonic() + HAND_OFF_SECONDS

    def log_images(self, images: dict[str, Tensor], step: int) -> None:
        """Images as (channels, height, width) tensors with values in [0, 1]."""
        self.hand_off()  # the file keeps the order of the steps
        for tag, image in images.items():
            self.writer.add_image(tag, image.cpu(), step, dataformats="CHW")

    def log_histograms(self, values: dict[str, Tensor], step: int) -> None:
        self.hand_off()  # the file keeps the order of the steps
        for tag, tensor in values.items():
            self.writer.add_histogram(tag, tensor, step)

    def log_figure(self, tag: str, figure: Any, step: int) -> None:
        """A matplotlib figure as an image (the Images tab); the figure stays open."""
        self.hand_off()  # the file keeps the order of the steps
        self.writer.add_figure(tag, figure, step, close=False)

    def log_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        from torch.utils.tensorboard.summary import hparams as hparams_summaries

        self.hand_off()
        # SummaryWriter.add_hparams would start a second run in a sub-directory; writing the
        # three summaries ourselves keeps the hyper-parameters with this run's scalars.
        file_writer = self.writer._get_file_writer()
        for summary in hparams_summaries(hparams, metrics):
            file_writer.add_summary(summary)
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value)

    def close(self) -> None:
        self.hand_off()
        self.writer.close()


def build_logger(name: str, log_dir: Path) -> Logger:
    return TensorBoardLogger(log_dir) if name == "tensorboard" else NullLogger()
