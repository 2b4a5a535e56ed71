"""Where per-epoch metrics go: TensorBoard event files (`logger=tensorboard`) or nowhere."""

from pathlib import Path
from typing import Any, Protocol

from torch import Tensor


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
    """Scalars per epoch, plus the run's hyper-parameters and final metrics for the HParams
    tab, all in one event file under ``log_dir``."""

    def __init__(self, log_dir: Path):
        from torch.utils.tensorboard import SummaryWriter  # slow import; only when used

        self.writer = SummaryWriter(str(log_dir))

    def log_scalars(self, scalars: dict[str, float], step: int) -> None:
        """All of them in one event: handing an event to the writer's thread costs ~70 µs, as
        much as a training step of a small model."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        values = [Summary.Value(tag=tag, simple_value=float(v)) for tag, v in scalars.items()]
        self.writer._get_file_writer().add_summary(Summary(value=values), step)

    def log_images(self, images: dict[str, Tensor], step: int) -> None:
        """Images as (channels, height, width) tensors with values in [0, 1]."""
        for tag, image in images.items():
            self.writer.add_image(tag, image.cpu(), step, dataformats="CHW")

    def log_histograms(self, values: dict[str, Tensor], step: int) -> None:
        for tag, tensor in values.items():
            self.writer.add_histogram(tag, tensor, step)

    def log_figure(self, tag: str, figure: Any, step: int) -> None:
        """A matplotlib figure as an image (the Images tab); the figure stays open."""
        self.writer.add_figure(tag, figure, step, close=False)

    def log_hparams(self, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
        from torch.utils.tensorboard.summary import hparams as hparams_summaries

        # SummaryWriter.add_hparams would start a second run in a sub-directory; writing the
        # three summaries ourselves keeps the hyper-parameters with this run's scalars.
        file_writer = self.writer._get_file_writer()
        for summary in hparams_summaries(hparams, metrics):
            file_writer.add_summary(summary)
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value)

    def close(self) -> None:
        self.writer.close()


def build_logger(name: str, log_dir: Path) -> Logger:
    return TensorBoardLogger(log_dir) if name == "tensorboard" else NullLogger()
