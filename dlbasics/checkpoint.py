"""Files that must never be left half-written: checkpoints and metrics.json.

Each is written to a temporary file in the same directory, flushed to disk (fsync) and renamed
over the old one; a rename within a directory is atomic, so a reader (or a crash) sees the old
file or the new one, never a truncated mix.
"""

import json
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from dlbasics.errors import DataError

FORMAT = "dlbasics-checkpoint-1"


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """Save tensors, numbers, strings, lists and dicts only, so it loads with weights_only."""
    atomic_write(path, lambda file: torch.save({"format": FORMAT, **payload}, file))


def write_json(data: dict[str, Any], path: Path) -> None:
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write(path, lambda file: file.write(text.encode()))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint without running any code stored in it (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise DataError(
            f"checkpoint {path} was refused: it holds pickled Python objects, which could run "
            f"code when loaded; dlbasics checkpoints hold only tensors and plain values "
            f"({str(error).splitlines()[0][:200]})."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as error:
        raise DataError(
            f"checkpoint {path} is truncated or not a PyTorch checkpoint "
            f"({str(error).splitlines()[0][:200]})."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DataError(f"{path} is a PyTorch file but not a dlbasics checkpoint.")
    return payload
