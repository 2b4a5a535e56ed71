"""The config schema: every key a user can set, its type, its default and its allowed range.

Hydra composes YAML files from ``configs/``; each group is checked against a dataclass below
(registered in Hydra's ConfigStore), so a misspelt key or a value of the wrong type fails while
composing. ``validate`` then turns the composed config into these dataclasses, which checks
ranges (``__post_init__``) and refuses keys the schema does not know — all before training.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import II, MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from dlbasics.errors import ConfigError
from dlbasics.import_guard import INSTANTIATE_KEYS, code_key_message


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed}.")


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    _check(value in choices, key, value, "choose one of " + ", ".join(choices))


def _check_sizes(key: str, sizes: list[int], at_least_one: bool = False) -> None:
    """Layer sizes (or channel counts): each >= 1, and with ``at_least_one`` not empty."""
    ok = all(size >= 1 for size in sizes) and (len(sizes) >= 1 or not at_least_one)
    allowed = "one or more sizes, each >= 1" if at_least_one else "every size must be >= 1"
    _check(ok, key, list(sizes), allowed)


# --- model (one schema per choice; `model=NAME` picks configs/model/NAME.yaml) ---------------

OUTPUT_ACTS = ("auto", "identity", "sigmoid", "softmax", "step")


@dataclass
class ModelConfig:
    name: str = MISSING
    # Output layer activation; "auto" follows the task: identity (regression),
    # sigmoid (binary), softmax (multi-class). The perceptron's is always step.
    output_act: str = "auto"

    def __post_init__(self) -> None:
        _check_choice("model.output_act", self.output_act, OUTPUT_ACTS)


@dataclass
class PerceptronConfig(ModelConfig):
    name: str = "perceptron"


@dataclass
class MLPConfig(ModelConfig):
    name: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [128, 64])

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_sizes("model.hidden", self.hidden)


NORMS = ("none", "batch", "layer")
INITS = ("default", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "normal", "zeros")


@dataclass
class DNNConfig(ModelConfig):
    name: str = "dnn"
    depth: int = 3  # hidden layers, each `width` units wide ...
    width: int = 256
    hidden: list[int] = field(default_factory=list)  # ... unless listed here explicitly
    norm: str = "batch"  # after each hidden linear layer: none | batch | layer
    init: str = "he_normal"  # weight initialisation; "default" keeps PyTorch's

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.depth >= 1, "model.depth", self.depth, "at least 1 hidden layer")
        _check(self.width >= 1, "model.width", self.width, "must be >= 1")
        _check_sizes("model.hidden", self.hidden)
        _check_choice("model.norm", self.norm, NORMS)
        _check_choice("model.init", self.init, INITS)

    @property
    def layer_sizes(self) -> list[int]:
        return list(self.hidden) if self.hidden else [self.width] * self.depth


POOLS = ("max", "avg")


@dataclass
class CNNConfig(ModelConfig):
    name: str = "cnn"
    channels: list[int] = field(default_factory=lambda: [32, 64])  # one conv block per entry
    kernel_size: int = 3  # square kernels, "same" padding: only pooling shrinks the image
    pool: str = "max"  # max | avg
    pool_size: int = 2  # each block divides height and width by this
    batch_norm: bool = True  # after each convolution
    dense: list[int] = field(default_factory=lambda: [128])  # hidden dense layers after the blocks

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_sizes("model.channels", self.channels, at_least_one=True)
        _check(self.kernel_size >= 1, "model.kernel_size", self.kernel_size, "must be >= 1")
        _check_choice("model.pool", self.pool, POOLS)
        _check(self.pool_size >= 1, "model.pool_size", self.pool_size, "must be >= 1")
        _check_sizes("model.dense", self.dense)


CELLS = ("rnn", "lstm", "gru")


@dataclass
class RNNConfig(ModelConfig):
    name: str = "rnn"
    cell: str = "lstm"  # rnn (Elman, tanh) | lstm | gru
    hidden_size: int = 64
    num_layers: int = 1  # stacked recurrent layers
    bidirectional: bool = False  # also read each sequence from its end

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_choice("model.cell", self.cell, CELLS)
        _check(self.hidden_size >= 1, "model.hidden_size", self.hidden_size, "must be >= 1")
        _check(self.num_layers >= 1, "model.num_layers", self.num_layers, "must be >= 1")


VISIBLE_UNITS = ("bernoulli", "gaussian")


@dataclass
class RBMConfig(ModelConfig):
    """A restricted Boltzmann machine trained by contrastive divergence (models/rbm.py)."""

    name: str = "rbm"
    n_hidden: int = 100
    k: int = 1  # Gibbs steps per update (CD-k)
    pcd: bool = False  # persistent CD: the negative chains carry on across batches
    # bernoulli: inputs in [0, 1] (data.unit_range=true); gaussian: real-valued inputs of unit
    # variance (data.standardize=true)
    visible: str = "bernoulli"
    init_std: float = 0.01  # initial weights ~ Normal(0, init_std) (Hinton's practical guide)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.n_hidden >= 1, "model.n_hidden", self.n_hidden, "must be >= 1")
        _check(self.k >= 1, "model.k", self.k, "at least one Gibbs step")
        _check_choice("model.visible", self.visible, VISIBLE_UNITS)
        _check(self.init_std > 0, "model.init_std", self.init_std, "must be > 0")


@dataclass
class DBNConfig(ModelConfig):
    """A deep belief network: RBMs pre-trained greedily, then fine-tuned as a classifier."""

    name: str = "dbn"
    layers: list[int] = field(default_factory=lambda: [256, 128])
    pretrain: bool = True  # false: the same network from random initialisation
    pretrain_epochs: int = 30  # CD epochs for each layer's RBM
    k: int = 1
    pcd: bool = False
    # Pre-training takes SGD with momentum on the CD estimate; `optim` is for fine-tuning.
    pretrain_lr: float = 0.1
    pretrain_momentum: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_sizes("model.layers", self.layers, at_least_one=True)
        _check(self.pretrain_epochs >= 1, "model.pretrain_epochs", self.pretrain_epochs, ">= 1")
        _check(self.k >= 1, "model.k", self.k, "at least one Gibbs step")
        _check(self.pretrain_lr > 0, "model.pretrain_lr", self.pretrain_lr, "must be > 0")
        _check(
            0 <= self.pretrain_momentum < 1,
            "model.pretrain_momentum",
            self.pretrain_momentum,
            "must be in [0, 1)",
        )


# --- data (one schema per kind of source) ----------------------------------------------------


def _check_labels_per_class(value: int | None) -> None:
    _check(
        value is None or value >= 1,
        "data.labels_per_class",
        value,
        "an integer >= 1, or null to keep every label",
    )


@dataclass
class DataConfig:
    name: str = MISSING
    seed: int = II("seed")  # generation and split seed; follows the top-level `seed`


@dataclass
class SplitDataConfig(DataConfig):
    # Held-out fractions of the whole set (or counts, when >= 1); the split is stratified.
    val_size: float = 0.2
    test_size: float = 0.2
    standardize: bool = True  # zero mean, unit variance, fitted on the training split only
    # Scale every feature to [0, 1] by the training split's min and max instead (the inputs of
    # model=rbm and model=dbn are probabilities); held-out values are clipped into [0, 1].
    unit_range: bool = False
    # Keep the labels of only this many training samples per class (classification); the
    # other training inputs stay, unlabelled, for unsupervised pre-training. null = all.
    labels_per_class: int | None = None
    # Train on only this fraction of the whole set (or count, when >= 1) of what the held-out
    # splits leave; null = all of it. Few samples and a large model: overfitting to see.
    train_size: float | None = None

    def __post_init__(self) -> None:
        for key in ("val_size", "test_size"):
            value = getattr(self, key)
            _check(value > 0, f"data.{key}", value, "a fraction in (0, 1) or a count >= 1")
        _check(
            self.train_size is None or self.train_size > 0,
            "data.train_size",
            self.train_size,
            "null (all), a fraction in (0, 1) or a count >= 1",
        )
        if self.val_size < 1 and self.test_size < 1:
            _check(
                self.val_size + self.test_size < 1,
                "data.val_size + data.test_size",
                self.val_size + self.test_size,
                "the two fractions must leave data to train on (sum < 1)",
            )
        _check_labels_per_class(self.labels_per_class)


@dataclass
class GateDataConfig(DataConfig):
    """A logic gate's truth table: four points, used as training, validation and test set."""

    name: str = "and"


