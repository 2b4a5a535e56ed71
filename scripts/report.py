"""Summarise a sweep: one row per job, sorted by the monitored metric; seed groups aggregated.

.venv/bin/python scripts/report.py multirun/latest     # the newest sweep: report.md, report.csv
.venv/bin/python scripts/report.py multirun/2026-11-22/10-00-00 --plot  # and curves (PNG)
.venv/bin/python scripts/report.py multirun/latest --plot --tags loss/train,grad_norm/layer01

Classifiers are ranked by their validation accuracy (final_val_acc) unless
trainer.early_stopping.monitor names another measure than val_loss; other runs by the best
value of the monitor. A warning says when the jobs' loss functions differ (their losses do not
compare). fit_seconds is the time spent fitting.

Works on a sweep that is still running, partly failed, or was killed.
"""

import argparse
import sys
from pathlib import Path

from dlbasics.errors import UserError
from dlbasics.latest import SWEEP, resolve_latest
from dlbasics.sweeps.curves import (
    DEFAULT_TAGS,
    FILE_NAME_RULE,
    plot_file_names,
    plot_validation_curves,
)
from dlbasics.sweeps.report import build_report, render_report_text, write_report_files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="the sweep's directory (hydra.sweep.dir)")
    parser.add_argument(
        "--plot", action="store_true", help="write PNGs of the jobs' validation curves"
    )
    parser.add_argument(
        "--tags",
        default=None,
        help="with --plot: the TensorBoard scalar tags to overlay, comma-separated "
        f"(default: {','.join(DEFAULT_TAGS)}); {FILE_NAME_RULE}",
    )
    parser.add_argument(
        "--out", type=Path, help="where to write the report files (default: the sweep directory)"
    )
    args = parser.parse_args(argv)
    try:
        args.sweep_dir = resolve_latest(args.sweep_dir, SWEEP, "sweep")
        out_dir = args.out or args.sweep_dir
        report = build_report(args.sweep_dir)
        print(render_report_text(report))
        written = write_report_files(report, out_dir)
        if args.plot:
            chosen = [tag.strip() for tag in (args.tags or ",".join(DEFAULT_TAGS)).split(",")]
            tags = plot_file_names([tag for tag in chosen if tag])
            plots = plot_validation_curves(report.jobs, report.labels(), out_dir, tags)
            if args.tags and not plots:
                raise UserError(
                    f"--tags {args.tags}: no job of {args.sweep_dir} logged any of these tags; "
                    "tensorboard --logdir on the sweep lists the tags there are (diagnostics "
                    "need diag=full or diag.*=true)."
                )
            written += list(plots)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\nwrote " + ", ".join(str(path) for path in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
