"""The schemas of dlbasics/data/: the keys of each `data=NAME`, and the data set registry."""

from dataclasses import dataclass, field

from omegaconf import II, MISSING

from dlbasics.registry import Registry
from dlbasics.schema import check, check_choice, check_seed, check_size


@dataclass
class DataConfig:
    """The keys every data set takes."""

    name: str = MISSING
    seed: int = II("seed")  # generation and split seed; follows the top-level `seed`

    def __post_init__(self) -> None:
        check_seed("data.seed", self.seed)


@dataclass
class SplitDataConfig(DataConfig):
    """A data set cut into training, validation and test splits here."""

    # Held-out fractions of the whole set (or counts, when >= 1); the split is stratified.
    val_size: float = 0.2
    test_size: float = 0.2
    standardize: bool = True  # zero mean, unit variance, fitted on the training split only
    # Scale every feature to [0, 1] by the training split's min and max instead (the inputs of
    # model=rbm and model=dbn are probabilities); held-out values are clipped into [0, 1].
    # null: as the model needs (ModelConfig.needs_unit_range), resolved by config.validate.
    unit_range: bool | None = None
    # Keep the labels of only this many training samples per class (classification); the
    # other training inputs stay, unlabelled, for unsupervised pre-training. null = all.
    labels_per_class: int | None = None
    # Train on only this fraction of the whole set (or count, when >= 1) of what the held-out
    # splits leave; null = all of it. Few samples and a large model: overfitting to see.
    train_size: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_size("data.val_size", self.val_size)
        check_size("data.test_size", self.test_size)
        check_size("data.train_size", self.train_size, "null (all), ")
        if self.val_size < 1 and self.test_size < 1:
            check(
                self.val_size + self.test_size < 1,
                "data.val_size + data.test_size",
                self.val_size + self.test_size,
                "the two fractions must leave data to train on (sum < 1)",
            )
        check_labels_per_class(self.labels_per_class)


def check_labels_per_class(value: int | None) -> None:
    """data.labels_per_class: null, or a count >= 1."""
    check(
        value is None or value >= 1,
        "data.labels_per_class",
        value,
        "an integer >= 1, or null to keep every label",
    )


@dataclass
class GateDataConfig(DataConfig):
    """A logic gate's truth table: four points, used as training, validation and test set."""

    name: str = "and"


@dataclass
class GeneratedDataConfig(SplitDataConfig):
    """Points drawn at random: two interleaving half circles (data=moons), …"""

    n_samples: int = 500
    noise: float = 0.2  # std of the Gaussian noise added to each point

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_samples >= 10, "data.n_samples", self.n_samples, "at least 10")
        check(self.noise >= 0, "data.noise", self.noise, "must be >= 0")


@dataclass
class CirclesDataConfig(GeneratedDataConfig):
    """A small circle of points inside a large one."""

    noise: float = 0.1
    factor: float = 0.5  # radius of the inner circle relative to the outer one

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0 < self.factor < 1, "data.factor", self.factor, "must be in (0, 1)")


@dataclass
class SpiralsDataConfig(GeneratedDataConfig):
    """Two interleaved spirals."""

    n_samples: int = 600
    noise: float = 0.1
    turns: float = 1.5  # how many times each arm winds around the centre

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.turns > 0, "data.turns", self.turns, "must be > 0")


@dataclass
class OystersDataConfig(GeneratedDataConfig):
    """Oyster diameters (cm) → ripe or not, with label noise (docs/concepts.md §2)."""

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
        check(self.length >= 1, "data.length", self.length, "must be >= 1")


@dataclass
class AddingDataConfig(SplitDataConfig):
    """The adding problem: sum the two marked numbers of a long sequence."""

    name: str = "adding"
    n_samples: int = 10000
    length: int = 50  # time steps per sequence
    standardize: bool = False  # keeps the loss in the task's units (predicting the mean: 1/6)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_samples >= 10, "data.n_samples", self.n_samples, "at least 10")
        check(self.length >= 2, "data.length", self.length, "at least 2 (one mark per half)")


MAX_NUMBER = 999_999  # the largest number data/translation.py can say in words


@dataclass
class NumbersDataConfig(SplitDataConfig):
    """Every number from 0 to ``max_value``, digits in, English words out."""

    name: str = "numbers"
    max_value: int = 9999
    standardize: bool = False  # tokens are indices, not measurements

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            99 <= self.max_value <= MAX_NUMBER,
            "data.max_value",
            self.max_value,
            f"an integer from 99 to {MAX_NUMBER}",
        )


@dataclass
class DigitStringDataConfig(SplitDataConfig):
    """Random strings of digits, each drawn once; the target is a function of the string."""

    name: str = "reverse"
    n_samples: int = 10000
    length: int = 10  # digits per string
    standardize: bool = False  # tokens are indices, not measurements

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.length >= 2, "data.length", self.length, "at least 2")
        check(self.n_samples >= 10, "data.n_samples", self.n_samples, "at least 10")


