"""The event files of a run, read back with TensorBoard's own reader."""

import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

from conftest import make_config, train_in_process
from dlbasics.loggers import FLUSH_SECONDS, MAX_NAME_BYTES, TensorBoardLogger, run_name
from dlbasics.run import hparams, train

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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


def test_scalars_images_histograms_and_figures_reach_the_disk_on_close(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logger = TensorBoardLogger(tmp_path / "tb")
    # More events than SummaryWriter's default queue holds: close() writes out every one.
    for epoch in range(1, 51):
        logger.log_scalars({"loss/train": 1 / epoch, "lr": 0.1}, epoch)
    logger.log_images({"filters": torch.linspace(0, 1, 3 * 8 * 10).reshape(3, 8, 10)}, 50)
    logger.log_histograms({"weights": torch.arange(100.0) - 49.5}, 50)
    figure = plt.figure(figsize=(3, 2), dpi=50)
    figure.gca().plot([0, 1], [1, 0])
    logger.log_figure("boundary", figure, 50)
    assert plt.fignum_exists(figure.number)  # the caller closes its figure
    plt.close(figure)
    logger.close()

    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    losses = events.Scalars("loss/train")
    assert [s.step for s in losses] == list(range(1, 51))
    assert [s.value for s in losses] == pytest.approx([1 / e for e in range(1, 51)])
    (image,) = events.Images("filters")
    assert (image.step, image.width, image.height) == (50, 10, 8)
    assert image.encoded_image_string.startswith(PNG_MAGIC)
    (histogram,) = events.Histograms("weights")
    value = histogram.histogram_value
    assert (histogram.step, value.num, value.min, value.max) == (50, 100, -49.5, 49.5)
    assert value.sum == pytest.approx(0.0)
    # TensorFlow's buckets: edges at ±1e-12·1.1^k, so a bucket ends just above 49.5
    assert 49.5 < value.bucket_limit[-1] < 49.5 * 1.1
    (picture,) = events.Images("boundary")
    assert (picture.width, picture.height) == (150, 100)  # 3 × 2 inches at 50 dpi
    assert picture.encoded_image_string.startswith(PNG_MAGIC)


def test_events_reach_the_disk_while_the_logger_is_open(tmp_path):
    """Someone watching TensorBoard sees the epochs as they come, not at the end of the run."""
    logger = TensorBoardLogger(tmp_path / "tb")
    try:
        logger.log_scalars({"loss/train": 0.5}, 1)
        deadline = time.monotonic() + 30 * FLUSH_SECONDS  # a bound on the wait, not a timing
        while "loss/train" not in _events(tmp_path).Tags()["scalars"]:
            assert time.monotonic() < deadline, "no event reached the disk before close()"
            time.sleep(0.05)
        assert [s.value for s in _events(tmp_path).Scalars("loss/train")] == [0.5]
    finally:
        logger.close()


def test_hparams_carry_the_config_and_final_metrics(tmp_path):
    metrics = train_in_process(
        tmp_path, "data=iris", "optim=momentum", "optim.lr=0.02", "trainer.epochs=2"
    )
    # In the run's own directory, beside its scalars (EventAccumulator reads no sub-directory):
    # TensorBoard's HParams tab shows the training run itself, not a second run.
    assert [p for p in (tmp_path / "tb").iterdir() if p.is_dir()] == []
    events = _events(tmp_path)
    assert "loss/train" in events.Tags()["scalars"]
    content = events.PluginTagToContent("hparams")
    # A session's start and end, and no experiment summary: with one, TensorBoard would show
    # the first five keys by name (act.name, act.negative_slope, data.name, …) whatever varies.
    assert set(content) == {"_hparams_/session_start_info", "_hparams_/session_end_info"}
    session = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]
    ).session_start_info
    hparams = session.hparams
    assert hparams["model.name"].string_value == "mlp"
    assert hparams["optim.name"].string_value == "momentum"
    assert abs(hparams["optim.lr"].number_value - 0.02) < 1e-9
    assert hparams["model.hidden"].string_value == "[128, 64]"
    assert hparams["data.standardize"].WhichOneof("kind") == "bool_value"
    assert hparams["trainer.early_stopping.enabled"].bool_value is True
    # the chosen components' keys, not how the run was carried out or watched
    assert not any(key.startswith(("logger.", "diag.", "trainer.threads")) for key in hparams)
    end = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_end_info"])
    assert end.session_end_info.status == api_pb2.STATUS_SUCCESS
    # the metrics' values, which the HParams tab reads from the run's scalars
    assert events.Scalars("final/test_acc")[-1].value == pytest.approx(metrics["test_acc"])


def test_hparams_put_the_swept_keys_first_and_leave_out_what_the_model_ignores():
    mlp = hparams(make_config("act=tanh", "optim.lr=0.01"), first=["optim.lr", "act"])
    assert list(mlp)[:2] == ["optim.lr", "act.name"]  # a swept group is its name's column
    assert {"model.name", "data.name", "reg.l2", "seed"} <= set(mlp)
    perceptron = hparams(make_config("model=perceptron", "data=or", "optim=sgd"))
    assert not any(key.startswith(("act", "reg.")) for key in perceptron)


def test_a_run_named_by_its_overrides_writes_its_events_under_that_name(tmp_path):
    train(make_config("data=xor", "trainer.epochs=1"), tmp_path, progress=False, name="a=1,b=x")
    assert [p.name for p in (tmp_path / "tb").iterdir()] == ["a=1,b=x"]
    events = EventAccumulator(str(tmp_path / "tb" / "a=1,b=x"))
    events.Reload()
    assert "loss/train" in events.Tags()["scalars"]


def test_run_names_are_single_directory_names_of_bounded_length():
    assert run_name("act=tanh,model=dnn") == "act=tanh,model=dnn"
    assert run_name("data.path=data/x.csv") == "data.path=data_x.csv"  # no sub-directory
    long = ",".join(f"model.hidden=[{n}]" for n in range(40))
    other = long[:-3] + "99]"
    assert len(run_name(long).encode()) <= MAX_NAME_BYTES
    assert run_name(long) != run_name(other)  # cut, yet still two names
    assert run_name(long).startswith("model.hidden=[0],model.hidden=[1]")


def test_l2_penalty_is_logged(tmp_path):
    train_in_process(tmp_path, "data=iris", "reg=l2", "reg.l2=0.01", "trainer.epochs=3")
    values = [s.value for s in _events(tmp_path).Scalars("reg/penalty")]
    assert len(values) == 3 and all(v > 0 for v in values)


def test_logger_none_writes_no_event_files(tmp_path):
    train_in_process(tmp_path, "data=iris", "trainer.epochs=2", "logger=none")
    assert not (tmp_path / "tb").exists()
