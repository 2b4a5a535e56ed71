"""Time dlbasics against other ways of training the same model, epoch for epoch.

Each case trains one model on one data set with one optimizer, batch size and number of epochs,
in several ways (contenders):

- ``dlbasics``: the Trainer as `scripts/train.py` runs it, with its default logging (TensorBoard
  scalars every epoch), validation and the model's per-epoch measures;
- ``dlbasics, no logging``: the same with ``logger=none``;
- on CUDA, ``dlbasics, precision=bf16``, ``…16-mixed`` and ``…compile=true``: the same with
  these trainer settings (a compiled model pays for its compilation in the rounds' time);
- ``hand loop``: a hand-written PyTorch loop over the pre-loaded tensors, the bar: index-slice
  batches of a per-epoch permutation, the same public torch.optim class with the same options
  (fused where torch has a kernel), and per epoch the same measures (training loss and accuracy
  summed on the device, validation loss and accuracy), read once;
- ``hand loop, DataLoader``: the same loop drawing its batches from ``DataLoader(TensorDataset)``;
- ``hand loop, torch defaults`` (Adam cases): the hand loop with ``torch.optim.Adam``'s default
  implementation, which on a CPU updates one parameter tensor at a time: what fused buys;
- scikit-learn's estimator for the same model and solver (MLPClassifier, Perceptron,
  BernoulliRBM);
- ``lightning``: a LightningModule logging the same measures, fitted by Lightning's default
  Trainer (its progress bar and model summary off: they only print), when ``lightning`` is
  installed (`pip install -e ".[bench]"`; never a dependency of dlbasics).

Contenders are timed in interleaved rounds, A B C … A B C … in one process, so that a machine
whose speed drifts (other jobs, clock changes) slows all alike; every round trains a fresh model
for ``epochs_per_round`` epochs, after one warm-up round each that is not counted. The table
shows the median and minimum seconds per epoch and each median as a multiple of the case's bar
(the hand loop; for the RBM cases scikit-learn), and the optimizer steps per second. The data
are on the device before the timing starts. Checkpoints are off everywhere (Lightning's default
checkpoint callback aside): they are I/O, not training.

The cases run on the CPU, then on CUDA when there is a GPU (``--device``); scikit-learn is
timed on the CPU only, and the perceptron and RBM cases too (a GPU cannot speed up a few
thousand weights). ``mlp_mnist_sized`` is MNIST's size (60000 images of 28×28) with generated
images, since nothing is downloaded. With the CNN case comes its time to accuracy: the epochs
and seconds until the CNN's validation accuracy on digits first reaches 0.98.

It then measures start-up, the wall time of `scripts/train.py trainer.epochs=1` against
`python -c "import torch"` and against a hand-written script that imports torch, reads the same
digits, builds the same MLP and its torch.optim.Adam and trains one epoch, and the peak resident
memory of a default `make train` run and of this process. Last, the answers that come before
any training, `scripts/train.py --help` and a mistyped choice (`model=mlpp`), each the best of
five runs, against `python -c "import hydra, omegaconf"`: they import no torch. Everything goes
to a JSON file too.

    .venv/bin/python scripts/bench.py                           # every case (make bench)
    .venv/bin/python scripts/bench.py mlp_digits --rounds 50    # one case, more rounds
    .venv/bin/python scripts/bench.py --no-startup --json out.json
    .venv/bin/python scripts/bench.py --answers-only            # --help and a mistake, seconds
    .venv/bin/python scripts/bench.py --device cuda             # only the GPU part

Adding a case: write a function that prepares the data once on a device and returns its
contenders (name → a function that trains a fresh model for a number of epochs) and the steps
in an epoch, and add a Case to CASES.
"""

import argparse
import json
import logging
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from threadpoolctl import threadpool_limits
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from dlbasics.config import Config, register_configs, validate  # noqa: E402
from dlbasics.data import DataSpec, DataSplits, build_data  # noqa: E402
from dlbasics.loggers import Logger, NullLogger, TensorBoardLogger  # noqa: E402
from dlbasics.losses import build_objective  # noqa: E402
from dlbasics.models import build_model  # noqa: E402
from dlbasics.optim import build_optimizer  # noqa: E402
from dlbasics.trainer import Trainer  # noqa: E402

TrainEpochs = Callable[[int], None]  # trains a fresh model for this many epochs
Contenders = dict[str, TrainEpochs]
HAND_LOOP = "hand loop"
TMP = Path(tempfile.mkdtemp(prefix="dlbasics-bench-"))  # TensorBoard and Lightning files