@dataclass
class GeneratedDataConfig(SplitDataConfig):
    n_samples: int = 500
    noise: float = 0.2  # std of the Gaussian noise added to each point

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.n_samples >= 10, "data.n_samples", self.n_samples, "at least 10")
        _check(self.noise >= 0, "data.noise", self.noise, "must be >= 0")


@dataclass
class CirclesDataConfig(GeneratedDataConfig):
    factor: float = 0.5  # radius of the inner circle relative to the outer one

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(0 < self.factor < 1, "data.factor", self.factor, "must be in (0, 1)")


@dataclass
class SpiralsDataConfig(GeneratedDataConfig):
    noise: float = 0.1
    turns: float = 1.5  # how many times each arm winds around the centre

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.turns > 0, "data.turns", self.turns, "must be > 0")


@dataclass
class OystersDataConfig(GeneratedDataConfig):
    n_samples: int = 600
    mean_cm: float = 7.5  # oyster diameters ~ Normal(mean_cm, std_cm)
    std_cm: float = 1.5
    ripe_above_cm: float = 7.2  # where P(ripe) = 0.5 in the generating process
    noise: float = 0.3  # logistic scale (cm) of label noise around that size
    rule_cm: float = 7.5  # the hand-written rule `ripe if size > rule_cm`, scored for comparison


