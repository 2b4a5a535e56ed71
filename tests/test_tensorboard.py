"""The event files of a run, read back with TensorBoard's own reader."""

import struct

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from conftest import train_in_process
from dlbasics.loggers import TensorBoardLogger


def _events(run_dir):
    events = EventAccumulator(str(run_dir / "tb"))
    events.Reload()
    return events


def test_event_files_hold_the_per_epoch_scalars(tmp_path):
    metrics = train_in_process(
        tmp_path, "data=iris", "trainer.epochs=6", "trainer.early_stopping.enabled=false"
    )
    events = _events(tmp_path)
    scalars = set(events.Tags()["scalars"])
    for tag in ("loss/train", "loss/val", "acc/train", "acc/val", "lr"):
        assert tag in scalars, tag
        assert [s.step for s in events.Scalars(tag)] == list(range(1, 7))
    assert events.Scalars("loss/val")[-1].value == pytest.approx(metrics["val_loss"], rel=1e-5)
    assert events.Scalars("final/test_acc")[0].value == pytest.approx(metrics["test_acc"], rel=1e-5)


def test_events_reach_the_file_once_a_second_and_on_close(tmp_path):
    """Written into a buffer on the training thread: many fast epochs go to disk at once, an
    epoch that took longer than a second goes at once."""
    logger = TensorBoardLogger(tmp_path / "tb")
    for epoch in range(1, 51):
        logger.log_scalars({"loss/train": 1 / epoch, "lr": 0.1}, epoch)
    assert _events(tmp_path).Tags()["scalars"] == []  # in memory: written under a second ago
    logger.events.flush_at = 0.0  # as if a second had passed since the last write to disk
    logger.log_scalars({"loss/train": 1 / 51, "lr": 0.1}, 51)
    assert len(_events(tmp_path).Scalars("loss/train")) == 51
    logger.log_scalars({"loss/train": 1 / 52, "lr": 0.1}, 52)
    logger.close()
    losses = _events(tmp_path).Scalars("loss/train")
    assert [s.step for s in losses] == list(range(1, 53))
    assert [s.value for s in losses] == pytest.approx([1 / e for e in range(1, 53)])


def test_records_carry_the_checksums_tensorboard_computes(tmp_path):
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    logger = TensorBoardLogger(tmp_path / "tb")
    for data in (b"", b"\x00" * 8, bytes(range(256)) * 40, "étiquette/loss".encode()):
        assert logger.events._masked_crc(data) == struct.pack("<I", masked_crc32c(data))
    # TensorBoard's reader drops records whose checksum is wrong: these must come back.
    logger.log_scalars({"loss/train": 0.5}, 1)
    logger.log_images({"filters": torch.rand(1, 8, 8)}, 1)
    logger.log_histograms({"weights": torch.randn(100)}, 1)
    logger.close()
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    events.Reload()
    assert [s.value for s in events.Scalars("loss/train")] == [0.5]
    assert len(events.Images("filters")) == 1
    (histogram,) = events.Histograms("weights")
    assert histogram.histogram_value.num == 100


def test_hparams_carry_the_config_and_final_metrics(tmp_path):
    train_in_process(tmp_path, "data=iris", "optim=momentum", "optim.lr=0.02", "trainer.epochs=2")
    content = _events(tmp_path).PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]
    ).session_start_info
    assert session.hparams["optim.name"].string_value == "momentum"
    assert abs(session.hparams["optim.lr"].number_value - 0.02) < 1e-9
    assert session.hparams["model.hidden"].string_value == "[128, 64]"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/experiment"]
    ).experiment
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    assert {"final/test_acc", "final/test_loss", "final/best_val_loss"} <= metric_tags


def test_l2_penalty_is_logged(tmp_path):
    train_in_process(tmp_path, "data=iris", "reg=l2", "reg.l2=0.01", "trainer.epochs=3")
    values = [s.value for s in _events(tmp_path).Scalars("reg/penalty")]
    assert len(values) == 3 and all(v > 0 for v in values)


def test_logger_none_writes_no_event_files(tmp_path):
    train_in_process(tmp_path, "data=iris", "trainer.epochs=2", "logger=none")
    assert not (tmp_path / "tb").exists()