@dataclass
class Prepared:
    contenders: Contenders
    steps_per_epoch: int  # optimizer steps in one epoch, the same for every contender


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    setup: Callable[[torch.device], Prepared]  # prepares the data once, outside the timing
    epochs_per_round: int
    bar: str = HAND_LOOP  # the contender the others are divided by
    rounds: int = 5  # unless --rounds says otherwise; more where rounds are short and noisy
    # Also timed on CUDA; the perceptron's and the RBM's bars are CPU libraries and their
    # models a few thousand weights, which a GPU cannot speed up.
    on_gpu: bool = True


def config(*overrides: str) -> Config:
    """The validated config `scripts/train.py <overrides>` would run with (no early stopping:
    every contender trains the same number of epochs)."""
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        overrides = ("trainer.early_stopping.enabled=false", *overrides)
        return validate(compose(config_name="config", overrides=list(overrides)))


# --- the contenders --------------------------------------------------------------------------


def dlbasics_trainer(
    cfg: Config, data: DataSplits, device: torch.device, logging_on: bool
) -> TrainEpochs:
    """Ours: the model and objective `scripts/train.py` builds, fitted by the Trainer; with
    ``logging_on``, TensorBoard scalars every epoch (the default ``logger=tensorboard``)."""

    def train(epochs: int) -> None:
        logger = TensorBoardLogger(Path(tempfile.mkdtemp(dir=TMP))) if logging_on else NullLogger()
        fit_dlbasics(
            replace(cfg, trainer=replace(cfg.trainer, epochs=epochs)), data, device, logger
        )
        logger.close()

    return train


def fit_dlbasics(cfg: Config, data: DataSplits, device: torch.device, logger: Logger) -> None:
    """What `scripts/train.py` runs between loading the data and testing: a fresh model and
    its objective, fitted by the Trainer."""
    torch.manual_seed(cfg.trainer.seed)
    model = build_model(cfg, data.spec)
    fitted = model.prepare(data)
    output_act = cfg.model.output_act  # as run.train chooses it
    if output_act == "auto" and model.output_act:
        output_act = model.output_act
    objective = build_objective(cfg.loss.name, output_act, fitted.spec, cfg.reg, cfg.model.name)
    trainer = Trainer(cfg.trainer, cfg.optim, cfg.schedule, device, logger=logger)
    trainer.fit(model, fitted, objective)


class Stopwatch(NullLogger):
    """A logger that notes the epoch and the seconds since it was made at which the
    validation accuracy first reaches ``target``."""

    def __init__(self, target: float):
        self.target = target
        self.started = time.perf_counter()
        self.reached: dict[str, float] | None = None

    def log_scalars(self, scalars: dict[str, float], step: int) -> None:
        if self.reached is None and scalars["acc/val"] >= self.target:
            self.reached = {"epoch": step, "seconds": time.perf_counter() - self.started}


def time_to_accuracy(device: torch.device, target: float, fits: int, epochs: int = 30) -> dict:
    """The CNN on digits with its defaults (`.venv/bin/python scripts/train.py model=cnn`, no early
    stopping): the epochs and seconds, from building the model, until the validation accuracy
    first reaches ``target``; the median over ``fits`` fits (the same seed: the same epochs)."""
    cfg = config("model=cnn", f"trainer.epochs={epochs}")
    data = build_data(cfg.data)
    warm_up = replace(cfg, trainer=replace(cfg.trainer, epochs=1))
    fit_dlbasics(warm_up, data, device, NullLogger())  # not counted
    reached = []
    for _ in range(fits):
        stopwatch = Stopwatch(target)
        fit_dlbasics(cfg, data, device, stopwatch)
        reached.append(stopwatch.reached)
    every_fit = all(reached)
    return {
        "device": str(device),
        "target_val_acc": target,
        "fits": reached,  # None where a fit did not reach it in ``epochs``
        "epochs": statistics.median(r["epoch"] for r in reached) if every_fit else None,
        "seconds": statistics.median(r["seconds"] for r in reached) if every_fit else None,
    }


