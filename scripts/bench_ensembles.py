"""Ensembles and stacked training: their accuracy against scikit-learn's ensembles, and the speed
of many small models trained as one stacked computation.

**Accuracy** (part a). On data=digits, wine and breast_cancer, each of dlbasics'
``ensemble=voting|bagging|stacking|boosting`` over ``model=mlp`` against scikit-learn's
ensemble of the same kind over MLPClassifier: VotingClassifier (soft), BaggingClassifier,
StackingClassifier (cv = ensemble.folds, its default final estimator, a logistic regression)
and AdaBoostClassifier (SAMME) over MLPClassifier (where this scikit-learn's MLPClassifier.fit
takes sample weights, as 1.9's does: checked when it runs) and over its default estimator, a
decision stump.
Both train K members of the same MLP (the same hidden sizes, ReLU, Adam at lr 0.001, batches of
64, no L2 penalty) for the same number of epochs, with early stopping off on both sides (and
dlbasics' restore_best off: both end with their last epoch's weights). Stacking's meta-learner
is each library's own: dlbasics' stops early on the validation split, scikit-learn's
LogisticRegression fits to convergence. The split is dlbasics' own (dlbasics.data.build_data
on the composed config): scikit-learn fits on the same training rows (not the validation
rows, which dlbasics only measures on), standardised as dlbasics standardised them, and both are
scored on the same test rows. dlbasics' seconds are the whole `run.train` (data, fit, test,
metrics.json; logger=none, no checkpoints), scikit-learn's those of ``fit``, after one short
warm-up fit of each; both on one thread (trainer.threads=1; one BLAS thread), the same work
for each whatever else the machine runs.

**Speed** (part b). 16 MLPs 64-128-64-10 on digits, jobs that differ only by ``seed`` (their
split, initial weights and shuffle), Adam, batches of 64, the same epochs, no early stopping:

- ``stacked``: `dlbasics.stacked_runs.train_group` over the 16 jobs (what
  ``hydra/launcher=stacked`` calls), with trainer.threads=1 and =2 set in their configs;
- ``sequential``: the 16 jobs one after another with `dlbasics.run.train`, in this process
  (what the basic launcher does for `scripts/train.py -m seed=range(16)`);
- scikit-learn's MLPClassifier, 16 fits (max_iter = the epochs, no early stopping);
- 16 hand-written PyTorch loops: index-slice batches of a per-epoch permutation, fused Adam, the
  per-epoch training and validation measures the Trainer takes, read once per epoch.

dlbasics' runs write their run directories as a sweep's jobs do (TensorBoard, checkpoints); the
hand loops and scikit-learn get their data ready-made, dlbasics builds it in each run. The
contenders are timed in interleaved rounds in one process (stacked, sequential, … stacked, …),
after one short warm-up each, and the table shows the median and minimum seconds and the
medians as multiples of the sequential run's and of the hand loops', and for dlbasics' two the
median seconds of their training loops alone (the jobs' fit_seconds summed). scikit-learn, the hand
loops and the sequential runs (trainer.threads=auto) use one thread. Then, each in a fresh
process: the peak resident memory the 16 jobs add, stacked and sequential (VmHWM after training
less VmRSS before it, read from /proc, after a short warm-up whose peak is reset: what a first
run loads once is not the jobs'); on CUDA, torch's own peak of allocated memory. The
mean test accuracy of each contender is shown; stacked and sequential must agree job for job
(the table says whether they do). Last, the wall time of `scripts/train.py -m seed=range(16) …`
as a subprocess under ``hydra/launcher=basic`` and, where the tree has it,
``hydra/launcher=stacked`` (with its trainer.threads=auto, and with trainer.threads=1). With a
GPU, part b runs on CUDA as well (scikit-learn: the CPU only).

No time is asserted anywhere; everything printed also goes to a JSON file.

    .venv/bin/python scripts/bench_ensembles.py             # both parts (make bench)
    .venv/bin/python scripts/bench_ensembles.py --quick     # fewer epochs, one round
    .venv/bin/python scripts/bench_ensembles.py --part speed --rounds 5
"""

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from threadpoolctl import threadpool_limits
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from dlbasics.config import Config, register_configs, validate  # noqa: E402
from dlbasics.data import DataSplits, build_data  # noqa: E402
from dlbasics.run import train  # noqa: E402
from dlbasics.stacked_runs import group_key, train_group  # noqa: E402