@dataclass
class BundledDataConfig(SplitDataConfig):
    """One of scikit-learn's bundled data sets (no download)."""

    name: str = "digits"


CSV_TASKS = ("auto", "classification", "regression")


@dataclass
class CsvDataConfig(SplitDataConfig):
    """The user's own table: a CSV file with a header row, one column of which is the target."""

    name: str = "csv"
    path: str = MISSING  # the CSV file; relative paths start in the current directory
    target: str = MISSING  # name of the column to predict; every other column is a feature
    # auto: classification when the target holds text or at most 20 distinct integers,
    # regression otherwise.
    task: str = "auto"
    delimiter: str = ","

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_choice("data.task", self.task, CSV_TASKS)
        _check(len(self.delimiter) == 1, "data.delimiter", self.delimiter, "one character")


@dataclass
class IdxDataConfig(DataConfig):
    """MNIST-format files on disk: the training file is split into training and validation
    sets; the t10k files are the test set."""

    name: str = "idx"
    root: str | None = None  # directory holding the four *-ubyte files (gzipped or not)
    val_size: float = 0.1  # fraction (or count) of the training file held out, stratified
    standardize: bool = True
    unit_range: bool = False  # as in SplitDataConfig
    labels_per_class: int | None = None  # as in SplitDataConfig
    limit: int | None = None  # use only the first N training images; null = all

    def __post_init__(self) -> None:
        _check(
            self.root is not None and self.root != "",
            "data.root",
            self.root,
            "data=idx needs the directory holding train-images-idx3-ubyte, "
            "train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte "
            "(each may end in .gz), e.g. data.root=~/data/mnist",
        )
        _check(self.val_size > 0, "data.val_size", self.val_size, "a fraction in (0, 1) or a count")
        _check(
            self.limit is None or self.limit >= 2, "data.limit", self.limit, "null or at least 2"
        )
        _check_labels_per_class(self.labels_per_class)