def hand_loop(
    cfg: Config,
    data: DataSplits,
    device: torch.device,
    data_loader: bool = False,
    torch_adam: dict | None = None,
) -> TrainEpochs:
    """A hand-written loop for a classifier trained by backpropagation: the bar. Its optimizer
    is the torch.optim class `optim=…` names, with the same options (dlbasics.optim builds
    nothing else); with ``torch_adam``, torch.optim.Adam with these options instead. The data
    are on ``device`` already; the shuffled order is drawn on the CPU, as the Trainer draws it."""
    x, y, x_val, y_val = data.x_train, data.y_train, data.x_val, data.y_val
    batch_size = min(cfg.trainer.batch_size or len(x), len(x))

    def train(epochs: int) -> None:
        torch.manual_seed(cfg.trainer.seed)
        model = build_model(cfg, data.spec).to(device)
        if torch_adam is not None:
            optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, **torch_adam)
        else:
            optimizer = build_optimizer(model.parameters(), cfg.optim, device)
        shuffle = torch.Generator().manual_seed(cfg.trainer.seed)
        loader = DataLoader(
            TensorDataset(x, y), batch_size=batch_size, shuffle=True, generator=shuffle
        )
        for _ in range(epochs):
            model.train()
            if data_loader:
                batches = loader
            else:
                order = torch.randperm(len(x), generator=shuffle).to(device)
                batches = ((x[index], y[index]) for index in order.split(batch_size))
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), dtype=torch.long, device=device)
            for xb, yb in batches:
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
                val_loss = F.cross_entropy(scores, y_val)
                val_correct = (scores.argmax(1) == y_val).sum()
            torch.stack([loss_sum, correct, val_loss, val_correct]).tolist()  # one read

    return train


def hand_perceptron(cfg: Config, data: DataSplits, data_loader: bool = False) -> TrainEpochs:
    """Rosenblatt's rule written out, w ← w + lr·(t − y)·x per batch (mean over the batch),
    with the same per-epoch measures: the mean squared error of the step outputs and the
    accuracy on the training and validation sets."""
    x, y, x_val, y_val = data.x_train, data.y_train, data.x_val, data.y_val
    batch_size = min(cfg.trainer.batch_size or len(x), len(x))
    lr = cfg.optim.lr

    def train(epochs: int) -> None:
        w, b = torch.zeros(x.shape[1], y.shape[1]), torch.zeros(y.shape[1])
        shuffle = torch.Generator().manual_seed(cfg.trainer.seed)
        loader = DataLoader(
            TensorDataset(x, y), batch_size=batch_size, shuffle=True, generator=shuffle
        )
        for _ in range(epochs):
            if data_loader:
                batches = loader
            else:
                order = torch.randperm(len(x), generator=shuffle)
                batches = ((x[index], y[index]) for index in order.split(batch_size))
            loss_sum, correct = torch.zeros(()), torch.zeros(())
            for xb, tb in batches:
                out = (xb @ w + b > 0).to(xb.dtype)
                error = tb - out
                w += lr * xb.T @ error / len(xb)
                b += lr * error.mean(0)
                loss_sum += error.square().mean() * len(xb)
                correct += (out == tb).sum()
            out = (x_val @ w + b > 0).to(x_val.dtype)
            val = torch.stack([(y_val - out).square().mean(), (out == y_val).sum()])
            torch.cat([torch.stack([loss_sum, correct]), val]).tolist()  # one read

    return train


