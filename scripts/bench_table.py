"""How `data=csv` scales: a generated table of a million rows, read, encoded and trained on.

A table of ``--rows`` rows × 50 columns (40 numeric, 10 categorical of 2 to 20 categories,
1 % of the cells missing, a 3-class target) is written once with pyarrow, then, in a fresh
process each:

- the table is read and encoded as `data=csv` does (scripts/train.py's data step): rows read
  per second, and the peak resident memory above the process' memory before reading, as a
  multiple of the encoded float32 matrix (target: at most 3×);
- the default MLP trains one epoch on it through the Trainer: seconds from the start to the
  first optimizer step, and the epoch's seconds against the same model and Trainer on a tensor
  of the same shape made in memory (the reading and encoding should be the only extra).

    .venv/bin/python scripts/bench_table.py                 # 1,000,000 rows (make bench)
    .venv/bin/python scripts/bench_table.py --rows 200000   # quicker
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NUMERIC, CATEGORICAL = 40, 10
MISSING = 0.01


def write_table(path: Path, rows: int, seed: int = 0) -> None:
    """The generated table: the target depends on a few numeric and categorical columns."""
    import pyarrow as pa
    from pyarrow import csv as arrow_csv

    rng = np.random.default_rng(seed)
    columns, score = {}, np.zeros(rows)
    for i in range(NUMERIC):
        values = rng.normal(size=rows)
        if i < 5:
            score += values * (i + 1) / 5
        columns[f"x{i}"] = pa.array(values, mask=rng.random(rows) < MISSING)
    for i in range(CATEGORICAL):
        categories = np.array([f"c{i}_{k}" for k in range(2 + 2 * i)])
        index = rng.integers(0, len(categories), rows)
        if i < 3:
            score += (index % 2) - 0.5
        columns[f"cat{i}"] = pa.array(categories[index], mask=rng.random(rows) < MISSING)
    target = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))
    columns["label"] = pa.array(np.array(["low", "mid", "high"])[target])
    arrow_csv.write_csv(pa.table(columns), path)


def rss_mib() -> float:
    """This process' resident memory now."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(path: Path) -> dict:
    """In this (fresh) process: read and encode the table, then train one epoch on it, and
    one epoch on a tensor of the same shape."""
    import torch

    from dlbasics.config import Config
    from dlbasics.data import build_data
    from dlbasics.data.core import make_splits
    from dlbasics.models import build_model
    from dlbasics.run import model_objective
    from dlbasics.trainer import Trainer

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make_config  # noqa: E402  (composes as scripts/train.py does)

    cfg: Config = make_config(
        "data=csv", f"data.path={path}", "data.target=label", "trainer.epochs=1", "logger=none"
    )
    torch.set_num_threads(1)
    before = rss_mib()
    started = time.perf_counter()
    data = build_data(cfg.data)
    read_seconds = time.perf_counter() - started
    peak = peak_rss_mib()
    n = len(data.x_train) + len(data.x_val) + len(data.x_test)
    matrix_mib = n * data.x_train.shape[1] * 4 / 2**20

    def one_epoch(splits) -> float:
        """Seconds of one epoch of the default MLP through the Trainer on ``splits``."""
        torch.manual_seed(0)
        model = build_model(cfg, splits.spec)
        objective = model_objective(cfg, model, splits.spec)
        trainer = Trainer(cfg.trainer, cfg.optim, cfg.schedule, torch.device("cpu"))
        return trainer.fit(model, splits, objective).fit_seconds

    started = time.perf_counter()
    epoch_seconds = one_epoch(data)
    # From reading the file to the first step: the data step, then building the model.
    first_step = read_seconds + (time.perf_counter() - started - epoch_seconds)
    same = make_splits(
        data.spec,
        (torch.randn_like(data.x_train), data.y_train),
        (torch.randn_like(data.x_val), data.y_val),
        (torch.randn_like(data.x_test), data.y_test),
        standardize=False,
    )
    tensor_epoch_seconds = one_epoch(same)
    return {
        "rows": n,
        "features": int(data.x_train.shape[1]),
        "read_and_encode_seconds": round(read_seconds, 2),
        "rows_per_second": round(n / read_seconds),
        "seconds_to_first_step": round(first_step, 2),
        "rss_before_mib": round(before, 1),
        "peak_above_before_mib": round(peak - before, 1),
        "encoded_matrix_mib": round(matrix_mib, 1),
        "peak_over_matrix": round((peak - before) / matrix_mib, 2),
        "epoch_seconds": round(epoch_seconds, 2),
        "epoch_seconds_premade_tensor": round(tensor_epoch_seconds, 2),
        "epoch_ratio": round(epoch_seconds / tensor_epoch_seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=ROOT / "outputs" / "bench")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    args.dir.mkdir(parents=True, exist_ok=True)
    path = args.dir / f"table-{args.rows}.csv"
    if not path.exists():
        started = time.perf_counter()
        write_table(path, args.rows)
        print(f"wrote {path} ({path.stat().st_size / 2**20:.0f} MiB) in "
              f"{time.perf_counter() - started:.1f} s")
    child = subprocess.run(
        [sys.executable, __file__, "--measure", str(path)],
        capture_output=True, text=True, check=False,
    )
    if child.returncode:
        sys.exit(child.stderr)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    (args.dir / "table.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