DATASETS = ("digits", "wine", "breast_cancer")
KINDS = ("voting", "bagging", "stacking", "boosting")
HIDDEN = (128, 64)
LR, BATCH = 1e-3, 64
# Both sides train exactly the epochs asked for and end with the last epoch's weights.
NO_EARLY_STOPPING = (
    "trainer.early_stopping.enabled=false",
    "trainer.early_stopping.restore_best=false",
)
COMMON = (
    "model=mlp",
    f"model.hidden=[{','.join(map(str, HIDDEN))}]",
    "act=relu",
    "optim=adam",
    f"optim.lr={LR}",
    "reg=none",
    "trainer=minibatch",
    f"trainer.batch_size={BATCH}",
    *NO_EARLY_STOPPING,
)
# Where the runs write their run directories: main() makes it and removes it at the end (a test
# sets one of its own); None: the system's temporary directory.
TMP: Path | None = None


def config(*overrides: str) -> Config:
    """The validated config `scripts/train.py <overrides>` would run with."""
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return validate(compose(config_name="config", overrides=list(overrides)))


def hydra_knows(*overrides: str) -> bool:
    """Whether Hydra composes the config with these overrides of its own groups (hydra/…)."""
    register_configs()
    try:
        with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
            compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    except Exception:  # noqa: BLE001 - any failure to compose means: not available
        return False
    return True


def fresh_dir(name: str) -> Path:
    """A new directory for run directories, in TMP."""
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=TMP))