def lightning_classifier(cfg: Config, data: DataSplits, device: torch.device) -> TrainEpochs | None:
    """A LightningModule around the same model and optimizer, logging the same measures per
    epoch, fitted by ``lightning.Trainer`` with its defaults; None without ``lightning``."""
    try:
        import lightning
    except ImportError:
        return None
    for name in ("lightning.pytorch", "lightning.fabric"):  # its notes on devices, tips
        logging.getLogger(name).setLevel(logging.ERROR)
    batch_size = min(cfg.trainer.batch_size or len(data.x_train), len(data.x_train))

    class Classifier(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = build_model(cfg, data.spec)

        def training_step(self, batch: tuple, batch_index: int) -> torch.Tensor:
            x, y = batch
            scores = self.model(x)
            loss = F.cross_entropy(scores, y)
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            self.log("train_acc", (scores.argmax(1) == y).float().mean(), on_epoch=True)
            return loss

        def validation_step(self, batch: tuple, batch_index: int) -> None:
            x, y = batch
            scores = self.model(x)
            self.log("val_loss", F.cross_entropy(scores, y))
            self.log("val_acc", (scores.argmax(1) == y).float().mean())

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return build_optimizer(self.parameters(), cfg.optim, device)

    def train(epochs: int) -> None:
        torch.manual_seed(cfg.trainer.seed)
        train_set = TensorDataset(data.x_train, data.y_train)
        val_set = TensorDataset(data.x_val, data.y_val)
        trainer = lightning.Trainer(
            max_epochs=epochs,
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=1,
            default_root_dir=tempfile.mkdtemp(dir=TMP),
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(
            Classifier(),
            DataLoader(train_set, batch_size=batch_size, shuffle=True),
            DataLoader(val_set, batch_size=len(val_set)),
        )

    return train


def sklearn_mlp(cfg: Config, data: DataSplits) -> TrainEpochs:
    """scikit-learn's MLPClassifier with the same layers, activation, solver, learning rate
    and batch size, no L2 penalty, for exactly ``epochs`` epochs."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    x, y = data.x_train.flatten(1).numpy(), data.y_train.numpy()
    sgd = cfg.optim.name == "sgd"

    def train(epochs: int) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # it stops where we say
            MLPClassifier(
                hidden_layer_sizes=tuple(cfg.model.hidden),
                activation=cfg.act.name,
                solver="sgd" if sgd else "adam",
                alpha=0.0,
                batch_size=cfg.trainer.batch_size,
                learning_rate_init=cfg.optim.lr,
                momentum=0.0,
                max_iter=epochs,
                tol=0.0,
                n_iter_no_change=epochs + 1,
                random_state=cfg.trainer.seed,
            ).fit(x, y)

    return train


# --- the cases -------------------------------------------------------------------------------


def steps_per_epoch(cfg: Config, n_train: int) -> int:
    return math.ceil(n_train / min(cfg.trainer.batch_size or n_train, n_train))


def mnist_sized(seed: int = 0) -> DataSplits:
    """A generated stand-in for MNIST (none can be downloaded here): 60000 training, 10000
    validation and 10000 test images of 28×28 pixels in 10 classes. Each class is a fixed
    random pattern; each image is its class's pattern plus noise of the same scale."""
    generator = torch.Generator().manual_seed(seed)
    patterns = torch.randn(10, 1, 28, 28, generator=generator)
    labels = torch.randint(10, (80000,), generator=generator)
    images = torch.randn(80000, 1, 28, 28, generator=generator)
    for label, pattern in enumerate(patterns):  # in place: 250 MB is enough to hold once
        images[labels == label] += pattern
    images.sub_(images.mean()).div_(images.std())
    spec = DataSpec("mnist_sized", "multiclass", (1, 28, 28), n_outputs=10, n_classes=10)
    train, val, test = slice(0, 60000), slice(60000, 70000), slice(70000, 80000)
    return DataSplits(
        spec,
        images[train],
        labels[train],
        images[val],
        labels[val],
        images[test],
        labels[test],
    )


def classifier_case(
    *overrides: str,
    sklearn: bool = False,
    make_data: Callable[[], DataSplits] | None = None,
) -> Callable[[torch.device], Prepared]:
    """Contenders for a classifier trained by backpropagation, on data=… or ``make_data()``.
    On CUDA, dlbasics runs in each trainer.precision and compiled as well."""

    def setup(device: torch.device) -> Prepared:
        cfg = config(*overrides)
        data = make_data() if make_data else build_data(cfg.data)
        # On the device before the timing starts: a run copies its data there once, which is
        # no cost per epoch.
        resident = replace(
            data,
            x_train=data.x_train.to(device),
            y_train=data.y_train.to(device),
            x_val=data.x_val.to(device),
            y_val=data.y_val.to(device),
        )
        contenders = {
            "dlbasics": dlbasics_trainer(cfg, resident, device, logging_on=True),
            "dlbasics, no logging": dlbasics_trainer(cfg, resident, device, logging_on=False),
        }
        if device.type == "cuda":
            for setting in ("precision=bf16", "precision=16-mixed", "compile=true"):
                variant = config(*overrides, f"trainer.{setting}")
                contenders[f"dlbasics, {setting}"] = dlbasics_trainer(
                    variant, resident, device, logging_on=True
                )
        contenders[HAND_LOOP] = hand_loop(cfg, resident, device)
        contenders["hand loop, DataLoader"] = hand_loop(cfg, resident, device, data_loader=True)
        if cfg.optim.name == "adam":
            contenders["hand loop, torch defaults"] = hand_loop(
                cfg, resident, device, torch_adam={}
            )
        if sklearn and device.type == "cpu":
            contenders["sklearn MLPClassifier"] = sklearn_mlp(cfg, data)
        lightning = lightning_classifier(cfg, data, device)
        if lightning is not None:
            contenders["lightning"] = lightning
        return Prepared(contenders, steps_per_epoch(cfg, len(data.x_train)))

    return setup


def perceptron_case(*overrides: str) -> Callable[[torch.device], Prepared]:
    def setup(device: torch.device) -> Prepared:
        from sklearn.linear_model import Perceptron

        cfg = config("model=perceptron", "optim=sgd", *overrides)
        data = build_data(cfg.data)
        x, y = data.x_train.numpy(), data.y_train.numpy().ravel()

        def scikit_learn(epochs: int) -> None:
            Perceptron(
                eta0=cfg.optim.lr, max_iter=epochs, tol=None, random_state=cfg.trainer.seed
            ).fit(x, y)

        contenders = {
            "dlbasics": dlbasics_trainer(cfg, data, device, logging_on=True),
            "dlbasics, no logging": dlbasics_trainer(cfg, data, device, logging_on=False),
            HAND_LOOP: hand_perceptron(cfg, data),
            "hand loop, DataLoader": hand_perceptron(cfg, data, data_loader=True),
            "sklearn Perceptron": scikit_learn,
        }
        return Prepared(contenders, steps_per_epoch(cfg, len(data.x_train)))

    return setup


def rbm_case(batch_size: int) -> Callable[[torch.device], Prepared]:
    """A Bernoulli RBM of 100 hidden units on digits scaled to [0, 1]: persistent CD-1 with
    plain SGD at lr 0.06 (what scikit-learn's BernoulliRBM does; its example's settings)."""
    n_hidden, lr = 100, 0.06

    def setup(device: torch.device) -> Prepared:
        from sklearn.neural_network import BernoulliRBM

        cfg = config(
            "model=rbm",
            f"model.n_hidden={n_hidden}",
            "model.pcd=true",
            "data.unit_range=true",
            "optim=sgd",
            f"optim.lr={lr}",
            f"trainer.batch_size={batch_size}",
        )
        data = build_data(cfg.data)
        inputs = data.every_training_input().flatten(1).numpy()  # float32, as ours

        def scikit_learn(epochs: int) -> None:
            BernoulliRBM(
                n_components=n_hidden,
                learning_rate=lr,
                batch_size=batch_size,
                n_iter=epochs,
                random_state=0,
            ).fit(inputs)

        contenders = {
            "dlbasics": dlbasics_trainer(cfg, data, device, logging_on=True),
            "dlbasics, no logging": dlbasics_trainer(cfg, data, device, logging_on=False),
            "sklearn BernoulliRBM": scikit_learn,
        }
        return Prepared(contenders, steps_per_epoch(cfg, len(inputs)))

    return setup


CASES = [
    Case(
        "mlp_digits",
        "MLP 64-128-64-10 (ReLU) on digits, Adam lr 0.001, batches of 64 (the defaults)",
        classifier_case(sklearn=True),
        epochs_per_round=10,
        rounds=25,
    ),
    Case(
        "mlp_digits_sgd1",
        "the same MLP, plain SGD lr 0.01, one sample per step (trainer=sgd)",
        classifier_case("trainer=sgd", "optim=sgd", "optim.lr=0.01", sklearn=True),
        epochs_per_round=1,
        rounds=9,  # one epoch varied by half from round to round on a shared 2-core machine
    ),
    Case(
        "cnn_digits",
        "CNN conv32-conv64-dense128 with batch norm on 8×8 digits, Adam, batches of 64",
        classifier_case("model=cnn"),
        epochs_per_round=2,
    ),
    Case(
        "lstm_seq_digits",
        "LSTM of 64 units reading digits row by row, Adam, batches of 64",
        classifier_case("model=rnn", "cell=lstm", "data=seq_digits"),
        epochs_per_round=3,
    ),
    Case(
        "mlp_mnist_sized",
        "the default MLP (784-128-64-10) on 60000 generated 28×28 images, Adam, batches of 64",
        classifier_case(sklearn=True, make_data=mnist_sized),
        epochs_per_round=1,
        rounds=3,
    ),
    Case(
        "perceptron_and",
        "Rosenblatt's perceptron on the AND gate (4 samples), SGD lr 0.01, one sample per step",
        perceptron_case("data=and", "trainer=sgd"),
        epochs_per_round=200,
        rounds=11,
        on_gpu=False,
    ),
    Case(
        "rbm_digits",
        "RBM 64→100 on digits in [0, 1], PCD-1, SGD lr 0.06, batch 10 (sklearn's default)",
        rbm_case(batch_size=10),
        # A fit ends by drawing the RBM's TensorBoard images, which a run does every
        # trainer.checkpoint_every (10) epochs: rounds of 10 epochs pay for them as a run does.
        epochs_per_round=10,
        bar="sklearn BernoulliRBM",
        on_gpu=False,
    ),
    Case(
        "rbm_digits_b64",
        "the same with batches of 64 (dlbasics' default)",
        rbm_case(batch_size=64),
        epochs_per_round=10,
        bar="sklearn BernoulliRBM",
        on_gpu=False,
    ),
]


# --- timing ----------------------------------------------------------------------------------


def seconds_per_epoch(train: TrainEpochs, epochs: int, device: torch.device) -> float:
    started = time.perf_counter()
    train(epochs)
    if device.type == "cuda":  # every kernel queued has run
        torch.cuda.synchronize(device)
    return (time.perf_counter() - started) / epochs


def run_case(case: Case, rounds: int, device: torch.device) -> dict:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    prepared = case.setup(device)
    contenders = prepared.contenders
    for train in contenders.values():  # warm-up, not counted
        seconds_per_epoch(train, 1, device)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, train in contenders.items():
            times[name].append(seconds_per_epoch(train, case.epochs_per_round, device))
    bar = statistics.median(times[case.bar])
    summary = {
        name: {
            "median": statistics.median(t),
            "min": min(t),
            "ratio": statistics.median(t) / bar,
            "steps_per_second": prepared.steps_per_epoch / statistics.median(t),
            "seconds_per_epoch": t,
        }
        for name, t in times.items()
    }
    result = {
        "case": case.name,
        "device": str(device),
        "description": case.description,
        "epochs_per_round": case.epochs_per_round,
        "rounds": rounds,
        "steps_per_epoch": prepared.steps_per_epoch,
        "bar": case.bar,
        "contenders": summary,
    }
    if device.type == "cuda":  # the data, the models and their steps
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def wall_seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


# Runs a script and reports its peak resident memory as it exits. The child's own counter
# (VmHWM) is read: the rusage a parent gets counts the parent's memory at the fork as well.
PEAK_RSS = """
import atexit, runpy, sys
def report():
    status = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
    sys.stderr.write(f"peak_rss_kib={status}\\n")
atexit.register(report)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def peak_rss_mib(script: str, *args: str) -> float | None:
    """Peak resident memory of ``python script args``, in MiB (None where /proc is not)."""
    if not Path("/proc/self/status").exists():
        return None
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, script, *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stderr.rpartition("peak_rss_kib=")[2].split()[0]) / 1024


# What a user would write for the default run's first epoch: the same digits (read from a file,
# as dlbasics reads its cached copy), the same MLP and optimizer, one epoch of mini-batches.
HAND_SCRIPT = """
import sys
import numpy as np
import torch
from torch import nn
torch.set_num_threads(1)
arrays = np.load(sys.argv[1])
x = torch.as_tensor(arrays["x"], dtype=torch.float32)
y = torch.as_tensor(arrays["y"])
x = (x - x.mean(0)) / x.std(0).clamp_min(1e-8)
layers = [nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)]
model = nn.Sequential(*layers)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
for index in torch.randperm(len(x)).split(64):
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x[index]), y[index]).backward()
    optimizer.step()
