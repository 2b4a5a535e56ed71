"""``outputs/latest`` and ``multirun/latest``: the newest run or sweep under a directory, so
that a command can name the run just trained without copying its time-stamped path::

    .venv/bin/python scripts/predict.py outputs/latest data=digits
    .venv/bin/python scripts/train.py trainer.resume=outputs/latest
    .venv/bin/python scripts/report.py multirun/latest
    make tb LOGDIR=multirun/latest

No link is written (TensorBoard would follow it and show the newest run twice): a path that
does not exist and ends in ``latest`` is read as the newest directory below its parent that
holds a given file (``preprocessing.json`` for a run, ``multirun.yaml`` for a sweep), by that
file's modification time.
"""

import sys
from pathlib import Path

from dlbasics.errors import DataError

LATEST = "latest"
MAX_DEPTH = 3  # outputs/<date>/<time>, multirun/latest/<job>
RUN = "preprocessing.json"  # written by every run as its data is built
SWEEP = "multirun.yaml"  # written by Hydra in a sweep's directory


def resolve_latest(path: Path, marker: str, what: str) -> Path:
    """``path`` itself, or for ``<dir>/latest`` (when no such directory exists) the newest
    directory below ``<dir>`` holding the file ``marker`` (a path relative to it, such as
    ``checkpoints/last.pt``); ``what`` names such a directory in the error when there is none."""
    path = Path(path).expanduser()
    if path.exists() or path.name != LATEST or not path.parent.is_dir():
        return path
    found = [
        file
        for depth in range(1, MAX_DEPTH + 1)
        for file in path.parent.glob("/".join(["*"] * depth) + f"/{marker}")
    ]
    if not found:
        raise DataError(f"{path}: there is no {what} under {path.parent} to take as the latest.")
    newest = max(found, key=lambda file: file.stat().st_mtime_ns)
    return newest.parents[len(Path(marker).parts) - 1]


def resolve_log_dir(path: Path) -> Path:
    """For TensorBoard: ``<dir>/latest`` is the newest sweep under ``<dir>`` if there is one,
    else the newest run."""
    try:
        return resolve_latest(path, SWEEP, "sweep")
    except DataError:
        return resolve_latest(path, RUN, "run or sweep")


if __name__ == "__main__":  # the Makefile's `make tb LOGDIR=…`
    try:
        print(resolve_log_dir(Path(sys.argv[1])))
    except DataError as error:
        sys.exit(f"error: {error}")