@dataclass(frozen=True)
class Arrays:
    """A split as scikit-learn takes it: rows of features, and class labels 0 … C − 1."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def as_arrays(data: DataSplits) -> Arrays:
    """dlbasics' training and test rows, scaled as dlbasics scaled them, flattened to rows
    (digits' 1×8×8 images become 64 pixels), the labels as one vector of class indices (a
    binary task's (n, 1) targets too)."""

    def labels(y: Tensor) -> np.ndarray:
        return y.reshape(len(y)).long().numpy()

    return Arrays(
        data.x_train.flatten(1).numpy(),
        labels(data.y_train),
        data.x_test.flatten(1).numpy(),
        labels(data.y_test),
    )


# --- part a: accuracy against scikit-learn ------------------------------------------------------


def sklearn_mlp(epochs: int, seed: int | None) -> Any:
    """MLPClassifier as dlbasics' model=mlp trains: the same layers, ReLU, Adam at the same
    learning rate and batch size, no L2 penalty, exactly ``epochs`` epochs (no early stopping,
    no stop on a small improvement)."""
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(
        hidden_layer_sizes=HIDDEN,
        activation="relu",
        solver="adam",
        alpha=0.0,
        batch_size=BATCH,
        learning_rate_init=LR,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=epochs + 1,
        early_stopping=False,
        random_state=seed,
    )


def mlp_takes_sample_weight() -> bool:
    """Whether this scikit-learn's MLPClassifier.fit takes sample weights (AdaBoost needs them)."""
    from sklearn.utils.validation import has_fit_parameter

    return has_fit_parameter(sklearn_mlp(1, 0), "sample_weight")


def sklearn_ensembles(kind: str, members: int, epochs: int, seed: int, folds: int) -> dict:
    """scikit-learn's counterparts of dlbasics' ``ensemble=kind``: name → unfitted estimator.
    Members of voting and stacking are seeded seed … seed + K − 1, as dlbasics' are."""
    from sklearn.ensemble import (
        AdaBoostClassifier,
        BaggingClassifier,
        StackingClassifier,
        VotingClassifier,
    )

    named = [(f"mlp{k}", sklearn_mlp(epochs, seed + k)) for k in range(members)]
    if kind == "voting":
        return {f"VotingClassifier(soft, {members} MLP)": VotingClassifier(named, voting="soft")}
    if kind == "bagging":
        bagging = BaggingClassifier(sklearn_mlp(epochs, None), members, random_state=seed)
        return {f"BaggingClassifier({members} MLP)": bagging}
    if kind == "stacking":
        stacking = StackingClassifier(named, cv=folds)  # final estimator: LogisticRegression
        return {f"StackingClassifier({members} MLP, cv={folds})": stacking}
    boosting = {
        f"AdaBoostClassifier({members} stumps)": AdaBoostClassifier(
            n_estimators=members, random_state=seed
        )
    }
    if mlp_takes_sample_weight():
        over_mlp = AdaBoostClassifier(
            sklearn_mlp(epochs, None), n_estimators=members, random_state=seed
        )
        boosting = {f"AdaBoostClassifier({members} MLP)": over_mlp, **boosting}
    return boosting


def fit_sklearn(estimator: Any, arrays: Arrays) -> dict[str, Any]:
    """Fit on the training rows, on one BLAS thread; the test accuracy of the ensemble and of
    each member."""
    from sklearn.exceptions import ConvergenceWarning

    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # it stops where we say
        started = time.perf_counter()
        estimator.fit(arrays.x_train, arrays.y_train)
        seconds = time.perf_counter() - started
    members = [
        float((member.predict(arrays.x_test) == arrays.y_test).mean())
        for member in estimator.estimators_
    ]
    return {
        "test_acc": float(estimator.score(arrays.x_test, arrays.y_test)),
        "seconds": seconds,
        "mean_member_test_acc": statistics.fmean(members),
        "member_test_acc": members,
    }


def fit_dlbasics(kind: str, data: str, members: int, epochs: int, seed: int = 0) -> dict:
    """`scripts/train.py ensemble=<kind> data=<data> seed=<seed> …` in this process, on one
    thread: its metrics and wall seconds."""
    cfg = config(
        *COMMON,
        f"seed={seed}",
        f"data={data}",
        f"ensemble={kind}",
        f"ensemble.members={members}",
        f"trainer.epochs={epochs}",
        "trainer.device=cpu",
        "trainer.threads=1",
        "trainer.checkpoints=false",
        "logger=none",
    )
    started = time.perf_counter()
    metrics = train(cfg, fresh_dir(f"{data}-{kind}"), progress=False)
    return {"seconds": time.perf_counter() - started, "metrics": metrics}


def compare(kind: str, data: str, members: int, epochs: int, seed: int = 0) -> dict[str, Any]:
    """dlbasics' ``ensemble=kind`` and scikit-learn's counterparts on ``data``, on dlbasics'
    split by ``seed`` (which seeds the members too): their test accuracies, their members' and
    their seconds."""
    cfg = config(*COMMON, f"data={data}", f"ensemble={kind}", f"seed={seed}")
    arrays = as_arrays(build_data(cfg.data))
    folds = getattr(cfg.ensemble, "folds", 5)
    estimators = sklearn_ensembles(kind, members, epochs, cfg.trainer.seed, folds)
    return {
        "data": data,
        "kind": kind,
        "n_train": len(arrays.y_train),
        "n_test": len(arrays.y_test),
        "dlbasics": fit_dlbasics(kind, data, members, epochs, seed),
        "sklearn": {name: fit_sklearn(estimator, arrays) for name, estimator in estimators.items()},
    }


def accuracy_part(members: int, epochs: int, datasets: Sequence[str]) -> list[dict]:
    print("accuracy: warm-up …", file=sys.stderr, flush=True)
    compare("voting", "wine", 2, 1)  # not counted: the first fits' imports and set-up
    rows = []
    for data in datasets:
        for kind in KINDS:
            print(f"accuracy: {data} {kind} …", file=sys.stderr, flush=True)
            rows.append(compare(kind, data, members, epochs))
    return rows


def kind_notes(ensemble: dict[str, Any]) -> str:
    """What metrics.json's ``ensemble`` says of the kind: bagging's out-of-bag accuracy,
    boosting's members used and votes."""
    if ensemble.get("oob_acc") is not None:
        return f"oob {ensemble['oob_acc']:.3f}"
    if "alphas" in ensemble:
        alphas = " ".join(f"{a:.1f}" for a in ensemble["alphas"])
        return f"{ensemble['members_used']} used, α {alphas}"
    return ""


def accuracy_table(rows: list[dict], members: int, epochs: int) -> str:
    lines = [
        f"Test accuracy: K={members} members, MLP {'-'.join(map(str, HIDDEN))} ReLU, Adam lr "
        f"{LR:g}, batches of {BATCH}, {epochs} epochs, no early stopping, on dlbasics' split "
        "(scikit-learn on the same training rows, standardised the same way; the same test rows)",
        "",
        f"{'data (train/test rows)':<24} {'method':<9} {'dlbasics':>8} {'members':>8} "
        f"{'sklearn':>8} {'members':>8} {'dl s':>7} {'sk s':>7}  "
        f"{'scikit-learn estimator':<34} notes",
    ]
    for row in rows:
        ours, metrics = row["dlbasics"], row["dlbasics"]["metrics"]
        ensemble = metrics["ensemble"]
        data = f"{row['data']} ({row['n_train']}/{row['n_test']})"
        first = True
        for name, theirs in row["sklearn"].items():
            mine = (
                f"{metrics['test_acc']:>8.4f} {ensemble['mean_member_test_acc']:>8.4f}"
                if first
                else f"{'':>8} {'':>8}"
            )
            seconds = f"{ours['seconds']:>7.1f}" if first else f"{'':>7}"
            lines.append(
                f"{data if first else '':<24} {row['kind'] if first else '':<9} {mine} "
                f"{theirs['test_acc']:>8.4f} {theirs['mean_member_test_acc']:>8.4f} {seconds} "
                f"{theirs['seconds']:>7.1f}  {name:<34} {kind_notes(ensemble) if first else ''}"
            )
            first = False
    lines += [
        "members: the members' mean test accuracy (boosting: of the members it added)",
        "dl s: the whole run.train (data, fit, test); sk s: fit(); both on one thread",
    ]
    return "\n".join(lines)


# --- part b: many small models ------------------------------------------------------------------


@dataclass(frozen=True)
class SpeedSettings:
    jobs: int
    epochs: int
    device: str  # cpu | cuda

    def overrides(self, seed: int, threads: int | str = "auto") -> list[str]:
        return [
            *COMMON,
            "data=digits",
            f"seed={seed}",
            f"trainer.epochs={self.epochs}",
            f"trainer.device={self.device}",
            f"trainer.threads={threads}",
        ]

    def configs(self, threads: int | str = "auto") -> list[Config]:
        return [config(*self.overrides(seed, threads)) for seed in range(self.jobs)]


@dataclass(frozen=True)
class Outcome:
    """What a contender's jobs came to: their test accuracies, and for dlbasics' runs the
    seconds of their training loops (the Trainer's fits: fit_seconds in metrics.json), the
    rest of their time being each job's data, config, run directory and test."""

    accuracies: list[float]
    fit_seconds: float | None = None


Contender = Callable[[], Outcome]  # trains every job once


def dlbasics_outcome(results: Sequence[dict[str, Any] | BaseException]) -> Outcome:
    accuracies = [job_accuracy(result) for result in results]
    return Outcome(accuracies, math.fsum(r["fit_seconds"] for r in results))  # type: ignore[index]


def stacked_contender(configs: list[Config]) -> Contender:
    """`stacked_runs.train_group` over the jobs, each its run directory as a sweep's job."""

    def run() -> Outcome:
        root = fresh_dir("stacked")
        jobs = [(cfg, root / str(k), f"seed={cfg.seed}") for k, cfg in enumerate(configs)]
        return dlbasics_outcome(train_group(jobs, swept=("seed",)))

    return run


def sequential_contender(configs: list[Config]) -> Contender:
    """The jobs one after another through `run.train`, as the basic launcher runs a sweep."""

    def run() -> Outcome:
        root = fresh_dir("sequential")
        return dlbasics_outcome(
            [
                train(cfg, root / str(k), progress=False, name=f"seed={cfg.seed}", swept=("seed",))
                for k, cfg in enumerate(configs)
            ]
        )

    return run


def job_accuracy(result: dict[str, Any] | BaseException) -> float:
    if isinstance(result, BaseException):
        raise result
    return result["test_acc"]


def sklearn_contender(splits: list[Arrays], epochs: int) -> Contender:
    """MLPClassifier fitted on each job's training rows (its seed's split), one BLAS thread."""
    from sklearn.exceptions import ConvergenceWarning

    def run() -> Outcome:
        accuracies = []
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for seed, arrays in enumerate(splits):
                fitted = sklearn_mlp(epochs, seed).fit(arrays.x_train, arrays.y_train)
                accuracies.append(float(fitted.score(arrays.x_test, arrays.y_test)))
        return Outcome(accuracies)

    return run


def hand_contender(splits: list[DataSplits], epochs: int, device: torch.device) -> Contender:
    """The jobs as hand-written PyTorch loops, one thread on a CPU."""

    def run() -> Outcome:
        if device.type == "cpu":
            torch.set_num_threads(1)
        return Outcome([hand_loop(data, seed, epochs, device) for seed, data in enumerate(splits)])

    return run


def hand_loop(data: DataSplits, seed: int, epochs: int, device: torch.device) -> float:
    """One MLP written out in PyTorch, trained on ``data`` (on ``device`` already): each epoch
    a permutation of the training rows cut into index-slice batches, fused Adam, and the
    training loss and accuracy (summed on the device) and validation loss and accuracy, read
    once. Returns its test accuracy."""
    x, y = data.x_train.flatten(1), data.y_train
    x_val, x_test = data.x_val.flatten(1), data.x_test.flatten(1)
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    width = x.shape[1]
    for size in HIDDEN:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    model = nn.Sequential(*layers, nn.Linear(width, data.spec.n_outputs)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, fused=True)
    shuffle = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        for index in torch.randperm(len(x), generator=shuffle).to(device).split(BATCH):
            xb, yb = x[index], y[index]
            optimizer.zero_grad(set_to_none=True)
            scores = model(xb)
            loss = F.cross_entropy(scores, yb)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(xb)
            correct += (scores.detach().argmax(1) == yb).sum()
        model.eval()
        with torch.no_grad():
            scores = model(x_val)
            val = torch.stack(
                [F.cross_entropy(scores, data.y_val), (scores.argmax(1) == data.y_val).sum()]
            )
        torch.cat([torch.stack([loss_sum, correct]), val]).tolist()  # one read
    with torch.no_grad():
        return (model(x_test).argmax(1) == data.y_test).float().mean().item()


def on_device(data: DataSplits, device: torch.device) -> DataSplits:
    moved = {
        name: getattr(data, name).to(device)
        for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
    }
    return replace(data, **moved)


def contenders(settings: SpeedSettings) -> dict[str, Contender]:
    device = torch.device(settings.device)
    splits = [build_data(cfg.data) for cfg in settings.configs()]  # job k's: seed k's split
    found = {f"stacked, threads={t}": stacked_contender(settings.configs(t)) for t in (1, "auto")}
    if device.type == "cuda":  # threads do not drive a GPU's kernels
        found = {"stacked": stacked_contender(settings.configs(1))}
    found[SEQUENTIAL] = sequential_contender(settings.configs())
    if device.type == "cpu":
        found["scikit-learn MLPClassifier"] = sklearn_contender(
            [as_arrays(s) for s in splits], settings.epochs
        )
    found[HAND_LOOPS] = hand_contender(
        [on_device(s, device) for s in splits], settings.epochs, device
    )
    return found


SEQUENTIAL = "sequential, run.train each"
HAND_LOOPS = "hand loops, fused Adam"


def timed(contender: Contender, device: torch.device) -> tuple[float, Outcome]:
    started = time.perf_counter()
    outcome = contender()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started, outcome


def speed_part(settings: SpeedSettings, rounds: int) -> dict[str, Any]:
    device = torch.device(settings.device)
    timed_contenders = contenders(settings)
    warm_up = contenders(replace(settings, jobs=2, epochs=1))
    for name, contender in warm_up.items():  # not counted
        print(f"speed on {device}: warm-up {name} …", file=sys.stderr, flush=True)
        timed(contender, device)
    seconds: dict[str, list[float]] = {name: [] for name in timed_contenders}
    accuracies: dict[str, list[float]] = {}
    fit_seconds: dict[str, list[float]] = {name: [] for name in timed_contenders}
    cuda_peak_mib: dict[str, float] = {}
    for round_ in range(rounds):
        for name, contender in timed_contenders.items():
            print(f"speed on {device}: round {round_ + 1} {name} …", file=sys.stderr, flush=True)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            took, outcome = timed(contender, device)
            seconds[name].append(took)
            accuracies[name] = outcome.accuracies
            if outcome.fit_seconds is not None:
                fit_seconds[name].append(outcome.fit_seconds)
            if device.type == "cuda":
                cuda_peak_mib[name] = torch.cuda.max_memory_allocated(device) / 2**20
    stacked = next(name for name in timed_contenders if name.startswith("stacked"))
    result = {
        "device": str(device),
        "jobs": settings.jobs,
        "epochs": settings.epochs,
        "rounds": rounds,
        "seconds": seconds,
        "median": {name: statistics.median(s) for name, s in seconds.items()},
        "min": {name: min(s) for name, s in seconds.items()},
        "fit_median": {name: statistics.median(s) for name, s in fit_seconds.items() if s},
        "test_acc": accuracies,
        "stacked_is_sequential": [
            a == b for a, b in zip(accuracies[stacked], accuracies[SEQUENTIAL], strict=True)
        ],
        "stacks": group_key(settings.configs()[0]) is not None,
        "memory": memory_per_contender(settings, cuda_peak_mib),
    }
    return result


def memory_per_contender(settings: SpeedSettings, cuda_peak_mib: dict[str, float]) -> dict:
    """Peak memory the jobs add, stacked and sequential: on CUDA torch's peak of allocated
    memory, measured in the timed rounds; on a CPU the resident set's growth, each in a
    fresh process (this one's has held every contender's memory)."""
    if settings.device == "cuda":
        return {"what": "torch.cuda.max_memory_allocated", "mib": cuda_peak_mib}
    if not Path("/proc/self/status").exists():
        return {"what": "resident set growth (needs /proc)", "mib": {}}
    grown = {}
    for name in ("stacked, threads=1", SEQUENTIAL):
        print(f"speed on cpu: memory of {name} …", file=sys.stderr, flush=True)
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--memory-of",
                name,
                "--jobs",
                str(settings.jobs),
                "--speed-epochs",
                str(settings.epochs),
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        grown[name] = json.loads(done.stdout.strip().splitlines()[-1])["grown_mib"]
    return {
        "what": "resident set growth, VmHWM after − VmRSS before (after a warm-up, in a "
        "fresh process)",
        "mib": grown,
    }


def proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss() -> bool:
    """Set this process' peak resident memory (VmHWM) to its present one; False where Linux
    does not let it (before 4.0, or /proc read-only)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure_memory(name: str, settings: SpeedSettings) -> None:
    """(In a child process) train the jobs as ``name`` does, once, and print the resident
    memory that added, as JSON on stdout. A short warm-up first, where the peak can be reset
    after it: what any first run loads once (modules, kernels) is not the jobs' memory."""
    found = contenders(settings)
    warm_up = contenders(replace(settings, jobs=2, epochs=1))[name]
    if reset_peak_rss():
        warm_up()
        reset_peak_rss()
    before = proc_status_kib("VmRSS")
    found[name]()
    print(json.dumps({"grown_mib": (proc_status_kib("VmHWM") - before) / 1024}))


def speed_table(result: dict[str, Any]) -> str:
    median, least = result["median"], result["min"]
    lines = [
        f"{result['jobs']} MLPs {'-'.join(['64', *map(str, HIDDEN), '10'])} on digits (jobs "
        f"seed=0…{result['jobs'] - 1}: each its split, initial weights and shuffle), Adam lr "
        f"{LR:g}, batches of {BATCH}, {result['epochs']} epochs, no early stopping, on "
        f"{result['device']}; {result['rounds']} interleaved round(s)",
        "",
        f"{'contender':<30} {'median s':>9} {'min s':>8} {'× sequential':>13} "
        f"{'× hand loops':>13} {'s per job':>10} {'fit s':>7} {'fit × seq.':>11} "
        f"{'mean test acc':>14}",
    ]
    fits = result.get("fit_median", {})
    for name, seconds in median.items():
        acc = statistics.fmean(result["test_acc"][name])
        fit = f"{fits[name]:>7.2f} {fits[name] / fits[SEQUENTIAL]:>11.2f}" if name in fits else ""
        lines.append(
            f"{name:<30} {seconds:>9.2f} {least[name]:>8.2f} {seconds / median[SEQUENTIAL]:>13.2f} "
            f"{seconds / median[HAND_LOOPS]:>13.2f} {seconds / result['jobs']:>10.3f} "
            f"{fit or ' ' * 19} {acc:>14.4f}"
        )
    lines.append(
        "fit s: the median seconds of dlbasics' training loops alone (the sum of the jobs' "
        "fit_seconds); the rest of a job's time is its data, config, run directory and test"
    )
    same = result["stacked_is_sequential"]
    lines.append(
        "stacked and sequential test accuracies: "
        + (
            f"the same for all {len(same)} jobs"
            if all(same)
            else f"DIFFER for {same.count(False)} of {len(same)} jobs (jobs "
            f"{', '.join(str(k) for k, s in enumerate(same) if not s)})"
        )
    )
    if not result["stacks"]:
        lines.append(
            "note: stacked_runs.group_key gives these jobs no group: train_group trains them "
            "one by one in this tree"
        )
    memory = result["memory"]
    if memory["mib"]:
        lines.append(f"peak memory of the {result['jobs']} jobs, {memory['what']}:")
        for name, mib in memory["mib"].items():
            held = "one job at a time" if name == SEQUENTIAL else "every job at once"
            lines.append(f"  {name}: {mib:.1f} MiB, {mib / result['jobs']:.2f} per job ({held})")
    return "\n".join(lines)


# --- sweeps as a user starts them ---------------------------------------------------------------


# Each sweep: what it is called in the table, and its overrides besides the jobs' own.
SWEEPS = {
    "hydra/launcher=basic": ["hydra/launcher=basic"],
    "hydra/launcher=stacked": ["hydra/launcher=stacked"],
    "hydra/launcher=stacked trainer.threads=1": ["hydra/launcher=stacked", "trainer.threads=1"],
}
# A busy machine: this many processes spinning on the CPU while a sweep runs.
BUSY_PROCESSES = 2
# What a user of scikit-learn runs instead: GridSearchCV over the same models (one per seed),
# each fitted on the training split and scored on the validation split, in parallel on every
# core, then the best refitted; a whole command, start-up included, as the sweeps are.
GRID_SEARCH = """
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier
x, y = load_digits(return_X_y=True)
x, _, y, _ = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)  # test: off
train, val = train_test_split(range(len(y)), test_size=0.25, stratify=y, random_state=0)
x = (x - x[train].mean()) / x[train].std()  # one scale over all pixels, as data=digits
mlp = MLPClassifier(
    hidden_layer_sizes={hidden}, solver="adam", alpha=0.0, batch_size={batch},
    learning_rate_init={lr}, max_iter={epochs}, tol=0.0, n_iter_no_change={epochs} + 1,
)
grid = {{"random_state": list(range({jobs}))}}
search = GridSearchCV(mlp, grid, cv=[(train, val)], n_jobs=-1).fit(x, y)
print(search.best_score_)
"""


def sweep_walls(jobs: int, epochs: int, busy: bool) -> dict[str, float | str]:
    """Wall seconds of `scripts/train.py -m seed=range(jobs) …` under each launcher, and of
    scikit-learn's GridSearchCV over the same models, or why one was not run; ``busy``: with
    BUSY_PROCESSES other processes spinning all the while."""
    commands = {}
    for label, overrides in SWEEPS.items():
        if not hydra_knows(overrides[0]):
            commands[label] = f"skipped: Hydra knows no {overrides[0]} in this tree"
            continue
        commands[label] = [
            sys.executable,
            str(ROOT / "scripts" / "train.py"),
            "-m",
            f"seed=range({jobs})",
            *COMMON,
            f"trainer.epochs={epochs}",
            *overrides,
            f"hydra.sweep.dir={fresh_dir('sweep')}",
        ]
    script = GRID_SEARCH.format(hidden=HIDDEN, batch=BATCH, lr=LR, epochs=epochs, jobs=jobs)
    commands["sklearn GridSearchCV (n_jobs=-1)"] = [sys.executable, "-c", script]
    spinning = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(BUSY_PROCESSES if busy else 0)
    ]
    walls: dict[str, float | str] = {}
    try:
        for label, command in commands.items():
            if isinstance(command, str):
                walls[label] = command
                continue
            print(f"sweep: {label}{' (busy)' if busy else ''} …", file=sys.stderr, flush=True)
            started = time.perf_counter()
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            walls[label] = time.perf_counter() - started
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or [""])[-1]
                walls[label] = f"failed (exit {done.returncode}): {last}"
    finally:
        for process in spinning:
            process.kill()
            process.wait()
    return walls