@dataclass
class SineDataConfig(GeneratedDataConfig):
    """Windows of noisy sine waves; the target is the noise-free value that follows."""

    name: str = "sine"
    n_samples: int = 2000
    noise: float = 0.1
    length: int = 20  # time steps per window
    many_to_many: bool = False  # a target after every step, not only after the last
    standardize: bool = False  # the waves are already on a unit scale

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.length >= 1, "data.length", self.length, "must be >= 1")


@dataclass
class AddingDataConfig(SplitDataConfig):
    """The adding problem: sum the two marked numbers of a long sequence."""

    name: str = "adding"
    n_samples: int = 10000
    length: int = 50  # time steps per sequence
    standardize: bool = False  # keeps the loss in the task's units (predicting the mean: 1/6)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.n_samples >= 10, "data.n_samples", self.n_samples, "at least 10")
        _check(self.length >= 2, "data.length", self.length, "at least 2 (one mark per half)")


# --- the groups with one schema each ---------------------------------------------------------

ACTIVATIONS = ("step", "sigmoid", "tanh", "relu", "leaky_relu", "gelu", "identity")


@dataclass
class ActConfig:
    name: str = "relu"  # hidden-layer activation
    negative_slope: float = 0.01  # leaky_relu: slope for x < 0

    def __post_init__(self) -> None:
        _check_choice("act.name", self.name, ACTIVATIONS)
        _check(self.negative_slope >= 0, "act.negative_slope", self.negative_slope, "must be >= 0")


LOSSES = ("auto", "mse", "cross_entropy", "bce")


@dataclass
class LossConfig:
    name: str = "auto"  # auto: cross_entropy (multi-class), bce (binary), mse (regression)

    def __post_init__(self) -> None:
        _check_choice("loss.name", self.name, LOSSES)


OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
SCHEDULES = ("none", "step", "cosine", "plateau")


@dataclass
class OptimConfig:
    name: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9  # momentum, nesterov, rmsprop (0 turns it off for rmsprop)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adam, adamw
    eps: float = 1e-8  # adagrad, rmsprop, adam, adamw
    alpha: float = 0.99  # rmsprop: smoothing constant of the squared-gradient average
    weight_decay: float = 0.0  # decoupled for adamw, added to the gradient for the others
    # Learning-rate schedule, stepped once per epoch.
    schedule: str = "none"  # none | step | cosine | plateau
    step_size: int = 30  # step: epochs between decays
    gamma: float = 0.1  # step: lr multiplier at each decay
    min_lr: float = 0.0  # cosine: lr reached at the last epoch; plateau: lower bound
    plateau_factor: float = 0.5  # plateau: lr multiplier when the monitored metric stalls
    plateau_patience: int = 5  # plateau: epochs without improvement before lowering lr

    def __post_init__(self) -> None:
        _check_choice("optim.name", self.name, OPTIMIZERS)
        _check(self.lr > 0, "optim.lr", self.lr, "the learning rate must be > 0")
        _check(0 <= self.momentum < 1, "optim.momentum", self.momentum, "must be in [0, 1)")
        _check(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "optim.betas",
            list(self.betas),
            "two numbers in [0, 1)",
        )
        _check(self.eps > 0, "optim.eps", self.eps, "must be > 0")
        _check(0 <= self.alpha < 1, "optim.alpha", self.alpha, "must be in [0, 1)")
        _check(self.weight_decay >= 0, "optim.weight_decay", self.weight_decay, "must be >= 0")
        _check_choice("optim.schedule", self.schedule, SCHEDULES)
        _check(self.step_size >= 1, "optim.step_size", self.step_size, "must be >= 1")
        _check(0 < self.gamma <= 1, "optim.gamma", self.gamma, "must be in (0, 1]")
        _check(self.min_lr >= 0, "optim.min_lr", self.min_lr, "must be >= 0")
        _check(
            0 < self.plateau_factor < 1, "optim.plateau_factor", self.plateau_factor, "in (0, 1)"
        )
        _check(self.plateau_patience >= 0, "optim.plateau_patience", self.plateau_patience, ">= 0")


