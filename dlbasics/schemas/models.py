"""The schemas of dlbasics/models/: the keys of each `model=NAME`, and the model registry."""

from dataclasses import dataclass, field
from typing import ClassVar

from omegaconf import MISSING

from dlbasics.registry import Registry
from dlbasics.schema import check, check_choice, check_sizes
from dlbasics.schemas.activations import OUTPUT_ACTIVATIONS

# The groups a model may read besides its own keys; each model's schema says which it does
# (ModelConfig.groups), and a user who sets one the chosen model ignores is told so.
OPTIONAL_GROUPS = ("act", "reg")

# The names some keys take; the modules that build the models map each to its torch class.
NORMS = ("batch", "layer")  # model.norm besides none (mlp.py: NORM_LAYERS)
INITS = (  # model.init besides default (dnn.py: INITIALIZERS)
    "xavier_uniform",
    "xavier_normal",
    "he_uniform",
    "he_normal",
    "normal",
    "zeros",
)
POOLS = ("max", "avg")  # model.pool (cnn.py: POOL_LAYERS)
CELLS = ("rnn", "lstm", "gru")  # model.cell, and the `cell` group's choices (rnn.py: CELLS)
POSITIONS = ("sinusoidal", "learned")  # model.positions (attention.py: PositionalEncoding)
ARCHS = ("transformer", "recurrent")  # model.arch of seq2seq
ATTENTIONS = ("none", "dot", "additive")  # model.attention of a recurrent seq2seq
# model.visible of rbm: bernoulli for inputs in [0, 1] (data.unit_range=true, what a null
# unit_range becomes), gaussian for real-valued inputs of unit variance (data.standardize=true).
VISIBLE_UNITS = ("bernoulli", "gaussian")


@dataclass
class ModelConfig:
    """The keys every model takes (`model=NAME` adds its own)."""

    # What else the model reads: "act" (its hidden layers' activation), "reg" (L1/L2 penalties,
    # dropout). A group the model does not read is left out of its config.
    groups: ClassVar[tuple[str, ...]] = OPTIONAL_GROUPS

    name: str = MISSING
    # Output layer activation; "auto" follows the task: identity (regression),
    # sigmoid (binary), softmax (multi-class). The perceptron's is always step.
    output_act: str = "auto"

    def __post_init__(self) -> None:
        check_choice("model.output_act", self.output_act, ["auto", *OUTPUT_ACTIVATIONS.names()])

    def needs_unit_range(self) -> bool:
        """Whether the model's inputs must lie in [0, 1] (they are probabilities): what a
        ``data.unit_range`` left null becomes (``config.validate``)."""
        return False


@dataclass
class PerceptronConfig(ModelConfig):
    """Rosenblatt's perceptron: y = step(w·x + b), trained by its own rule, not gradients."""

    groups: ClassVar[tuple[str, ...]] = ()  # no hidden layers, and a rule that is not backprop

    name: str = "perceptron"
    output_act: str = "step"  # always the step function (build_perceptron refuses others)


@dataclass
class MLPConfig(ModelConfig):
    """The multi-layer perceptron: linear → activation → … → linear."""

    name: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [128, 64])

    def __post_init__(self) -> None:
        super().__post_init__()
        check_sizes("model.hidden", self.hidden)


@dataclass
class DNNConfig(ModelConfig):
    """A deep fully connected network: many hidden layers, normalised, initialised to scale."""

    name: str = "dnn"
    depth: int = 3  # hidden layers, each `width` units wide ...
    width: int = 256
    hidden: list[int] = field(default_factory=list)  # ... unless listed here explicitly
    norm: str = "batch"  # after each hidden linear layer: none | batch | layer
    init: str = "he_normal"  # weight initialisation; "default" keeps PyTorch's

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.depth >= 1, "model.depth", self.depth, "at least 1 hidden layer")
        check(self.width >= 1, "model.width", self.width, "must be >= 1")
        check_sizes("model.hidden", self.hidden)
        check_choice("model.norm", self.norm, ["none", *NORMS])
        check_choice("model.init", self.init, ["default", *INITS])

    @property
    def layer_sizes(self) -> list[int]:
        return list(self.hidden) if self.hidden else [self.width] * self.depth


@dataclass
class CNNConfig(ModelConfig):
    """A convolutional network: conv → norm → activation → pooling blocks, then dense layers."""

    name: str = "cnn"
    channels: list[int] = field(default_factory=lambda: [32, 64])  # one conv block per entry
    kernel_size: int = 3  # square kernels, "same" padding: only pooling shrinks the image
    pool: str = "max"  # max | avg
    pool_size: int = 2  # each block divides height and width by this
    batch_norm: bool = True  # after each convolution
    dense: list[int] = field(default_factory=lambda: [128])  # hidden dense layers after the blocks

    def __post_init__(self) -> None:
        super().__post_init__()
        check_sizes("model.channels", self.channels, at_least_one=True)
        check(self.kernel_size >= 1, "model.kernel_size", self.kernel_size, "must be >= 1")
        check_choice("model.pool", self.pool, POOLS)
        check(self.pool_size >= 1, "model.pool_size", self.pool_size, "must be >= 1")
        check_sizes("model.dense", self.dense)


@dataclass
class RNNConfig(ModelConfig):
    """A recurrent network over (time, features) sequences, then a linear output layer."""

    groups: ClassVar[tuple[str, ...]] = ("reg",)  # the cells have their own tanh and sigmoids

    name: str = "rnn"
    cell: str = "lstm"  # rnn (Elman, tanh) | lstm | gru
    hidden_size: int = 64
    num_layers: int = 1  # stacked recurrent layers
    bidirectional: bool = False  # also read each sequence from its end

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("model.cell", self.cell, CELLS)
        check(self.hidden_size >= 1, "model.hidden_size", self.hidden_size, "must be >= 1")
        check(self.num_layers >= 1, "model.num_layers", self.num_layers, "must be >= 1")


