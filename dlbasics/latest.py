"""``outputs/latest`` and ``multirun/latest``: the newest run or sweep under a directory, so a
command can name the run just trained without copying its time-stamped path::

    .venv/bin/python scripts/predict.py outputs/latest data=digits
    .venv/bin/python scripts/report.py multirun/latest

No link is written (TensorBoard would follow it and show the newest run twice): a path that
does not exist and ends in ``latest`` is read as the newest directory below its parent that
holds ``marker``, by that file's modification time.
"""

from pathlib import Path

from dlbasics.errors import DataError

LATEST = "latest"
MAX_DEPTH = 3  # outputs/<date>/<time>, multirun/<date>/<time>/<job>


def resolve_latest(path: Path, marker: str, what: str) -> Path:
    """``path`` itself, or for ``<dir>/latest`` (when no such directory exists) the newest
    directory below ``<dir>`` holding the file ``marker``; ``what`` names such a directory in
    the error when there is none."""
    path = Path(path).expanduser()
    if path.exists() or path.name != LATEST or not path.parent.is_dir():
        return path
    found = [
        file
        for depth in range(1, MAX_DEPTH + 1)
        for file in path.parent.glob("/".join(["*"] * depth + [marker]))
    ]
    if not found:
        raise DataError(f"{path}: there is no {what} under {path.parent} to take as the latest.")
    return max(found, key=lambda file: file.stat().st_mtime_ns).parent