CSV_TASKS = ("auto", "classification", "regression")
MISSING_POLICIES = ("impute", "drop", "error")


@dataclass
class TableDataConfig(SplitDataConfig):
    """A table of one's own, one column of which is the target: how its columns become
    features (data/table.py). A CSV file (data=csv) or a pandas DataFrame (data=dataframe),
    each of which names its ``target`` column (after the file: the first thing data=csv
    asks for is its path)."""

    # auto: classification when the target holds text, true/false or at most 20 distinct
    # integers; regression otherwise.
    task: str = "auto"
    columns: list[str] | None = None  # the feature columns; null: every one but target and drop
    drop: list[str] = field(default_factory=list)  # columns that are not features (an ID)
    categorical: list[str] = field(default_factory=list)  # numbers that are categories (a year)
    # Missing cells of features: impute (median, most frequent value; fitted on the training
    # rows), drop (their rows) or error. Rows without a target are always dropped.
    missing: str = "impute"
    max_categories: int = 50  # more categories in a column than this: an error (an ID column?)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("data.task", self.task, CSV_TASKS)
        check_choice("data.missing", self.missing, MISSING_POLICIES)
        check(self.max_categories >= 2, "data.max_categories", self.max_categories, ">= 2")


@dataclass
class CsvDataConfig(TableDataConfig):
    """The user's own table: a CSV file with a header row, one column of which is the target."""

    name: str = "csv"
    path: str = MISSING  # the CSV file; relative paths start in the current directory
    target: str = MISSING  # name of the column to predict
    delimiter: str | None = None  # null: found from the file's first lines (, ; or tab)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            self.delimiter is None or len(self.delimiter) == 1,
            "data.delimiter",
            self.delimiter,
            "one character, or null to find it from the file",
        )


@dataclass
class DataFrameConfig(TableDataConfig):
    """A pandas DataFrame given to ``dlbasics.train(data=frame, target="column")``: its
    columns read as data=csv reads a file's. The rows are not saved with the run."""

    name: str = "dataframe"
    target: str = MISSING  # name of the column to predict: dlbasics.train's target=…


@dataclass
class ArrayDataConfig(SplitDataConfig):
    """Arrays given to ``dlbasics.train(data=(X, y))``: NumPy arrays, torch tensors or lists;
    X holds one sample per row (n, features) or per entry (n, *sample shape), y their labels
    or values. They are not saved with the run."""

    name: str = "arrays"
    # auto: classification when y holds text, true/false or at most 20 distinct integers (as
    # data=csv's target); regression otherwise.
    task: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("data.task", self.task, CSV_TASKS)


@dataclass
class IdxDataConfig(DataConfig):
    """MNIST-format files on disk: the training file is split into training and validation
    sets; the t10k files are the test set."""

    name: str = "idx"
    root: str | None = None  # directory holding the four *-ubyte files (gzipped or not)
    val_size: float = 0.1  # fraction (or count) of the training file held out, stratified
    standardize: bool = True
    unit_range: bool | None = None  # as in SplitDataConfig (null: as the model needs)
    labels_per_class: int | None = None  # as in SplitDataConfig
    limit: int | None = None  # use only the first N training images; null = all

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            self.root is not None and self.root != "",
            "data.root",
            self.root,
            "data=idx needs the directory holding train-images-idx3-ubyte, "
            "train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte "
            "(each may end in .gz), e.g. data.root=~/data/mnist",
        )
        check_size("data.val_size", self.val_size)
        check(self.limit is None or self.limit >= 2, "data.limit", self.limit, "null or at least 2")
        check_labels_per_class(self.labels_per_class)


# name → (its config) → the three splits (dlbasics/data/core.py: build_data)
DATASETS: Registry = Registry(
    "data",
    {
        # toy problems (data/toy.py)
        **dict.fromkeys(["and", "or", "nand", "xor"], GateDataConfig),
        "oysters": OystersDataConfig,
        "moons": GeneratedDataConfig,
        "circles": CirclesDataConfig,
        "spirals": SpiralsDataConfig,
        # scikit-learn's bundled sets (data/bundled.py)
        **dict.fromkeys(["digits", "iris", "wine", "breast_cancer", "diabetes"], BundledDataConfig),
        # files of one's own (data/tabular.py, data/idx.py)
        "csv": CsvDataConfig,
        "idx": IdxDataConfig,
        # what a Python session holds: dlbasics.train(data=…) (data/memory.py)
        "arrays": ArrayDataConfig,
        "dataframe": DataFrameConfig,
        # sequences (data/sequences.py) and translations (data/translation.py)
        "seq_digits": BundledDataConfig,
        "sine": SineDataConfig,
        "adding": AddingDataConfig,
        "numbers": NumbersDataConfig,
        "reverse": DigitStringDataConfig,
        "sort": DigitStringDataConfig,
    },
    builders="dlbasics.data",
)
