"""Files that must never be left half-written: checkpoints and metrics.json.

Each is written to a temporary file in the same directory, flushed to disk (fsync) and renamed
over the old one; a rename within a directory is atomic, so a reader (or a crash) sees the old
file or the new one, never a truncated mix. A checkpoint also carries a checksum of its tensors,
checked when it is loaded: a file damaged after it was written (a flipped byte inside a tensor,
which the zip container does not notice) is refused rather than resumed from.
"""

import hashlib
import io
import json
import logging
import math
import os
import pickle
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from dlbasics.errors import DataError, OutputError

log = logging.getLogger("dlbasics")

FORMAT = "dlbasics-checkpoint-1"
CHECKSUM = "tensor_checksum"  # the payload's key for it
HOST = socket.gethostname().replace(".", "_")  # in temporary files' names: pids are per host


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` all or nothing; a failure (full disk, no permission) is an
    OutputError that names the file and leaves the previous version in place."""
    tmp = path.with_name(f".{path.name}.{HOST}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for left in path.parent.glob(f".{path.name}.{HOST}.*.tmp"):
            if _was_killed(left):  # a process of this host died while writing it
                left.unlink(missing_ok=True)
        try:
            with open(tmp, "wb") as file:
                file.write(data)
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
    except OSError as error:
        kept = "its previous version is intact" if path.exists() else "no partial file is left"
        raise OutputError(
            f"could not write {path}: {error.strerror or error}; {kept}, and the files "
            "written before it are kept."
        ) from None


def _was_killed(tmp: Path) -> bool:
    """Whether the process that named the temporary file ``tmp`` (…<pid>.tmp) is gone; only
    then is the file provably stale. Another process' file may be being written right now."""
    pid = tmp.name.removesuffix(".tmp").rpartition(".")[2]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return False


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """Save tensors, numbers, strings, lists and dicts only, so it loads with weights_only."""
    # Serialised in memory first: torch.save hides a failed write (a full disk) behind an
    # unhelpful RuntimeError, a plain write reports it as it is.
    payload = {"format": FORMAT, **payload}
    payload[CHECKSUM] = tensor_checksum(payload)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write(path, buffer.getvalue())


def tensor_checksum(payload: Any) -> str:
    """SHA-256 of every tensor in ``payload`` (its place, dtype, shape and bytes), in order."""
    digest = hashlib.sha256()
    for place, tensor in _tensors(payload, ""):
        digest.update(f"{place}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        data = tensor.detach().cpu().contiguous().flatten()
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _tensors(node: Any, place: str) -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(node, torch.Tensor):
        yield place, node
    elif isinstance(node, dict):
        for key in sorted(node, key=str):
            if key != CHECKSUM:
                yield from _tensors(node[key], f"{place}/{key}")
    elif isinstance(node, (list, tuple)):
        for index, item in enumerate(node):
            yield from _tensors(item, f"{place}/{index}")


def write_json(data: dict[str, Any], path: Path) -> None:
    """JSON without NaN or Infinity (not JSON; many readers refuse them): those become null,
    at any depth (an ensemble's members)."""

    def finite(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: finite(v) for key, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(v) for v in value]
        return None if isinstance(value, float) and not math.isfinite(value) else value

    clean = finite(data)
    atomic_write(path, (json.dumps(clean, indent=2, sort_keys=True) + "\n").encode())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint without running any code stored in it (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist.")
    if not zipfile.is_zipfile(path):  # what torch.save writes; its index is at the very end
        raise DataError(
            f"{path} is not a PyTorch checkpoint: it is truncated (a copy cut short?) or "
            "another kind of file."
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = [line for line in str(error).splitlines() if "GLOBAL" in line]
        raise DataError(
            f"checkpoint {path} was refused: it holds pickled Python objects, which could run "
            f"code when loaded; dlbasics checkpoints hold only tensors and plain values "
            f"({(found or ['not loadable with weights_only=True'])[0].strip()[:200]})."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as error:
        raise DataError(
            f"checkpoint {path} is damaged or not a PyTorch checkpoint "
            f"({str(error).splitlines()[0][:200]})."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DataError(f"{path} is a PyTorch file but not a dlbasics checkpoint.")
    saved = payload.pop(CHECKSUM, None)
    if saved is None:
        log.warning(f"note: {path} carries no checksum (an older dlbasics wrote it): its tensors "
                    "cannot be checked for damage.")
    elif saved != tensor_checksum(payload):
        raise DataError(
            f"checkpoint {path} is damaged: its tensors no longer match the checksum written "
            "with them (a changed byte); use another checkpoint (best.pt, an earlier copy) or "
            "start afresh."
        )
    return payload


# What a checkpoint of each kind must hold, key → type, to be used.
LAST_PT = {"config": str, "epoch": int, "steps": int, "model": dict, "optimizer": dict,
           "early_stopping": dict, "rng": dict, "training": dict, "monitor": str}
BEST_PT = {"config": str, "epoch": int, "model": dict}


def check_contents(payload: dict[str, Any], expected: dict[str, type], path: Path) -> None:
    """Refuse a checkpoint that lacks a key of ``expected`` or holds the wrong type there."""
    for key, kind in expected.items():
        if not isinstance(payload.get(key), kind):
            found = "is missing" if key not in payload else f"is a {type(payload[key]).__name__}"
            raise DataError(
                f"checkpoint {path}: its '{key}' {found}, where a {kind.__name__} belongs; it "
                "was not written by this dlbasics (or was edited)."
            )