@dataclass
class RegConfig:
    l1: float = 0.0  # coefficient of sum(|w|) over weight matrices, added to the loss
    l2: float = 0.0  # coefficient of sum(w**2) over weight matrices, added to the loss
    dropout: float = 0.0  # probability of dropping each hidden unit while training

    def __post_init__(self) -> None:
        _check(self.l1 >= 0, "reg.l1", self.l1, "must be >= 0")
        _check(self.l2 >= 0, "reg.l2", self.l2, "must be >= 0")
        _check(0 <= self.dropout < 1, "reg.dropout", self.dropout, "a probability in [0, 1)")


TRAINER_MODES = ("batch", "sgd", "minibatch")
ON_NAN = ("stop", "skip")
PRECISIONS = ("32", "bf16", "16-mixed")
# Loss and accuracy, then what models report besides (Model.epoch_metric_names): an RBM's
# pseudo-log-likelihood and free energy, and the free-energy gap between val and train.
MONITORS = (
    *("val_loss", "val_acc", "train_loss", "train_acc"),
    *("val_pll", "train_pll", "val_free_energy", "train_free_energy", "gap_free_energy"),
)


@dataclass
class EarlyStoppingConfig:
    enabled: bool = True
    monitor: str = "val_loss"  # also what picks the best checkpoint
    mode: str = "auto"  # min | max | auto (max for accuracies and likelihoods, else min)
    patience: int = 10  # epochs without improvement before stopping
    min_delta: float = 0.0  # smallest change that counts as an improvement
    restore_best: bool = True  # end with the best epoch's weights

    def __post_init__(self) -> None:
        _check_choice("trainer.early_stopping.monitor", self.monitor, MONITORS)
        _check_choice("trainer.early_stopping.mode", self.mode, ("auto", "min", "max"))
        _check(self.patience >= 1, "trainer.early_stopping.patience", self.patience, ">= 1")
        _check(self.min_delta >= 0, "trainer.early_stopping.min_delta", self.min_delta, ">= 0")

    @property
    def resolved_mode(self) -> str:
        if self.mode != "auto":
            return self.mode
        return "max" if self.monitor.endswith(("_acc", "_pll")) else "min"