def sweep_lines(walls: dict[str, dict[str, float | str]], jobs: int, epochs: int) -> list[str]:
    """The sweeps' seconds, idle and busy, and the stacked launcher's ratios against the basic
    launcher's and against GridSearchCV's."""
    lines = [
        f"scripts/train.py -m seed=range({jobs}) (the same MLP, {epochs} epochs) against "
        f"GridSearchCV over the same {jobs} models; wall seconds from start to exit, idle and "
        f"with {BUSY_PROCESSES} processes spinning:"
    ]
    for label in walls["idle"]:
        shown = []
        for state, seconds in walls.items():
            wall = seconds[label]
            shown.append(f"{state} {wall:.1f} s" if isinstance(wall, float) else f"{state} {wall}")
        lines.append(f"  {label}: {'; '.join(shown)}")
    for state, seconds in walls.items():
        basic, stacked = seconds["hydra/launcher=basic"], seconds["hydra/launcher=stacked"]
        grid = seconds["sklearn GridSearchCV (n_jobs=-1)"]
        if all(isinstance(wall, float) for wall in (basic, stacked, grid)):
            lines.append(
                f"  {state}: stacked {basic / stacked:.2f}× as fast as basic; "
                f"{stacked / grid:.2f}× GridSearchCV's time"
            )
    return lines


