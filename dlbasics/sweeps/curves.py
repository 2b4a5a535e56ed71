"""Curves of a sweep's jobs (validation loss and accuracy, or any scalar tag), read from their
TensorBoard files and overlaid in PNGs."""

from pathlib import Path

from dlbasics.errors import UserError
from dlbasics.sweeps.results import JobResult

# TensorBoard tag → file name of its plot.
VALIDATION_TAGS = {"loss/val": "val_loss.png", "acc/val": "val_acc.png"}


def plot_file_names(tags: list[str]) -> dict[str, str]:
    """Tag → PNG name: val_loss.png, val_acc.png as before; others with / turned to _
    (grad_norm/layer01 → grad_norm_layer01.png)."""
    return {tag: VALIDATION_TAGS.get(tag, tag.replace("/", "_") + ".png") for tag in tags}


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
    tags: dict[str, str] = VALIDATION_TAGS,
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

    written = {}
    for tag, file_name in tags.items():
        curves = {
            job.name: read_curve(job.run_dir / "tb", tag)
            for job in jobs
            if (job.run_dir / "tb").is_dir()
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