@dataclass
class TrainerConfig:
    mode: str = "minibatch"  # set by `trainer=batch|sgd|minibatch`
    batch_size: int | None = 64  # null (batch mode) = the whole training set
    epochs: int = 100
    device: str = "auto"  # auto | cpu | cuda (auto takes CUDA when present)
    seed: int = II("seed")  # weight initialisation and shuffling; follows the top-level `seed`
    deterministic: bool = False  # torch.use_deterministic_algorithms
    threads: Any = "auto"  # CPU threads: an integer, or auto (1 for small models)
    grad_clip: float | None = None  # clip gradients before each step; null = off
    grad_clip_mode: str = "norm"  # norm: rescale the total norm; value: clamp each entry
    checkpoint_every: int = 10  # write last.pt/best.pt every N epochs (and always at the end)
    # A non-finite training loss: stop (stop_reason diverged) or skip that step (checks every
    # step, which costs a host sync per step).
    on_nan: str = "stop"
    resume: str | None = None  # a run directory or last.pt to continue; null = start afresh
    # Under torchrun: seconds a rank waits for the others before the job fails.
    distributed_timeout: float = 120.0
    # Arithmetic of the forward passes: 32 (float32), bf16 (autocast to bfloat16; CPU or a
    # recent GPU) or 16-mixed (autocast to float16 with a gradient scaler; CUDA only). The
    # weights and the optimizer stay in float32.
    precision: str = "32"
    compile: bool = False  # torch.compile the model's forward pass (slow to start, then faster)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)

    def __post_init__(self) -> None:
        _check_choice("trainer.mode", self.mode, TRAINER_MODES)
        if self.mode == "batch":
            _check(
                self.batch_size is None,
                "trainer.batch_size",
                self.batch_size,
                "trainer=batch takes one step per epoch over the whole training set; for a "
                "fixed batch size use trainer=minibatch trainer.batch_size=N",
            )
        elif self.mode == "sgd":
            _check(
                self.batch_size == 1,
                "trainer.batch_size",
                self.batch_size,
                "trainer=sgd updates after every single sample (batch size 1); for larger "
                "batches use trainer=minibatch trainer.batch_size=N",
            )
        else:
            _check(
                self.batch_size is not None and self.batch_size >= 1,
                "trainer.batch_size",
                self.batch_size,
                "an integer >= 1 (or trainer=batch for the whole training set)",
            )
        _check(self.epochs >= 1, "trainer.epochs", self.epochs, "must be >= 1")
        _check_choice("trainer.device", self.device, ("auto", "cpu", "cuda"))
        threads_ok = self.threads == "auto" or (isinstance(self.threads, int) and self.threads > 0)
        _check(threads_ok, "trainer.threads", self.threads, "a positive integer or auto")
        _check(
            self.grad_clip is None or self.grad_clip > 0,
            "trainer.grad_clip",
            self.grad_clip,
            "a positive number, or null for no clipping",
        )
        _check_choice("trainer.grad_clip_mode", self.grad_clip_mode, ("norm", "value"))
        _check(
            self.checkpoint_every >= 1, "trainer.checkpoint_every", self.checkpoint_every, ">= 1"
        )
        _check_choice("trainer.on_nan", self.on_nan, ON_NAN)
        _check_choice("trainer.precision", self.precision, PRECISIONS)
        _check(
            self.distributed_timeout > 0,
            "trainer.distributed_timeout",
            self.distributed_timeout,
            "a number of seconds > 0",
        )


@dataclass
class LoggerConfig:
    name: str = "tensorboard"  # tensorboard | none

    def __post_init__(self) -> None:
        _check_choice("logger.name", self.name, ("tensorboard", "none"))


@dataclass
class DiagConfig:
    """Diagnostics (dlbasics/diagnostics.py, boundary.py): all off by default, and then free."""

    grad_norms: bool = False  # grad_norm/<layer>, grad_norm/total: mean over an epoch's steps
    weight_norms: bool = False  # diag/weight_norm/<layer> at the end of each epoch
    # diag/act_mean, act_std, saturated (sigmoid, tanh), dead (relu, leaky_relu) per layer
    activations: bool = False
    histograms_every: int = 0  # diag/weights/<layer>, diag/grads/<layer> every N epochs; 0: never
    decision_boundary: bool = False  # 2-D inputs: an image in TensorBoard and a PNG, at the end

    def __post_init__(self) -> None:
        _check(
            self.histograms_every >= 0,
            "diag.histograms_every",
            self.histograms_every,
            "a number of epochs >= 1, or 0 for no histograms",
        )

    @property
    def per_epoch(self) -> bool:
        """Whether anything is measured while training (the decision boundary is drawn after)."""
        return self.grad_norms or self.weight_norms or self.activations or self.histograms_every > 0