# --- the report ---------------------------------------------------------------------------------


def machine() -> str:
    import sklearn

    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line for line in cpuinfo.read_text().splitlines() if "model name" in line]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    gpu = f"; {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (
        f"{platform.node()}: {cpu}, {os.cpu_count()} cores, load {load}{gpu}; torch "
        f"{torch.__version__}, scikit-learn {sklearn.__version__}; MLPClassifier takes "
        f"sample weights: {'yes' if mlp_takes_sample_weight() else 'no'}"
    )


def main() -> None:
    global TMP
    TMP = Path(tempfile.mkdtemp(prefix="dlbasics-bench-ensembles-"))
    try:
        benchmark()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


def benchmark() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and members, one round")
    parser.add_argument(
        "--part",
        choices=["accuracy", "speed", "sweeps", "both"],
        default="both",
        help="default: both (accuracy, and speed with the sweeps)",
    )
    parser.add_argument("--members", type=int, help="K of part a (default 5; --quick 3)")
    parser.add_argument("--epochs", type=int, help="epochs of part a (default 30; --quick 10)")
    parser.add_argument("--jobs", type=int, default=16, help="models of part b (default 16)")
    parser.add_argument("--speed-epochs", type=int, help="epochs of part b (default 20; --quick 5)")
    parser.add_argument("--rounds", type=int, help="timed rounds of part b (default 3; --quick 1)")
    parser.add_argument("--no-sweeps", action="store_true", help="skip the train.py -m sweeps")
    parser.add_argument(
        "--sweep-epochs", type=int, default=100, help="epochs of the sweeps (default 100)"
    )
    parser.add_argument("--json", type=Path, default=ROOT / "outputs" / "bench_ensembles.json")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)  # the child that measures memory
    args = parser.parse_args()
    members = args.members or (3 if args.quick else 5)
    epochs = args.epochs or (10 if args.quick else 30)
    speed_epochs = args.speed_epochs or (5 if args.quick else 20)
    rounds = args.rounds or (1 if args.quick else 3)
    if args.memory_of:
        measure_memory(args.memory_of, SpeedSettings(args.jobs, speed_epochs, "cpu"))
        return

    report: dict[str, Any] = {"machine": machine()}
    print(report["machine"])
    if args.part in ("accuracy", "both"):
        rows = accuracy_part(members, epochs, DATASETS)
        report["accuracy"] = rows
        print()
        print(accuracy_table(rows, members, epochs))
    if args.part in ("speed", "both"):
        devices = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
        report["speed"] = []
        for device in devices:
            result = speed_part(SpeedSettings(args.jobs, speed_epochs, device), rounds)
            report["speed"].append(result)
            print()
            print(speed_table(result))
    if args.part in ("sweeps", "speed", "both") and not args.no_sweeps:
        walls = {
            state: sweep_walls(args.jobs, args.sweep_epochs, busy=state == "busy")
            for state in ("idle", "busy")
        }
        report["sweeps"] = walls
        print()
        print("\n".join(sweep_lines(walls, args.jobs, args.sweep_epochs)))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwritten: {args.json}")


if __name__ == "__main__":
    main()
