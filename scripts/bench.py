"""Time dlbasics against a reference implementation, epoch for epoch, on the same work.

Each case has two contenders that train the same model on the same data with the same
settings: ours, through the Trainer as `scripts/train.py` runs it (validation and the model's
per-epoch measures included), and a baseline (scikit-learn, or a hand-written loop). They are
timed in interlaced rounds, A B A B … in one process, so that a machine whose speed drifts
(other jobs, clock changes) slows both alike; every round trains a fresh model for
``epochs_per_round`` epochs, after one warm-up round each that is not counted (imports, lazy
initialisation). The table shows the median and the minimum seconds per epoch of each and the
ratio ours / baseline of the medians (below 1: ours is faster); the JSON file holds every
round.

    python scripts/bench.py                        # every case (make bench)
    python scripts/bench.py rbm_digits --rounds 11 --threads 1 --json bench.json

Adding a case: write a function that prepares the data once and returns the two contenders
(each a function that trains a fresh model for a number of epochs), and add a Case to CASES.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from dlbasics.config import Config, register_configs, validate  # noqa: E402

TrainEpochs = Callable[[int], None]  # trains a fresh model for this many epochs


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    # Prepares the data once (outside the timing) and returns (ours, baseline).
    setup: Callable[[], tuple[TrainEpochs, TrainEpochs]]
    baseline: str  # what the baseline is, for the table
    epochs_per_round: int = 5


def config(*overrides: str) -> Config:
    """The validated config `scripts/train.py <overrides>` would run with."""
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return validate(compose(config_name="config", overrides=list(overrides)))


def train_with_dlbasics(cfg: Config) -> TrainEpochs:
    """Ours: the model, data and objective `scripts/train.py` builds, fitted by the Trainer
    (no logger, no checkpoints: those are I/O, not training)."""
    from dlbasics.data import build_data
    from dlbasics.losses import build_objective
    from dlbasics.models import build_model
    from dlbasics.trainer import Trainer

    data = build_data(cfg.data)
    device = torch.device("cpu")

    def train(epochs: int) -> None:
        torch.manual_seed(cfg.trainer.seed)
        model = build_model(cfg, data.spec)
        fitted = model.prepare(data)
        output_act = cfg.model.output_act  # as run.train chooses it
        if output_act == "auto" and model.output_act:
            output_act = model.output_act
        objective = build_objective(cfg.loss.name, output_act, fitted.spec, cfg.reg, cfg.model.name)
        trainer = Trainer(replace(cfg.trainer, epochs=epochs), cfg.optim, device)
        trainer.fit(model, fitted, objective)

    return train


# --- the cases -------------------------------------------------------------------------------


def rbm_digits(batch_size: int) -> Callable[[], tuple[TrainEpochs, TrainEpochs]]:
    """A Bernoulli RBM of 100 hidden units on digits scaled to [0, 1]: persistent CD-1 with
    plain SGD at lr 0.06 (what scikit-learn's BernoulliRBM does; its example's settings)."""
    n_hidden, lr = 100, 0.06

    def setup() -> tuple[TrainEpochs, TrainEpochs]:
        from sklearn.neural_network import BernoulliRBM

        from dlbasics.data import build_data

        cfg = config(
            "model=rbm",
            f"model.n_hidden={n_hidden}",
            "model.pcd=true",
            "data.unit_range=true",
            "optim=sgd",
            f"optim.lr={lr}",
            f"trainer.batch_size={batch_size}",
            "trainer.early_stopping.enabled=false",
            "logger=none",
        )
        inputs = (
            build_data(cfg.data).every_training_input().flatten(1).numpy()
        )  # float32 (1, 8, 8) images, flat

        def scikit_learn(epochs: int) -> None:
            BernoulliRBM(
                n_components=n_hidden,
                learning_rate=lr,
                batch_size=batch_size,
                n_iter=epochs,
                random_state=0,
            ).fit(inputs)

        return train_with_dlbasics(cfg), scikit_learn

    return setup


CASES = [
    Case(
        "rbm_digits",
        "RBM 64→100 on digits in [0, 1], PCD-1, SGD lr 0.06, batch 10 (sklearn's default)",
        rbm_digits(batch_size=10),
        baseline="sklearn BernoulliRBM",
    ),
    Case(
        "rbm_digits_b64",
        "the same with batches of 64 (dlbasics' default)",
        rbm_digits(batch_size=64),
        baseline="sklearn BernoulliRBM",
    ),
]


# --- timing and reporting ----------------------------------------------------------------------


def seconds_per_epoch(train: TrainEpochs, epochs: int) -> float:
    started = time.perf_counter()
    train(epochs)
    return (time.perf_counter() - started) / epochs


def run_case(case: Case, rounds: int) -> dict:
    ours, baseline = case.setup()
    contenders = {"dlbasics": ours, case.baseline: baseline}
    for train in contenders.values():  # warm-up, not counted
        seconds_per_epoch(train, 1)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, train in contenders.items():
            times[name].append(seconds_per_epoch(train, case.epochs_per_round))
    summary = {
        name: {"median": statistics.median(t), "min": min(t), "seconds_per_epoch": t}
        for name, t in times.items()
    }
    return {
        "case": case.name,
        "description": case.description,
        "epochs_per_round": case.epochs_per_round,
        "rounds": rounds,
        "contenders": summary,
        "ratio": summary["dlbasics"]["median"] / summary[case.baseline]["median"],
    }


def machine(threads: int) -> dict:
    import numpy
    import sklearn

    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line for line in cpuinfo.read_text().splitlines() if "model name" in line]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    return {
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "sklearn": sklearn.__version__,
        "threads": threads,
    }


def table(results: list[dict], about: dict) -> str:
    lines = [
        f"{about['host']}: {about['cpu']}, {about['cores']} cores; torch {about['torch']}, "
        f"numpy {about['numpy']}, scikit-learn {about['sklearn']}; {about['threads']} thread(s)",
        "",
        f"{'case':<14} {'contender':<22} {'median s/epoch':>15} {'min s/epoch':>12} {'ratio':>7}",
    ]
    for result in results:
        for i, (name, t) in enumerate(result["contenders"].items()):
            ratio = f"{result['ratio']:.2f}" if i == 0 else ""
            case = result["case"] if i == 0 else ""
            lines.append(f"{case:<14} {name:<22} {t['median']:>15.4f} {t['min']:>12.4f} {ratio:>7}")
    lines.append("ratio: dlbasics / baseline, of the medians (below 1: dlbasics is faster)")
    return "\n".join(lines)


def main() -> None:
    names = [case.name for case in CASES]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="*", help=f"any of {', '.join(names)} (default: all)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per contender")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    parser.add_argument("--json", type=Path, default=ROOT / "outputs" / "bench.json")
    args = parser.parse_args()
    unknown = set(args.cases) - set(names)
    if unknown:
        parser.error(
            f"unknown case(s) {', '.join(sorted(unknown))}; choose from {', '.join(names)}"
        )

    torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads):  # numpy's BLAS: the same threads as torch
        results = [run_case(c, args.rounds) for c in CASES if c.name in (args.cases or names)]
    about = machine(args.threads)
    print(table(results, about))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": about, "results": results}, indent=2) + "\n")
    print(f"written: {args.json}")


if __name__ == "__main__":
    main()