@dataclass
class Config:
    model: Any = MISSING
    data: Any = MISSING
    act: ActConfig = field(default_factory=ActConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    reg: RegConfig = field(default_factory=RegConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    diag: DiagConfig = field(default_factory=DiagConfig)
    seed: int = 0


# Schemas for the groups whose choices differ in shape; YAML files name them in their
# defaults list (e.g. `- /schema/model/mlp@_here_`). Kept out of the `model` group itself
# so `model=<wrong>` lists only real choices.
MODEL_SCHEMAS = {
    "perceptron": PerceptronConfig,
    "mlp": MLPConfig,
    "dnn": DNNConfig,
    "cnn": CNNConfig,
    "rnn": RNNConfig,
    "rbm": RBMConfig,
    "dbn": DBNConfig,
}
DATA_SCHEMAS = {
    "gate": GateDataConfig,
    "generated": GeneratedDataConfig,
    "circles": CirclesDataConfig,
    "spirals": SpiralsDataConfig,
    "oysters": OystersDataConfig,
    "bundled": BundledDataConfig,
    "csv": CsvDataConfig,
    "idx": IdxDataConfig,
    "sine": SineDataConfig,
    "adding": AddingDataConfig,
}


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore (idempotent)."""
    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    for name, node in MODEL_SCHEMAS.items():
        store.store(group="schema/model", name=name, node=node)
    for name, node in DATA_SCHEMAS.items():
        store.store(group="schema/data", name=name, node=node)


def validate(cfg: DictConfig) -> Config:
    """Check a composed config and return it as typed dataclasses, or raise ConfigError."""
    _refuse_unknown_keys(cfg, "")
    try:
        config = OmegaConf.to_object(cfg)
    except MissingMandatoryValue as error:
        raise ConfigError(
            f"{error.full_key} is required and has no value; set it, e.g. {error.full_key}=…"
        ) from None
    except OmegaConfBaseException as error:
        raise ConfigError(_first_line_with_key(error)) from None
    if not isinstance(config, Config):
        raise ConfigError("the config does not follow dlbasics' schema (configs/config.yaml).")
    return config


def _refuse_unknown_keys(node: Any, path: str) -> None:
    """Hydra's `+key=value` and a user's own YAML can add keys the schema lacks; refuse them,
    and `_target_` above all: configs choose components by name, never by import path."""
    if isinstance(node, ListConfig):
        for index, item in enumerate(node):
            _refuse_unknown_keys(item, f"{path}[{index}]")
        return
    if not isinstance(node, DictConfig):
        return
    schema = OmegaConf.get_type(node)
    known = {f.name for f in fields(schema)} if is_dataclass(schema) else None
    for key in node.keys():
        full_key = f"{path}.{key}" if path else str(key)
        if key in INSTANTIATE_KEYS:
            raise ConfigError(code_key_message(full_key))
        if known is not None and key not in known:
            raise ConfigError(unknown_key_message(full_key, known))
        _refuse_unknown_keys(node._get_node(key), full_key)


def unknown_key_message(full_key: str, known: Iterable[str]) -> str:
    """One line for a key its group's schema lacks; for a top-level key that a group has
    (``device=cuda``), where it belongs (``trainer.device``)."""
    group, _, name = full_key.rpartition(".")
    message = (
        f"{full_key} is not a known key; {group or 'the top level'} accepts: "
        f"{', '.join(sorted(known))}."
    )
    homes = [] if group else _homes_of(name)
    if homes:
        message += f" Did you mean {' or '.join(homes)}?"
    return message


def _homes_of(name: str) -> list[str]:
    """The group keys called ``name``: trainer.device for device, model.hidden for hidden."""
    schemas: list[tuple[str, type]] = [
        (f.name, f.default_factory) for f in fields(Config) if is_dataclass(f.default_factory)
    ]
    schemas += [("model", schema) for schema in MODEL_SCHEMAS.values()]
    schemas += [("data", schema) for schema in DATA_SCHEMAS.values()]
    homes: list[str] = []
    while schemas:
        path, schema = schemas.pop(0)
        for f in fields(schema):
            if is_dataclass(f.default_factory):  # trainer.early_stopping.…
                schemas.append((f"{path}.{f.name}", f.default_factory))
            elif f.name == name and f"{path}.{name}" not in homes:
                homes.append(f"{path}.{name}")
    return homes


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict as ``group.key`` → value pairs (lists and other values kept as they are)."""
    if not isinstance(node, dict):
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _first_line_with_key(error: OmegaConfBaseException) -> str:
    message = str(error).splitlines()[0]
    key = getattr(error, "full_key", None)
    return f"{key}: {message}" if key and key not in message else message
