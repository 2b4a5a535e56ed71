"""Draw every hidden activation of the registry (`act=...`) and its derivative into one PNG.

.venv/bin/python scripts/plot_activations.py                          # activations.png
.venv/bin/python scripts/plot_activations.py --out figs/act.png --range 6 --negative-slope 0.1

The curves come from the modules training uses (dlbasics/activations.py), the derivatives from
autograd through them, so the picture shows what backpropagation actually gets: the step's
zero derivative, sigmoid's peak of 0.25, ReLU's 0 below zero (docs/concepts.md §4).
"""

import argparse
import sys
from pathlib import Path

import torch

from dlbasics.activations import HIDDEN_ACTIVATIONS, LeakyReLUConfig

POINTS = 1001  # per curve; odd, so x = 0 is one of them


def activation_curves(
    x_range: float, negative_slope: float
) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """name → (x, f(x), f'(x)) for every registered hidden activation."""
    curves = {}
    for name in HIDDEN_ACTIVATIONS.names():
        schema = HIDDEN_ACTIVATIONS.schemas()[name]
        settings = {"negative_slope": negative_slope} if schema is LeakyReLUConfig else {}
        module = HIDDEN_ACTIVATIONS.get(name)(schema(name=name, **settings))
        x = torch.linspace(-x_range, x_range, POINTS, requires_grad=True)
        y = module(x)
        (slope,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
        if slope is None:  # the output does not depend on x through autograd: slope 0
            slope = torch.zeros_like(x)
        curves[name] = (x.detach(), y.detach(), slope.detach())
    return curves


def plot_activations(out: Path, x_range: float, negative_slope: float) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    curves = activation_curves(x_range, negative_slope)
    columns = 4
    rows = -(-len(curves) // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows), squeeze=False)
    for axes, (name, (x, y, slope)) in zip(grid.flat, curves.items(), strict=False):
        axes.plot(x, y, label="f(x)", linewidth=1.8)
        axes.plot(x, slope, label="f'(x)", linewidth=1.4, linestyle="--")
        axes.axhline(0, color="grey", linewidth=0.5)
        axes.axvline(0, color="grey", linewidth=0.5)
        title = f"{name} (slope {negative_slope:g})" if name == "leaky_relu" else name
        axes.set_title(title)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small", loc="upper left")
    for axes in list(grid.flat)[len(curves) :]:
        axes.axis("off")
    figure.suptitle("act=…: hidden activations and their derivatives (autograd)")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("activations.png"), help="the PNG")
    parser.add_argument(
        "--range", type=float, default=5.0, dest="x_range", help="draw x in [-range, range]"
    )
    parser.add_argument(
        "--negative-slope", type=float, default=LeakyReLUConfig.negative_slope, help="leaky_relu's"
    )
    args = parser.parse_args(argv)
    if args.x_range <= 0 or args.negative_slope < 0:
        print("error: --range must be > 0 and --negative-slope >= 0", file=sys.stderr)
        return 2
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(
            "error: plot_activations.py draws with matplotlib, which is not installed; "
            "pip install -e '.[sweep]' (make install does it).",
            file=sys.stderr,
        )
        return 2
    try:
        path = plot_activations(args.out, args.x_range, args.negative_slope)
    except OSError as error:
        print(f"error: cannot write {args.out}: {error.strerror}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
