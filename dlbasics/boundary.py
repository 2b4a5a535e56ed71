"""The decision boundary of a classifier on 2-D inputs (``diag.decision_boundary``): the plane
coloured by the predicted class, with the training and test points on it, drawn at the end of
training into TensorBoard (``diag/decision_boundary``) and ``decision_boundary.png``."""

import logging
from pathlib import Path
from typing import Any

import torch

from dlbasics.data import DataSpec, DataSplits
from dlbasics.errors import ConfigError
from dlbasics.loggers import Logger
from dlbasics.losses import Objective

log = logging.getLogger("dlbasics")

FILE_NAME = "decision_boundary.png"
TAG = "diag/decision_boundary"
RESOLUTION = 200  # grid points along each axis
MARGIN = 0.15  # of each axis' range, added on both sides of the points


def can_draw(spec: DataSpec) -> bool:
    """Only classifiers of two input features have a boundary to draw in a plane."""
    return spec.input_shape == (2,) and spec.task != "regression"


def check_can_draw(spec: DataSpec) -> None:
    """Before training: say now, not after it, that the picture cannot be drawn."""
    if not can_draw(spec):
        return
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError(
            "diag.decision_boundary=true draws with matplotlib, which is not installed; "
            "pip install -e '.[sweep]' (make install does it), or set diag.decision_boundary=false."
        ) from None


@torch.no_grad()
def draw_decision_boundary(
    model: torch.nn.Module, data: DataSplits, objective: Objective, title: str
) -> Any:
    """A matplotlib figure of the predicted class over the plane, in the data's own units
    (standardised inputs are mapped back with the training split's mean and std)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    raw = {"train": (data.to_raw(data.x_train), data.y_train)}
    raw["test"] = (data.to_raw(data.x_test), data.y_test)
    points = torch.cat([x for x, _ in raw.values()])
    low, high = points.min(dim=0).values, points.max(dim=0).values
    pad = (high - low).clamp(min=1e-6) * MARGIN
    axes_values = [torch.linspace(low[i] - pad[i], high[i] + pad[i], RESOLUTION) for i in (0, 1)]
    gx, gy = torch.meshgrid(*axes_values, indexing="xy")
    grid = torch.stack([gx.flatten(), gy.flatten()], dim=1)

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    scores = model(data.from_raw(grid).to(device)).cpu()
    model.train(was_training)
    predicted = objective.predict(scores).reshape(-1).reshape(gx.shape)

    figure, axes = plt.subplots(figsize=(6, 5))
    n_classes = max(data.spec.n_classes, 2)
    levels = [c - 0.5 for c in range(n_classes + 1)]
    axes.contourf(gx, gy, predicted, levels=levels, cmap="coolwarm", alpha=0.35)
    if n_classes == 2:
        axes.contour(gx, gy, predicted, levels=[0.5], colors="k", linewidths=1)
    for split, marker in (("train", "o"), ("test", "x")):
        x, y = raw[split]
        labels = y.reshape(len(y), -1)[:, 0] if y.ndim > 1 else y
        axes.scatter(
            x[:, 0],
            x[:, 1],
            c=labels,
            cmap="coolwarm",
            vmin=0,
            vmax=n_classes - 1,
            marker=marker,
            s=18,
            edgecolors="k" if marker == "o" else None,
            label=f"{split} ({len(x)})",
        )
    axes.set_xlabel("x1")
    axes.set_ylabel("x2")
    axes.set_title(title, fontsize="medium")
    axes.legend(fontsize="small", loc="upper right")
    figure.tight_layout()
    return figure


def write_decision_boundary(
    model: torch.nn.Module,
    data: DataSplits,
    objective: Objective,
    run_dir: Path,
    logger: Logger,
    step: int,
    title: str,
) -> Path | None:
    """Draw the boundary into ``run_dir/decision_boundary.png`` and the logger; None (and a
    note in the log) when the data have no plane to draw."""
    if not can_draw(data.spec):
        log.info(
            f"diag.decision_boundary: data={data.spec.name} has samples of shape "
            f"{data.spec.input_shape} ({data.spec.task}); a boundary is drawn for classifiers "
            "of 2 features only"
        )
        return None
    import matplotlib.pyplot as plt

    figure = draw_decision_boundary(model, data, objective, title)
    path = run_dir / FILE_NAME
    figure.savefig(path, dpi=100)
    logger.log_figure(TAG, figure, step)
    plt.close(figure)
    return path
