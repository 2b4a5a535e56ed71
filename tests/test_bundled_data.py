"""The bundled data sets hold exactly what scikit-learn's loaders return; they are cached, so
that later runs read them without importing scikit-learn, and a damaged, contended or
unwritable cache never fails a run."""

import io
import logging
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import sklearn
from sklearn import datasets

from dlbasics.data import bundled
from dlbasics.data.bundled import cache_file, read_bundled

TESTS = Path(__file__).parent
LOADERS = {
    "digits": datasets.load_digits,
    "iris": datasets.load_iris,
    "wine": datasets.load_wine,
    "breast_cancer": datasets.load_breast_cancer,
    "diabetes": datasets.load_diabetes,
}


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache directory of this test's own."""
    monkeypatch.setenv("DLBASICS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def assert_as_loaded(arrays, name):
    x, y = arrays.data, arrays.target
    reference = LOADERS[name]()
    np.testing.assert_array_equal(x, reference.data)
    np.testing.assert_array_equal(y, reference.target)
    assert (x.dtype, y.dtype) == (reference.data.dtype, reference.target.dtype)
    assert arrays.feature_names.tolist() == list(reference.feature_names)
    classes = [str(c) for c in reference.get("target_names", [])]
    assert arrays.target_names.tolist() == classes


def no_scikit_learn(name):
    raise AssertionError(f"{name} was loaded from scikit-learn, not from the cache")


def run_python(code: str, *args: str) -> str:
    """Run ``code`` in a fresh interpreter (environment inherited: the cache directory and
    PYTHONPATH), in tests/ so that it can import conftest; its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=TESTS,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def temporary_files(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.is_file() and p.suffix != ".npz"]


@pytest.mark.parametrize("name", list(LOADERS))
def test_values_and_dtypes_are_the_loaders_from_scikit_learn_and_from_the_cache(
    name, cache, monkeypatch
):
    assert_as_loaded(read_bundled(name), name)
    assert cache_file(name).is_file()
    monkeypatch.setattr(bundled, "_load_from_sklearn", no_scikit_learn)
    assert_as_loaded(read_bundled(name), name)


def test_the_cache_is_where_the_environment_says_and_named_by_scikit_learns_version(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("DLBASICS_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "b"))
    assert cache_file("iris").parent == tmp_path / "a" / "bundled"
    # The version comes from the installed distribution's metadata; it must be the one imported.
    assert f"-sklearn{sklearn.__version__}-" in cache_file("iris").name
    monkeypatch.delenv("DLBASICS_CACHE")
    assert cache_file("iris").parent == tmp_path / "b" / "dlbasics" / "bundled"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # to be ignored, says the XDG spec
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_file("iris").parent == tmp_path / "home" / ".cache" / "dlbasics" / "bundled"


def test_a_later_run_reads_the_cache_without_importing_scikit_learn(cache):
    report = (
        "import sys\n"
        "from conftest import make_config\n"
        "from dlbasics.data import build_data\n"
        "import dlbasics\n"
        "print(dlbasics.__file__)\n"
        "for name in ('digits', 'seq_digits'):\n"
        "    build_data(make_config(f'data={name}').data)\n"
        "print(sorted(m for m in ('sklearn', 'scipy', 'matplotlib') if m in sys.modules))\n"
    )
    first = run_python(report).splitlines()
    assert Path(first[0]).is_relative_to(TESTS.parent)  # this tree's dlbasics, not another's
    assert "sklearn" in first[1]  # an empty cache: loaded from scikit-learn
    (file,) = (cache / "bundled").iterdir()
    assert file == cache_file("digits")
    before = file.stat()
    second = run_python(report).splitlines()
    assert second[1] == "[]"
    after = file.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # read only
    assert temporary_files(cache) == []


def _valid_file(path: Path) -> bytes:
    read_bundled("digits")
    return path.read_bytes()


def _flip_a_byte_of_the_pixels(valid: bytes) -> bytes:
    damaged = bytearray(valid)
    damaged[len(damaged) // 2] ^= 0xFF  # the middle of the file: inside the pixels' array
    return bytes(damaged)


def _wrong_arrays(valid: bytes) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, data=np.zeros(3), target=np.zeros(3))  # 1-D data
    return buffer.getvalue()


DAMAGE = {
    "empty": lambda valid: b"",
    "truncated": lambda valid: valid[: len(valid) // 2],
    "last byte lost": lambda valid: valid[:-1],
    "not numpy": lambda valid: b"PK\x03\x04 not really a zip file" * 100,
    "a byte flipped": _flip_a_byte_of_the_pixels,
    "other arrays": _wrong_arrays,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_cache_file_is_rebuilt(damage, cache, caplog):
    path = cache_file("digits")
    path.parent.mkdir(parents=True)
    path.write_bytes(DAMAGE[damage](_valid_file(path)))
    with caplog.at_level(logging.DEBUG, logger="dlbasics"):
        assert_as_loaded(read_bundled("digits"), "digits")
    assert "rebuilding it" in caplog.text
    assert_as_loaded(bundled._read_cache(path), "digits")  # the file is whole again


def test_the_flipped_byte_lands_inside_the_pixels(cache):
    # What makes the test above need zipfile's checksum: the damage is to the array's values.
    read_bundled("digits")
    damaged = cache / "flipped.zip"
    damaged.write_bytes(_flip_a_byte_of_the_pixels(cache_file("digits").read_bytes()))
    with zipfile.ZipFile(damaged) as archive:
        assert archive.testzip() == "data.npy"


def test_concurrent_runs_fill_an_empty_cache_and_never_read_a_partial_file(cache):
    # Two runs of a sweep start together on an empty cache: both load the set and write the
    # file, then go on rewriting it, while this process reads it over and over.
    run = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "import numpy as np\n"
        "from dlbasics.data import bundled\n"
        "while not Path(sys.argv[1]).exists():\n"
        "    time.sleep(0.005)\n"  # start together, as far as possible
        "arrays = bundled.read_bundled('digits')\n"
        "for _ in range(100):\n"
        "    bundled._write_cache(bundled.cache_file('digits'), arrays)\n"
        "np.savez(sys.argv[2], **vars(arrays))\n"
    )
    go, path = cache.parent / "go", cache_file("digits")
    runs = [
        subprocess.Popen([sys.executable, "-c", run, str(go), str(cache.parent / f"{i}.npz")])
        for i in range(2)
    ]
    go.touch()
    reads = []
    while any(run.poll() is None for run in runs):
        if path.exists():  # once there, it is only ever replaced
            reads.append(bundled._read_cache(path))
        time.sleep(0.002)  # leave the runs some of a small machine's cores
    assert [run.wait() for run in runs] == [0, 0]
    partial = sum(read is None for read in reads)
    assert reads and partial == 0, f"{partial} of {len(reads)} reads found no whole file"
    for i in range(2):
        with np.load(cache.parent / f"{i}.npz") as got:
            assert_as_loaded(bundled.BundledSet(**got), "digits")
    assert list((cache / "bundled").iterdir()) == [path]
    assert_as_loaded(bundled._read_cache(path), "digits")


def test_an_unwritable_cache_directory_still_gives_the_data(tmp_path, monkeypatch, caplog):
    (tmp_path / "a file").touch()
    monkeypatch.setenv("DLBASICS_CACHE", str(tmp_path / "a file" / "cache"))  # not a directory
    with caplog.at_level(logging.DEBUG, logger="dlbasics"):
        assert_as_loaded(read_bundled("iris"), "iris")
        assert_as_loaded(read_bundled("iris"), "iris")
    assert "not cached" in caplog.text


def test_a_refused_rename_leaves_no_temporary_file(cache, monkeypatch):
    def refuse(source, target):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    assert_as_loaded(read_bundled("breast_cancer"), "breast_cancer")
    assert list((cache / "bundled").iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_cache_directory_still_gives_the_data(cache):
    cache.mkdir()
    cache.chmod(0o500)
    try:
        assert_as_loaded(read_bundled("wine"), "wine")
        assert list(cache.iterdir()) == []
    finally:
        cache.chmod(0o700)