def check_attention_sizes(d_model: int, heads: int, layers: int, ff: int) -> None:
    check(d_model >= 1, "model.d_model", d_model, "must be >= 1")
    check(heads >= 1, "model.heads", heads, "must be >= 1")
    check(
        d_model % heads == 0,
        "model.heads",
        heads,
        f"must divide model.d_model={d_model} (each head takes d_model / heads numbers)",
    )
    check(layers >= 1, "model.layers", layers, "must be >= 1")
    check(ff >= 1, "model.ff", ff, "must be >= 1")


@dataclass
class TransformerConfig(ModelConfig):
    """A Transformer encoder over (time, features) sequences: attention, not recurrence."""

    groups: ClassVar[tuple[str, ...]] = ("reg",)  # its activation is the feed-forward's ReLU

    name: str = "transformer"
    d_model: int = 64  # numbers per step inside the model
    heads: int = 4  # attention heads per layer; must divide d_model
    layers: int = 2  # encoder layers
    ff: int = 128  # units of each layer's feed-forward part
    positions: str = "sinusoidal"  # sinusoidal (fixed) | learned
    norm_first: bool = True  # layer norm before each part (pre-LN) or after it (post-LN)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_attention_sizes(self.d_model, self.heads, self.layers, self.ff)
        check_choice("model.positions", self.positions, POSITIONS)


@dataclass
class Seq2SeqConfig(ModelConfig):
    """An encoder-decoder: reads source tokens, writes target tokens one at a time."""

    groups: ClassVar[tuple[str, ...]] = ("reg",)  # dropout; no hidden activation to choose

    name: str = "seq2seq"
    arch: str = "transformer"  # transformer | recurrent
    d_model: int = 64  # numbers per token: the embeddings (and a Transformer's width)
    heads: int = 4  # transformer: attention heads per layer; must divide d_model
    layers: int = 2  # encoder layers, and as many decoder layers
    ff: int = 128  # transformer: units of each layer's feed-forward part
    positions: str = "sinusoidal"  # transformer: sinusoidal (fixed) | learned
    norm_first: bool = True  # transformer: layer norm before each part (pre-LN), or after
    cell: str = "lstm"  # recurrent: rnn | lstm | gru
    hidden_size: int = 128  # recurrent: units of the encoder's and decoder's state
    attention: str = "dot"  # recurrent: none | dot (Luong) | additive (Bahdanau)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("model.arch", self.arch, ARCHS)
        check_attention_sizes(self.d_model, self.heads, self.layers, self.ff)
        check_choice("model.positions", self.positions, POSITIONS)
        check_choice("model.cell", self.cell, CELLS)
        check(self.hidden_size >= 1, "model.hidden_size", self.hidden_size, "must be >= 1")
        check_choice("model.attention", self.attention, ATTENTIONS)
        check(
            self.arch == "recurrent" or self.attention == "dot",
            "model.attention",
            self.attention,
            "model.arch=transformer attends by scaled dot products, always; none and "
            "additive are for model.arch=recurrent",
        )


@dataclass
class RBMConfig(ModelConfig):
    """A restricted Boltzmann machine trained by contrastive divergence."""

    groups: ClassVar[tuple[str, ...]] = ("reg",)  # L1/L2 on the weights; no hidden layers

    name: str = "rbm"
    n_hidden: int = 100
    k: int = 1  # Gibbs steps per update (CD-k)
    pcd: bool = False  # persistent CD: the negative chains carry on across batches
    visible: str = "bernoulli"
    init_std: float = 0.01  # initial weights ~ Normal(0, init_std) (Hinton's practical guide)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_hidden >= 1, "model.n_hidden", self.n_hidden, "must be >= 1")
        check(self.k >= 1, "model.k", self.k, "at least one Gibbs step")
        check_choice("model.visible", self.visible, VISIBLE_UNITS)
        check(self.init_std > 0, "model.init_std", self.init_std, "must be > 0")

    def needs_unit_range(self) -> bool:
        return self.visible == "bernoulli"  # probabilities; Gaussian units take standardised


@dataclass
class DBNConfig(ModelConfig):
    """A deep belief network: RBMs pre-trained greedily, then fine-tuned as a classifier."""

    groups: ClassVar[tuple[str, ...]] = ("reg",)  # sigmoid units; reg applies to fine-tuning

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
        check_sizes("model.layers", self.layers, at_least_one=True)
        check(self.pretrain_epochs >= 1, "model.pretrain_epochs", self.pretrain_epochs, ">= 1")
        check(self.k >= 1, "model.k", self.k, "at least one Gibbs step")
        check(self.pretrain_lr > 0, "model.pretrain_lr", self.pretrain_lr, "must be > 0")
        check(
            0 <= self.pretrain_momentum < 1,
            "model.pretrain_momentum",
            self.pretrain_momentum,
            "must be in [0, 1)",
        )

    def needs_unit_range(self) -> bool:
        return True  # the first RBM's visible units are Bernoulli: probabilities


# name → (the whole config, the data's DataSpec) → the model (dlbasics/models/base.py)
MODELS: Registry = Registry(
    "model",
    {
        "perceptron": PerceptronConfig,
        "mlp": MLPConfig,
        "dnn": DNNConfig,
        "cnn": CNNConfig,
        "rnn": RNNConfig,
        "transformer": TransformerConfig,
        "seq2seq": Seq2SeqConfig,
        "rbm": RBMConfig,
        "dbn": DBNConfig,
    },
    builders="dlbasics.models",
)
