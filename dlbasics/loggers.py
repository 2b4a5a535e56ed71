"""Where per-epoch metrics go: TensorBoard event files (`logger=tensorboard`) or nowhere."""

import hashlib
import time
from pathlib import Path
from typing import Any, Protocol

from torch import Tensor

# The schema of `logger`, kept importable from here (dlbasics/schemas/loggers.py).
from dlbasics.schemas.loggers import LOGGERS, LoggerConfig  # noqa: F401

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
# A run's name (the overrides that made it) becomes a directory name: most file systems take at
# most 255 bytes per name. A longer one keeps its first bytes and a digest of the whole, so two
# long names that differ only at their ends stay two directories.
MAX_NAME_BYTES = 200
DIGEST_CHARS = 10


class Logger(Protocol):
    def log_scalars(self, scalars: dict[str, float], step: int) -> None: ...

    def log_images(self, images: dict[str, Tensor], step: int) -> None: ...

    def log_histograms(self, values: dict[str, Tensor], step: int) -> None: ...

    def log_figure(self, tag: str, figure: Any, step: int) -> None: ...

    def log_text(self, tag: str, text: str, step: int) -> None: ...

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

    def log_text(self, tag: str, text: str, step: int) -> None:
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

    def log_text(self, tag: str, text: str, step: int) -> None:
        """Markdown text (the Text tab): a seq2seq model's translations."""
        self.writer.add_text(tag, text, step)

    def log_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        """The run's hyper-parameters (str, bool, int or float values) and final metrics, for
        the HParams tab.

        The metrics are scalars of the run. The hyper-parameters go in a session's start and
        end records, in the run's own directory: TensorBoard shows the run itself, with its
        curves, as one row. No experiment summary is written (SummaryWriter.add_hparams
        writes one per run): without one, TensorBoard gathers the columns from every run's
        session and puts first those whose values differ (the swept keys), then the others
        by name; with one, it shows the first columns by name whatever differs. The metric
        columns are then the runs' scalar tags."""
        from tensorboard.plugins.hparams import summary_v2

        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value)
        self.writer.file_writer.add_summary(summary_v2.hparams_pb(hparams))
        self.writer.file_writer.add_summary(session_end())

    def close(self) -> None:
        """Writes out every event still queued, then closes the file."""
        self.writer.close()


def session_end() -> Any:
    """The HParams record that ends a training session (successfully), as a Summary proto,
    built from the hparams plugin's own metadata and protos: its ready-made
    ``summary.session_end_pb`` imports TensorFlow, which dlbasics does not install."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
    data = plugin_data_pb2.HParamsPluginData(session_end_info=end)
    summary = Summary()
    summary.value.add(
        tag=metadata.SESSION_END_INFO_TAG,
        metadata=metadata.create_summary_metadata(data),
        tensor=metadata.NULL_TENSOR,
    )
    return summary


def run_name(overrides: str) -> str:
    """A run's directory name under ``tb/`` from its overrides (Hydra's
    ``hydra.job.override_dirname``, e.g. ``act=tanh,model=dnn``): TensorBoard names each run
    by its directory, so a sweep's curves carry what differs between its jobs. A ``/`` in a
    value (a file path) becomes ``_``; past MAX_NAME_BYTES the name is cut and ends with a
    digest of the whole. Empty (no overrides): the run's events stay in ``tb/`` itself."""
    name = overrides.replace("/", "_")
    if name in (".", ".."):
        name = name.replace(".", "_")
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:DIGEST_CHARS]
    kept = name.encode()[: MAX_NAME_BYTES - DIGEST_CHARS - 1].decode(errors="ignore")
    return f"{kept}~{digest}"


def build_logger(name: str, log_dir: Path) -> Logger:
    return TensorBoardLogger(log_dir) if name == "tensorboard" else NullLogger()
