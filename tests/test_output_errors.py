"""An output directory that cannot be written, or a disk that fills up, is reported as soon
as it is known: before training where possible, and without damaging what was written."""

import resource
import shutil

import pytest

from conftest import run_cli
from dlbasics.errors import OutputError
from dlbasics.preflight import check_free_space
from dlbasics.sweeps.curves import event_dir


def test_an_unwritable_run_directory_is_reported_before_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run_cli(f"hydra.run.dir={blocker / 'run'}")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: cannot write the run directory")
    assert str(blocker) in result.stderr and "hydra.run.dir" in result.stderr
    assert "epoch" not in result.stdout


def test_too_little_free_space_is_reported_before_training(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    check_free_space(tmp_path, needed=1)
    with pytest.raises(OutputError, match="MiB free, but this run's checkpoints"):
        check_free_space(tmp_path, needed=2 * free)


def test_a_full_disk_during_training_stops_the_run_and_keeps_what_was_written(tmp_path):
    # A file-size limit makes writes past 4 MiB fail the way a full disk does: the logs and
    # TensorBoard fit, the 17 MB last.pt of this 1M-parameter model does not.
    limit = 4 << 20
    result = run_cli(
        f"hydra.run.dir={tmp_path}",
        "data=iris",
        "model.hidden=[1024,1024]",
        "trainer.epochs=3",
        "trainer.checkpoint_every=1",
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: could not write {tmp_path / 'checkpoints'}/last.pt")
    assert "File too large" in result.stderr and "no partial file is left" in result.stderr
    assert result.stdout.count("epoch ") == 1  # stopped as soon as the first write failed
    assert list(event_dir(tmp_path).glob("events.out.tfevents.*"))  # tb/<overrides>/
    assert (tmp_path / "train.log").read_text()
    assert not list((tmp_path / "checkpoints").iterdir())
