"""Checkpoints are written atomically, and loading one never runs code stored in it."""

import logging
import os
import signal
import time

import pytest
import torch

from conftest import start_cli, train_in_process
from dlbasics.checkpoint import load_checkpoint, save_checkpoint
from dlbasics.errors import DataError


def test_sigkill_during_a_checkpoint_write_leaves_the_previous_checkpoint_whole(tmp_path):
    # A model big enough (about 1M parameters, 17 MB per last.pt) that each write takes a
    # while, on a small data set (2 steps per epoch), checkpointed after every epoch.
    process = start_cli(
        f"hydra.run.dir={tmp_path}",
        "data=iris",
        "model.hidden=[1024,1024]",
        "trainer.epochs=1000",
        "trainer.early_stopping.enabled=false",
        "trainer.checkpoint_every=1",
        "logger=none",
    )
    checkpoints = tmp_path / "checkpoints"
    try:
        deadline = time.monotonic() + 300
        while not (checkpoints / "last.pt").exists():  # the first write is complete
            assert process.poll() is None and time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.01)
        while not any(t.stat().st_size for t in checkpoints.glob(".last.pt.*.tmp")):
            assert process.poll() is None and time.monotonic() < deadline, "no second write"
            time.sleep(0.0005)
        process.send_signal(signal.SIGKILL)  # the second write is under way
        process.wait(timeout=60)
    finally:
        process.kill()
        process.communicate()
    assert process.returncode == -signal.SIGKILL
    assert list(checkpoints.glob(".last.pt.*.tmp")), "the kill should land mid-write"
    last = load_checkpoint(checkpoints / "last.pt")
    assert last["epoch"] >= 1 and last["model"]["net.2.weight"].shape == (1024, 1024)
    load_checkpoint(checkpoints / "best.pt")

    # The next write to that directory clears the dead process' temporary file.
    save_checkpoint({"model": {}}, checkpoints / "last.pt")
    assert not list(checkpoints.glob(".*.tmp"))


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_resuming_from_a_checkpoint_with_a_pickled_object_is_refused(tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "last.pt"
    torch.save({"format": "dlbasics-checkpoint-1", "model": RunsCode(marker)}, evil)
    with pytest.raises(DataError) as error:
        train_in_process(tmp_path / "run", f"trainer.resume={evil}", "logger=none")
    assert str(error.value).startswith(f"trainer.resume={evil}: checkpoint")
    assert "pickled Python objects" in str(error.value) and "system" in str(error.value)
    assert not marker.exists()


def _real_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {"w": torch.randn(1000, 100)}}, path)
    return path


def test_a_truncated_checkpoint_is_reported_as_such(tmp_path):
    path = _real_checkpoint(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content, words",
    [
        (b"name: mlp\nhidden: [128, 64]\n", "not a PyTorch checkpoint"),
        ("torch", "not a dlbasics checkpoint"),  # a PyTorch file from elsewhere
    ],
)
def test_a_foreign_file_is_reported_as_such(tmp_path, content, words):
    path = tmp_path / "other.pt"
    if content == "torch":
        torch.save({"state_dict": {"w": torch.zeros(3)}}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(DataError, match=words):
        load_checkpoint(path)


# --- damaged or hand-made checkpoints -----------------------------------------------------------

RESUMABLE = ["data=iris", "trainer.epochs=2", "logger=none"]


def test_a_byte_changed_inside_a_tensor_is_found_and_the_resume_refused(tmp_path):
    train_in_process(tmp_path / "run", *RESUMABLE)
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    payload = load_checkpoint(path)
    weight = payload["model"]["net.0.weight"]
    raw = path.read_bytes()
    # Find the weight's stored bytes in the zip (stored uncompressed) and change eight of them.
    start = raw.find(weight.contiguous().numpy().tobytes()[:64])
    assert start > 0
    damaged = bytearray(raw)
    damaged[start + 16 : start + 24] = bytes(b ^ 0xFF for b in damaged[start + 16 : start + 24])
    path.write_bytes(bytes(damaged))
    with pytest.raises(DataError, match=rf"trainer.resume=.*{path} is damaged"):
        train_in_process(tmp_path / "again", *RESUMABLE[:1], "trainer.epochs=4",
                         "logger=none", f"trainer.resume={tmp_path / 'run'}")


def test_a_checkpoint_without_a_checksum_loads_with_a_warning(tmp_path, caplog):
    path = tmp_path / "old.pt"  # as dlbasics wrote them before checksums
    torch.save({"format": "dlbasics-checkpoint-1", "model": {"w": torch.ones(3)}}, path)
    with caplog.at_level(logging.WARNING, logger="dlbasics"):
        payload = load_checkpoint(path)
    assert torch.equal(payload["model"]["w"], torch.ones(3))
    assert any("carries no checksum" in r.message for r in caplog.records)


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda p: p.pop("config"), "'config' is missing"),
        (lambda p: p.update(config=3), "'config' is a int"),
        (lambda p: p.update(training=[]), "'training' is a list"),
    ],
    ids=["config-absent", "config-a-number", "training-a-list"],
)
def test_a_checkpoint_with_missing_or_mistyped_keys_is_refused_naming_them(
    tmp_path, change, words
):
    train_in_process(tmp_path / "run", *RESUMABLE)
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    payload = load_checkpoint(path)
    change(payload)
    save_checkpoint({k: v for k, v in payload.items() if k != "format"}, path)
    with pytest.raises(DataError, match=words):
        train_in_process(tmp_path / "again", "data=iris", "trainer.epochs=4", "logger=none",
                         f"trainer.resume={path}")
