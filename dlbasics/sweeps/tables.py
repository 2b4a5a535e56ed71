"""The sweep report's tables: one row per job, one per seed group; as text, Markdown and CSV."""

import csv
import math
from pathlib import Path
from typing import Any

from dlbasics.sweeps.record import COMPLETED
from dlbasics.sweeps.results import JobResult, Ranking, SeedGroup

# metrics.json keys shown for every job, after the overrides, the status and the ranking's.
JOB_METRICS = ("test_acc", "test_loss")
# metrics.json keys averaged over a seed group's jobs, after the ranking's; fit_seconds: the
# time spent fitting, which compares between jobs (not the process's, imports and all).
GROUP_METRICS = ("test_acc", "test_loss", "best_monitor", "epochs_run", "fit_seconds")
SHOWN_AS = {"epochs_run": "epochs"}  # metrics.json key → column


def job_rows(
    jobs: list[JobResult], keys: list[str], ranking: Ranking, monitor: str
) -> list[dict[str, Any]]:
    """One row per job: its value for each override key, status, what the jobs are ranked by,
    final metrics, the best value of the monitored metric and the time spent fitting."""
    rows = []
    for job in jobs:
        row: dict[str, Any] = {"job": job.name}
        row.update({key: job.overrides.get(key, "") for key in keys})
        row["status"] = job.status
        row[ranking.column] = ranking.value(job)
        row.update({key: job.metrics.get(key) for key in JOB_METRICS})
        row[f"best_{monitor}"] = job.best
        row["best_epoch"] = job.metrics.get("best_epoch")
        row["epochs"] = job.metrics.get("epochs_run")
        row["stop_reason"] = job.metrics.get("stop_reason")
        row["loss_function"] = job.metrics.get("loss")  # (loss=auto resolved)
        row["fit_seconds"] = job.fit_seconds
        row["error"] = job.error
        rows.append(row)
    return rows


def group_rows(
    groups: list[SeedGroup], keys: list[str], ranking: Ranking, monitor: str
) -> list[dict[str, Any]]:
    """One row per seed group: mean and standard deviation of each metric over its seeds."""
    rows = []
    shown = {**SHOWN_AS, "best_monitor": f"best_{monitor}", ranking.key: ranking.column}
    for group in groups:
        row: dict[str, Any] = {key: group.overrides.get(key, "") for key in keys}
        completed = sum(job.status == COMPLETED for job in group.jobs)
        row["completed"] = f"{completed}/{len(group.jobs)}"
        for key in dict.fromkeys([ranking.key, *GROUP_METRICS]):
            name = shown.get(key, key)
            row[f"{name}_mean"], row[f"{name}_std"] = group.mean_std(key)
        rows.append(row)
    return rows


def with_plus_minus(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``x_mean`` and ``x_std`` columns merged into one ``x (mean ± std)`` column, for reading."""
    merged = []
    for row in rows:
        out: dict[str, Any] = {}
        for key, value in row.items():
            if key.endswith("_mean"):
                std = row[key[: -len("_mean")] + "_std"]
                shown = "" if value is None else _format(value)
                if value is not None and std is not None:
                    shown += f" ± {_format(std)}"
                out[key[: -len("_mean")]] = shown
            elif not key.endswith("_std"):
                out[key] = value
        merged.append(out)
    return merged


def render_text(rows: list[dict[str, Any]], max_width: int = 60) -> str:
    """An aligned plain-text table; long cells (error messages) are cut to ``max_width``."""
    if not rows:
        return "(none)"
    headers = list(rows[0])
    cells = [[_cut(_format(row[key]), max_width) for key in headers] for row in rows]
    widths = [max(len(h), *(len(line[i]) for line in cells)) for i, h in enumerate(headers)]

    def aligned(texts: list[str]) -> str:
        return "  ".join(text.ljust(width) for text, width in zip(texts, widths, strict=True))

    lines = [headers, ["-" * width for width in widths], *cells]
    return "\n".join(aligned(line).rstrip() for line in lines)


def render_markdown(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(none)"
    headers = list(rows[0])
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        cells = [_format(row[key]).replace("|", "\\|").replace("\n", " ") for key in headers]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Full-precision values, empty cells for missing ones."""
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else ["job"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else str(value)
    return str(value)


def _cut(text: str, width: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"
