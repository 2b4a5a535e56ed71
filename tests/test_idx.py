"""`data=idx`: MNIST-format files the test writes itself, byte by byte as the format says,
read back; and every broken file named in a clear error."""

import gzip
import struct

import numpy as np
import pytest
import torch

from conftest import make_config, train_in_process
from dlbasics.data import build_data
from dlbasics.data.idx import read_idx
from dlbasics.errors import ConfigError, DataError

N_CLASSES, SIDE = 4, 10


def write_idx(path, array, gz=False):
    """An IDX file of unsigned bytes: 0x00 0x00, type 0x08, the number of dimensions, each
    size as a big-endian 32-bit integer, then the values in C order."""
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    content = header + array.tobytes()
    path.write_bytes(gzip.compress(content) if gz else content)


def images_of_classes(labels, rng):
    """Each class lights a different quadrant; the rest is noise, so a model can learn it."""
    images = rng.integers(0, 60, size=(len(labels), SIDE, SIDE))
    half = SIDE // 2
    for i, label in enumerate(labels):
        row, col = divmod(int(label), 2)
        images[i, row * half : (row + 1) * half, col * half : (col + 1) * half] += 180
    return images


def write_mnist_dir(root, n_train=200, n_test=80, gz=False, sep="-"):
    root.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % N_CLASSES
        write_idx(
            root / f"{split}-images{sep}idx3-ubyte{suffix}", images_of_classes(labels, rng), gz
        )
        write_idx(root / f"{split}-labels{sep}idx1-ubyte{suffix}", labels, gz)
    return root


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_returns_the_values_written(tmp_path, gz):
    values = np.arange(2 * 3 * 5).reshape(2, 3, 5)
    write_idx(tmp_path / "images", values, gz=gz)
    assert torch.equal(read_idx(tmp_path / "images", "images"), torch.from_numpy(values).byte())


@pytest.mark.parametrize("gz, sep", [(False, "-"), (True, "-"), (False, ".")])
def test_data_idx_reads_a_directory_into_image_splits(tmp_path, gz, sep):
    write_mnist_dir(tmp_path, gz=gz, sep=sep)
    data = build_data(make_config("data=idx", f"data.root={tmp_path}", "data.val_size=40").data)
    assert data.spec.input_shape == (1, SIDE, SIDE)
    assert (data.spec.task, data.spec.n_classes) == ("multiclass", N_CLASSES)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (160, 40, 80)
    assert torch.equal(data.y_test, torch.arange(80) % N_CLASSES)  # the t10k file, in order
    assert torch.bincount(data.y_val).tolist() == [10] * N_CLASSES  # stratified
    assert data.x_train.mean().abs() < 1e-4  # standardised on the training split


def test_data_idx_limit_takes_the_first_training_images(tmp_path):
    write_mnist_dir(tmp_path)
    cfg = make_config("data=idx", f"data.root={tmp_path}", "data.limit=100", "data.val_size=20")
    data = build_data(cfg.data)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (80, 20, 80)


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_models_learn_from_idx_files(tmp_path, model):
    write_mnist_dir(tmp_path / "mnist")
    overrides = ["model.channels=[8]", "model.dense=[]"] if model == "cnn" else []
    metrics = train_in_process(
        tmp_path / "run",
        f"model={model}",
        *overrides,
        "data=idx",
        f"data.root={tmp_path / 'mnist'}",
        "trainer.epochs=10",
        "logger=none",
    )
    assert metrics["test_acc"] > 0.9  # chance: 0.25


def test_a_missing_file_is_named(tmp_path):
    write_mnist_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte \(or \.gz\) is missing"):
        build_data(make_config("data=idx", f"data.root={tmp_path}").data)


def test_a_wrong_magic_number_is_named(tmp_path):
    write_mnist_dir(tmp_path)
    # The labels file where the images file belongs: one dimension, magic 0x00000801.
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes((tmp_path / "train-labels-idx1-ubyte").read_bytes())
    with pytest.raises(DataError) as error:
        build_data(make_config("data=idx", f"data.root={tmp_path}").data)
    assert str(path) in str(error.value)
    assert "wrong magic number 0x00000801" in str(error.value)
    assert "0x00000803" in str(error.value)


@pytest.mark.parametrize("gz", [False, True])
def test_a_truncated_file_is_named(tmp_path, gz):
    write_mnist_dir(tmp_path, gz=gz)
    path = tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(DataError, match="truncated") as error:
        build_data(make_config("data=idx", f"data.root={tmp_path}").data)
    assert str(path) in str(error.value)


def test_a_truncated_header_is_named(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(struct.pack(">BBBB", 0, 0, 0x08, 1) + b"\x00\x00")
    with pytest.raises(DataError, match="truncated inside its header"):
        read_idx(path, "labels")


def test_image_and_label_counts_must_agree(tmp_path):
    write_mnist_dir(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(150))
    with pytest.raises(DataError, match="200 images .* 150 labels"):
        build_data(make_config("data=idx", f"data.root={tmp_path}").data)


@pytest.mark.parametrize("val_size", ["0.001", "200"])
def test_val_size_must_leave_samples_for_both_sets(tmp_path, val_size):
    write_mnist_dir(tmp_path)
    cfg = make_config("data=idx", f"data.root={tmp_path}", f"data.val_size={val_size}")
    with pytest.raises(ConfigError, match=f"data.val_size={float(val_size)} holds out"):
        build_data(cfg.data)


def test_data_idx_needs_a_root():
    with pytest.raises(ConfigError, match="data.root=None .* train-images-idx3-ubyte"):
        make_config("data=idx")


def test_a_root_that_is_not_a_directory_is_named(tmp_path):
    with pytest.raises(DataError, match="no such directory"):
        build_data(make_config("data=idx", f"data.root={tmp_path / 'nowhere'}").data)


def test_test_images_of_another_size_are_found_before_training(tmp_path):
    write_mnist_dir(tmp_path)
    labels = np.arange(80) % N_CLASSES
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((80, SIDE + 2, SIDE + 2)))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels)
    with pytest.raises(DataError, match=r"12×12 pixels, but .*train-images.* of 10×10"):
        build_data(make_config("data=idx", f"data.root={tmp_path}").data)


def test_test_labels_of_classes_the_training_labels_lack_are_refused(tmp_path):
    write_mnist_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.full(80, 7))  # training: 0 to 3
    with pytest.raises(DataError, match=r"classes \[7\] that no training label"):
        build_data(make_config("data=idx", f"data.root={tmp_path}").data)


def test_a_damaged_gzip_stream_is_named(tmp_path):
    write_mnist_dir(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[10:14] = b"\xff" * 4  # the first deflate block's header: zlib.error, not a bad CRC
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="cannot decompress") as error:
        build_data(make_config("data=idx", f"data.root={tmp_path}").data)
    assert str(path) in str(error.value)
