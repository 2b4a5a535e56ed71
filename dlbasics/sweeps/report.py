"""The sweep report: a terminal table, ``report.md`` and ``report.csv`` (one row per job), and
``report_seeds.csv`` when jobs differ only by seed (one row per configuration, mean and std)."""

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from dlbasics.errors import DataError
from dlbasics.sweeps.record import COMPLETED
from dlbasics.sweeps.results import (
    SEED_KEYS,
    JobResult,
    Ranking,
    SeedGroup,
    choose_ranking,
    collect_jobs,
    group_by_seed,
    loss_functions,
    rank_jobs,
    varying_keys,
)
from dlbasics.sweeps.tables import (
    group_rows,
    job_rows,
    render_markdown,
    render_text,
    with_plus_minus,
    write_csv,
)


@dataclass
class SweepReport:
    sweep_dir: Path
    jobs: list[JobResult]  # sorted by the ranking, best first
    groups: list[SeedGroup]  # empty when no job overrides a seed
    keys: list[str]  # the override keys that differ between jobs: the table's columns
    monitor: str  # trainer.early_stopping.monitor
    ranking: Ranking  # what the jobs are sorted by
    losses: list[str]  # the loss functions of the completed jobs

    @property
    def summary(self) -> list[str]:
        counts = Counter(job.status for job in self.jobs)
        statuses = ", ".join(f"{n} {status}" for status, n in counts.most_common())
        lines = [f"sweep {self.sweep_dir}: {len(self.jobs)} jobs: {statuses}"]
        common = {
            key: value
            for key, value in self.jobs[0].overrides.items()
            if all(job.overrides.get(key) == value for job in self.jobs)
        }
        if common:
            lines.append("common overrides: " + " ".join(f"{k}={v}" for k, v in common.items()))
        better = "lower" if self.ranking.mode == "min" else "higher"
        lines.append(f"sorted by {self.ranking.column}: {self.ranking.why} ({better} is better)")
        if self.warning:
            lines.append(self.warning)
        return lines

    @property
    def warning(self) -> str | None:
        """A line when the jobs' losses do not compare: different loss functions."""
        if len(self.losses) < 2:
            return None
        return (
            f"warning: the jobs train with different loss functions ({', '.join(self.losses)}): "
            "their losses (test_loss, val_loss) do not compare with one another"
        )

    def job_rows(self) -> list[dict]:
        return job_rows(self.jobs, self.keys, self.ranking, self.monitor)

    def group_rows(self) -> list[dict]:
        keys = [key for key in self.keys if key not in SEED_KEYS]
        return group_rows(self.groups, keys, self.ranking, self.monitor)

    def labels(self) -> dict[str, str]:
        """Legend text per job: its values of the varying overrides."""
        return {
            job.name: " ".join(f"{k}={job.overrides.get(k, '')}" for k in self.keys) or job.name
            for job in self.jobs
        }


def build_report(sweep_dir: Path) -> SweepReport:
    if not sweep_dir.is_dir():
        raise DataError(f"{sweep_dir} is not a directory; give the directory of a sweep.")
    jobs = collect_jobs(sweep_dir)
    if not jobs:
        raise DataError(
            f"{sweep_dir} holds no jobs (no */.hydra/overrides.yaml below it); give the "
            "directory of a sweep, e.g. multirun/<date>/<time>."
        )
    ranking = choose_ranking(jobs)
    reference = next((job for job in jobs if job.status == COMPLETED), jobs[0])
    return SweepReport(
        sweep_dir=sweep_dir,
        jobs=rank_jobs(jobs, ranking),
        groups=group_by_seed(jobs, ranking),
        keys=varying_keys(jobs),
        monitor=reference.monitor,
        ranking=ranking,
        losses=loss_functions(jobs),
    )


def render_report_text(report: SweepReport) -> str:
    parts = ["\n".join(report.summary), render_text(report.job_rows())]
    if report.groups:
        parts += [
            "seed groups (mean ± std over seeds)",
            render_text(with_plus_minus(report.group_rows())),
        ]
    return "\n\n".join(parts)


def render_report_markdown(report: SweepReport) -> str:
    parts = [f"# Sweep report: {report.sweep_dir}", "\n\n".join(report.summary)]
    parts += ["## Jobs", render_markdown(report.job_rows())]
    if report.groups:
        parts += ["## Seed groups (mean ± std over seeds)"]
        parts += [render_markdown(with_plus_minus(report.group_rows()))]
    return "\n\n".join(parts) + "\n"


def write_report_files(report: SweepReport, out_dir: Path) -> list[Path]:
    """report.md, report.csv and (with seed groups) report_seeds.csv in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "report.md", out_dir / "report.csv"]
    written[0].write_text(render_report_markdown(report))
    write_csv(report.job_rows(), written[1])
    if report.groups:
        written.append(out_dir / "report_seeds.csv")
        write_csv(report.group_rows(), written[2])
    return written