"""


def startup_and_memory(runs: int) -> dict:
    """Start-up: medians over ``runs`` interleaved runs of each command; memory: a default
    `make train` run, against importing torch."""
    python, train = sys.executable, str(ROOT / "scripts" / "train.py")
    digits = build_data(config().data)
    arrays = TMP / "digits.npz"
    numpy_arrays = {"x": digits.x_train.flatten(1).numpy(), "y": digits.y_train.numpy()}
    np.savez(arrays, **numpy_arrays)
    commands = {
        "import torch": [python, "-c", "import torch"],
        "hand-written script, one epoch": [python, "-c", HAND_SCRIPT, str(arrays)],
        "train.py trainer.epochs=1": [python, train, "trainer.epochs=1"],
    }
    walls: dict[str, list[float]] = {name: [] for name in commands}
    for run in range(runs):
        for name, command in commands.items():
            if command[1] == train:
                command = [*command, f"hydra.run.dir={TMP / f'startup{run}'}"]
            walls[name].append(wall_seconds(command))
    median = {name: statistics.median(w) for name, w in walls.items()}
    torch_only = TMP / "import_torch.py"
    torch_only.write_text("import torch\n")
    return {
        "runs": runs,
        "seconds": median,
        "all_seconds": walls,
        "over_import_torch": median["train.py trainer.epochs=1"] - median["import torch"],
        "over_hand_script": (
            median["train.py trainer.epochs=1"] - median["hand-written script, one epoch"]
        ),
        "make_train_peak_rss_mib": peak_rss_mib(train, f"hydra.run.dir={TMP / 'train'}"),
        "import_torch_peak_rss_mib": peak_rss_mib(str(torch_only)),
    }


# What answers before training (no torch), and the exit status each answers with.
ANSWERS = {
    "import hydra, omegaconf": (["-c", "import hydra, omegaconf"], 0),
    "train.py --help": ([str(ROOT / "scripts" / "train.py"), "--help"], 0),
    "train.py model=mlpp": ([str(ROOT / "scripts" / "train.py"), "model=mlpp"], 2),
}


def answers(runs: int) -> dict:
    """The best of ``runs`` interleaved runs of each command of ANSWERS (the targets, in
    docs/speed.md: a mistake within 0.3 s, --help within 0.5 s)."""
    walls: dict[str, list[float]] = {name: [] for name in ANSWERS}
    for _ in range(runs):
        for name, (args, status) in ANSWERS.items():
            started = time.perf_counter()
            done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True)
            walls[name].append(time.perf_counter() - started)
            if done.returncode != status:
                raise RuntimeError(f"{name} exited {done.returncode}: {done.stderr[-500:]!r}")
    return {"runs": runs, "best_seconds": {n: min(w) for n, w in walls.items()}, "all": walls}


def answers_line(answered: dict) -> str:
    best = answered["best_seconds"]
    return (
        f"answers (best of {answered['runs']}): train.py model=mlpp "
        f"{best['train.py model=mlpp']:.2f} s (target <= 0.3), train.py --help "
        f"{best['train.py --help']:.2f} s (target <= 0.5); import hydra, omegaconf "
        f"{best['import hydra, omegaconf']:.2f} s"
    )


# --- reporting -------------------------------------------------------------------------------


def machine(threads: int, devices: list[torch.device]) -> dict:
    import numpy
    import sklearn

    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line for line in cpuinfo.read_text().splitlines() if "model name" in line]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    try:
        import lightning

        lightning_version = lightning.__version__
    except ImportError:
        lightning_version = None
    return {
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "sklearn": sklearn.__version__,
        "lightning": lightning_version,
        "threads": threads,
        "gpu": torch.cuda.get_device_name() if any(d.type == "cuda" for d in devices) else None,
    }


def table(results: list[dict], about: dict) -> str:
    load = ", ".join(f"{x:.1f}" for x in about["load_average"])
    lightning = f", lightning {about['lightning']}" if about["lightning"] else ", no lightning"
    gpu = f"; {about['gpu']}" if about["gpu"] else ""
    lines = [
        f"{about['host']}: {about['cpu']}, {about['cores']} cores, load {load}{gpu}; torch "
        f"{about['torch']}, scikit-learn {about['sklearn']}{lightning}; "
        f"{about['threads']} thread(s)",
        "",
        f"{'case':<16} {'contender':<29} {'median s/epoch':>15} {'min s/epoch':>12} "
        f"{'steps/s':>9} {'× bar':>7}",
    ]
    for result in results:
        memory = (
            f"; peak {result['cuda_peak_mib']:.0f} MiB on the GPU"
            if "cuda_peak_mib" in result
            else ""
        )
        lines.append(f"{result['case']:<16} on {result['device']}: {result['description']}{memory}")
        for name, t in result["contenders"].items():
            mark = " (bar)" if name == result["bar"] else ""
            lines.append(
                f"{'':<16} {name:<29} {t['median']:>15.5f} {t['min']:>12.5f} "
                f"{t['steps_per_second']:>9.0f} {t['ratio']:>7.2f}{mark}"
            )
    lines.append("× bar: median / the bar's median (below 1: faster than the bar)")
    return "\n".join(lines)


def targets(results: list[dict], startup: dict | None, time_to_target: list[dict]) -> list[str]:
    """The speed targets of the README (on the CPU), each met or missed, from this run's
    figures, and the same ratios on the GPU."""
    lines = []
    for result in results:
        times = {name: t["median"] for name, t in result["contenders"].items()}
        ours = times["dlbasics"]
        case = f"{result['case']} on {result['device']}"
        if HAND_LOOP in times:
            ratio = ours / times[HAND_LOOP]
            fastest = (
                result["contenders"]["dlbasics"]["min"] / result["contenders"][HAND_LOOP]["min"]
            )
            target = "; target <= 1.05" if result["device"] == "cpu" else ""
            lines.append(
                f"{case}: dlbasics / hand loop {ratio:.2f} (of the minima {fastest:.2f}{target})"
            )
        for name in ("sklearn MLPClassifier", "lightning"):
            if name in times:
                lines.append(f"{case}: {name} / dlbasics {times[name] / ours:.2f}")
    for reached in time_to_target:
        goal = f"cnn_digits on {reached['device']}: val_acc >= {reached['target_val_acc']}"
        if reached["seconds"] is None:
            lines.append(f"{goal} not reached by every fit: {reached['fits']}")
        else:
            lines.append(
                f"{goal} after {reached['epochs']:.0f} epochs, {reached['seconds']:.2f} s "
                f"(median of {len(reached['fits'])} fits, from building the model)"
            )
    if startup:
        lines.append(
            f"start-up: train.py trainer.epochs=1 takes {startup['over_hand_script']:.2f} s "
            f"more than a hand-written script that trains the same epoch (target <= 0.5), "
            f"{startup['over_import_torch']:.2f} s more than import torch"
        )
    return lines


def main() -> None:
    names = [case.name for case in CASES]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="*", help=f"any of {', '.join(names)} (default: all)")
    parser.add_argument(
        "--rounds",
        type=int,
        help="timed rounds per contender (default: each case's own, 5 to 25)",
    )
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto (default): the CPU, then CUDA when there is one",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    parser.add_argument("--startup-runs", type=int, default=5, help="runs per start-up command")
    parser.add_argument("--no-startup", action="store_true", help="skip start-up and memory")
    parser.add_argument(
        "--answers-only",
        action="store_true",
        help="only time --help and a config mistake (seconds; no training)",
    )
    parser.add_argument("--json", type=Path, default=ROOT / "outputs" / "bench.json")
    args = parser.parse_args()
    unknown = set(args.cases) - set(names)
    if unknown:
        parser.error(
            f"unknown case(s) {', '.join(sorted(unknown))}; choose from {', '.join(names)}"
        )

    if args.answers_only:
        answered = answers(args.startup_runs)
        print(answers_line(answered))
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"answers": answered}, indent=2) + "\n")
        return

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here (torch.cuda.is_available())")
    devices = [torch.device("cpu")] if args.device != "cuda" else []
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        devices.append(torch.device("cuda"))

    warnings.filterwarnings("ignore", module="lightning")  # advice on DataLoader workers etc.
    torch.set_num_threads(args.threads)
    results, time_to_target = [], []
    with threadpool_limits(args.threads):  # numpy's BLAS: the same threads as torch
        for device in devices:
            if device.type == "cuda":
                # As train.py does for a CNN (and a hand loop may too): cuDNN times its
                # algorithms once per shape.
                torch.backends.cudnn.benchmark = True
            for case in CASES:
                if case.name not in (args.cases or names) or (
                    device.type == "cuda" and not case.on_gpu
                ):
                    continue
                print(f"{case.name} on {device} …", file=sys.stderr, flush=True)
                results.append(run_case(case, args.rounds or case.rounds, device))
            if "cnn_digits" in (args.cases or names):
                time_to_target.append(time_to_accuracy(device, target=0.98, fits=3))
    about = machine(args.threads, devices)
    print(table(results, about))
    startup = None if args.no_startup else startup_and_memory(args.startup_runs)
    if startup:
        seconds = startup["seconds"]
        print()
        print(
            f"start-up (median of {startup['runs']}): import torch {seconds['import torch']:.2f} s"
            f", a hand-written one-epoch script "
            f"{seconds['hand-written script, one epoch']:.2f} s"
            f", train.py trainer.epochs=1 {seconds['train.py trainer.epochs=1']:.2f} s"
        )
        if startup["make_train_peak_rss_mib"] is not None:
            print(
                f"peak RSS: make train {startup['make_train_peak_rss_mib']:.0f} MiB, "
                f"import torch {startup['import_torch_peak_rss_mib']:.0f} MiB"
            )
    answered = None if args.no_startup else answers(args.startup_runs)
    bench_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this benchmark process: {bench_rss:.0f} MiB")
    print()
    print("\n".join(targets(results, startup, time_to_target)))
    if answered:
        print(answers_line(answered))
    report = {
        "machine": about,
        "results": results,
        "time_to_accuracy": time_to_target,
        "startup": startup,
        "answers": answered,
        "bench_peak_rss_mib": bench_rss,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {args.json}")


if __name__ == "__main__":
    main()
