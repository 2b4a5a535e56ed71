"""The schema of dlbasics/trainer.py: the keys of `trainer` (how the loop runs)."""

from dataclasses import dataclass, field
from typing import Any

from omegaconf import II

from dlbasics.early_stopping import EarlyStoppingConfig
from dlbasics.schema import check, check_choice, check_seed

TRAINER_MODES = ("batch", "sgd", "minibatch")  # the three kinds of gradient descent (`trainer=`)
# trainer.precision: float32, or autocast to one of trainer.py's AUTOCAST_DTYPES
PRECISIONS = ("32", "bf16", "16-mixed")


@dataclass
class TrainerConfig:
    """How the training loop runs: batches, epochs, device, checkpoints, early stopping."""

    mode: str = "minibatch"  # set by `trainer=batch|sgd|minibatch`
    batch_size: int | None = 64  # null (batch mode) = the whole training set
    epochs: int = 100
    # Steps per epoch at most: the first N batches of each epoch's shuffled order (a quick
    # check that a config runs, as debug=fast does); null = every batch.
    limit_batches: int | None = None
    device: str = "auto"  # auto | cpu | cuda (auto takes CUDA when present)
    seed: int = II("seed")  # weight initialisation and shuffling; follows the top-level `seed`
    deterministic: bool = False  # torch.use_deterministic_algorithms
    threads: Any = "auto"  # CPU threads: an integer, or auto (1 for small models)
    grad_clip: float | None = None  # clip gradients before each step; null = off
    grad_clip_mode: str = "norm"  # norm: rescale the total norm; value: clamp each entry
    checkpoint_every: int = 10  # write last.pt/best.pt every N epochs (and always at the end)
    checkpoints: bool = True  # false: no checkpoints/ at all (nothing to resume or reload)
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
        check_choice("trainer.mode", self.mode, TRAINER_MODES)
        check_seed("trainer.seed", self.seed)
        if self.mode == "batch":
            check(
                self.batch_size is None,
                "trainer.batch_size",
                self.batch_size,
                "trainer=batch takes one step per epoch over the whole training set; for a "
                "fixed batch size use trainer=minibatch trainer.batch_size=N",
            )
        elif self.mode == "sgd":
            check(
                self.batch_size == 1,
                "trainer.batch_size",
                self.batch_size,
                "trainer=sgd updates after every single sample (batch size 1); for larger "
                "batches use trainer=minibatch trainer.batch_size=N",
            )
        else:
            check(
                self.batch_size is not None and self.batch_size >= 1,
                "trainer.batch_size",
                self.batch_size,
                "an integer >= 1 (or trainer=batch for the whole training set)",
            )
        check(self.epochs >= 1, "trainer.epochs", self.epochs, "must be >= 1")
        check(
            self.limit_batches is None or self.limit_batches >= 1,
            "trainer.limit_batches",
            self.limit_batches,
            "an integer >= 1, or null for every batch",
        )
        check_choice("trainer.device", self.device, ("auto", "cpu", "cuda"))
        threads_ok = self.threads == "auto" or (isinstance(self.threads, int) and self.threads > 0)
        check(threads_ok, "trainer.threads", self.threads, "a positive integer or auto")
        check(
            self.grad_clip is None or self.grad_clip > 0,
            "trainer.grad_clip",
            self.grad_clip,
            "a positive number, or null for no clipping",
        )
        check_choice("trainer.grad_clip_mode", self.grad_clip_mode, ("norm", "value"))
        check(self.checkpoint_every >= 1, "trainer.checkpoint_every", self.checkpoint_every, ">= 1")
        check_choice("trainer.on_nan", self.on_nan, ("stop", "skip"))
        check_choice("trainer.precision", self.precision, PRECISIONS)
        check(
            self.distributed_timeout > 0,
            "trainer.distributed_timeout",
            self.distributed_timeout,
            "a number of seconds > 0",
        )
