"""Curves of a sweep's jobs (validation loss and accuracy, or any scalar tag), read from their
TensorBoard files and overlaid in PNGs."""

from pathlib import Path

from dlbasics.errors import UserError
from dlbasics.sweeps.results import JobResult

DEFAULT_TAGS = ("loss/val", "acc/val")  # what --plot draws without --tags
# The one rule for a plot's file name, which --help states: the tag, each / turned to _.
FILE_NAME_RULE = "each tag's PNG is named after it, / turned to _ (loss/val → loss_val.png)"


def plot_file_name(tag: str) -> str:
    """The PNG of one tag: loss/val → loss_val.png, grad_norm/layer01 → grad_norm_layer01.png."""
    return tag.replace("/", "_") + ".png"


def plot_file_names(tags: list[str]) -> dict[str, str]:
    """Tag → PNG name, by plot_file_name."""
    return {tag: plot_file_name(tag) for tag in tags}


def event_dir(run_dir: Path) -> Path | None:
    """Where a run's event files are: ``tb/<overrides>/`` (a run named by its overrides, as
    train.py and a sweep's jobs write them) or ``tb/`` itself; None without any."""
    tb = run_dir / "tb"
    if not tb.is_dir():
        return None
    found = sorted({path.parent for path in tb.rglob("events.out.tfevents.*")})
    return found[0] if found else None


def read_curve(tb_dir: Path, tag: str) -> list[tuple[int, float]]:
    """(epoch, value) pairs of one scalar tag, every point kept; empty if the tag is absent."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})  # 0: keep all points
    events.Reload()
    if tag not in events.Tags()["scalars"]:
        return []
    return [(event.step, event.value) for event in events.Scalars(tag)]


def plot_validation_curves(
    jobs: list[JobResult],
    labels: dict[str, str],
    out_dir: Path,
    tags: dict[str, str] | None = None,
) -> dict[Path, int]:
    """One PNG per tag (``tags``: tag → file name), one line per job that logged it
    (``labels``: job name → legend text). Returns each written file with the number of
    curves in it; a tag no job logged writes nothing."""
    try:
        import matplotlib
    except ImportError:
        raise UserError(
            "--plot needs matplotlib: pip install -e '.[sweep]' (make install does it)."
        ) from None
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if tags is None:
        tags = plot_file_names(list(DEFAULT_TAGS))
    event_dirs = {job.name: event_dir(job.run_dir) for job in jobs}
    written = {}
    for tag, file_name in tags.items():
        curves = {
            name: read_curve(directory, tag)
            for name, directory in event_dirs.items()
            if directory is not None
        }
        curves = {name: points for name, points in curves.items() if points}
        if not curves:
            continue
        figure, axes = plt.subplots(figsize=(9, 5))
        for name, points in curves.items():
            epochs, values = zip(*points, strict=True)
            axes.plot(epochs, values, label=labels[name], linewidth=1.2)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(tag)
        axes.set_title(f"{tag} of {len(curves)} jobs")
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        figure.tight_layout()
        path = out_dir / file_name
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written[path] = len(curves)
    return written
