"""Data-parallel training over the processes torchrun starts (DistributedDataParallel).

    torchrun --standalone --nproc_per_node=2 scripts/train.py model=mlp

Every rank holds the whole data set and the same model, and draws the same shuffled order each
epoch (same seed). ``trainer.batch_size`` is the global batch: each batch of the order is split
among the ranks into contiguous parts that differ by at most one sample, and the gradients are
averaged with each rank weighted by its part of the batch. A step is thus the step one process
takes on the whole batch: the same steps per epoch, the same learning rate, the same result up
to rounding. The Trainer calls the hooks of ``SingleProcess``; for one process they do nothing.

What differs from one process:
- only rank 0 writes: TensorBoard, metrics.json, checkpoints, the run directory itself;
- an epoch's last batch with fewer samples than ranks (at most world_size − 1 samples, other ones
  each epoch) is left out of that epoch, as every rank needs a sample to average over;
- SIGINT/SIGTERM stop the run at the end of the epoch under way: the ranks must stop after the
  same step, and agreeing on that costs one exchange, made once per epoch;
- random numbers (dropout) are drawn per rank, reseeded each epoch from (seed, epoch, rank), so
  that a resumed run draws what the uninterrupted one would have.
"""

import os
from datetime import timedelta
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from dlbasics.errors import ConfigError
from dlbasics.models.base import Model
from dlbasics.training_state import EpochPass

if TYPE_CHECKING:
    from dlbasics.trainer import TrainerConfig


class SingleProcess:
    """Training in this process alone: each hook the Trainer calls returns what it is given."""

    rank = 0
    world_size = 1
    is_main = True  # the process that writes the run directory and reports
    stops_between_steps = True  # a signal stops the run after the step under way

    def __init__(self, device: torch.device):
        self.device = device

    def local_batch(self, batch: Tensor) -> Tensor:
        """This rank's part of a training batch (rows of data or sample indices)."""
        return batch

    def local_part(self, split: Tensor) -> Tensor:
        """This rank's part of a data set to evaluate."""
        return split

    def wrap(self, model: Model) -> nn.Module:
        """What runs the forward pass of a model trained by backpropagation: under torchrun,
        DistributedDataParallel, whose backward pass averages the gradients over the ranks."""
        return model

    def average_gradients(self, model: Model) -> None:
        """Average over the ranks the ``.grad`` a model's own learning rule wrote."""

    def is_finite_everywhere(self, loss: Tensor) -> bool:
        """Whether this step's loss is finite on every rank."""
        return bool(torch.isfinite(loss))

    def sum(self, values: list[float]) -> list[float]:
        """``values`` (sums and counts) summed over the ranks."""
        return values

    def combine(self, run: EpochPass) -> EpochPass:
        """The epoch's pass as one process would have recorded it."""
        return run

    def seed_epoch(self, seed: int, epoch: int) -> None:
        """Seed this rank's random numbers for an epoch (one process keeps a single stream)."""

    def agree_to_stop(self, early: bool, signal_number: int | None) -> tuple[bool, int | None]:
        """Whether to stop early (rank 0 decides) and the signal any rank received."""
        return early, signal_number

    def close(self) -> None:
        pass


class DataParallel(SingleProcess):
    """One rank of a torchrun job: gloo on CPU, NCCL on one GPU per rank."""

    stops_between_steps = False  # only at the end of an epoch: see agree_to_stop

    def __init__(self, device: torch.device, rank: int, world_size: int):
        super().__init__(device)
        self.rank, self.world_size, self.is_main = rank, world_size, rank == 0
        self.share = 1 / world_size  # of the current training batch; weighs this rank's gradients

    def local_batch(self, batch: Tensor) -> Tensor:
        part = batch.tensor_split(self.world_size)[self.rank]
        self.share = len(part) / len(batch)  # for the training step that follows
        return part

    def local_part(self, split: Tensor) -> Tensor:
        return split.tensor_split(self.world_size)[self.rank]

    def wrap(self, model: Model) -> nn.Module:
        if not model.learns_by_backprop:
            return model
        ddp = DistributedDataParallel(
            model, device_ids=[self.device] if self.device.type == "cuda" else None
        )
        ddp.register_comm_hook(self, _weighted_sum)
        return ddp

    def average_gradients(self, model: Model) -> None:
        # A learning rule of its own writes .grad without autograd, so DDP's hooks never see
        # it. The same code on every rank fills the same parameters' gradients.
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads]).mul_(self.share)
        dist.all_reduce(flat)
        for grad, averaged in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
            grad.copy_(averaged.view_as(grad))

    def is_finite_everywhere(self, loss: Tensor) -> bool:
        # Every rank skips the step or none does: a NaN anywhere makes the sum NaN.
        return bool(torch.isfinite(self._summed(loss.detach() * self.share)))

    def sum(self, values: list[float]) -> list[float]:
        return self._summed(torch.tensor(values, dtype=torch.float64, device=self.device)).tolist()

    def _summed(self, totals: Tensor) -> Tensor:
        totals = totals.clone()
        dist.all_reduce(totals)
        return totals

    def combine(self, run: EpochPass) -> EpochPass:
        if not run.losses:  # every step skipped (on_nan=skip), on every rank alike
            return run
        sizes = torch.tensor(run.sizes, dtype=torch.float64, device=self.device)
        rows = [torch.stack(run.losses).double() * sizes, sizes]
        if run.correct:
            rows.append(torch.stack(run.correct).double())
        table = self._summed(torch.stack(rows))  # per step: loss sum, samples, correct
        loss_dtype = run.losses[0].dtype
        return EpochPass(
            order=run.order,
            next_start=run.next_start,
            losses=list((table[0] / table[1]).to(loss_dtype).unbind()),
            sizes=[int(size) for size in table[1].tolist()],
            correct=list(table[2].long().unbind()) if run.correct else [],
        )

    def seed_epoch(self, seed: int, epoch: int) -> None:
        torch.manual_seed((seed * 1_000_003 + epoch) * 1_009 + self.rank)  # distinct per rank

    def agree_to_stop(self, early: bool, signal_number: int | None) -> tuple[bool, int | None]:
        flags = torch.tensor([int(early and self.is_main), signal_number or 0], device=self.device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        return bool(flags[0]), int(flags[1]) or None

    def close(self) -> None:
        dist.destroy_process_group()


def _weighted_sum(
    state: DataParallel, bucket: dist.GradBucket
) -> torch.futures.Future[torch.Tensor]:
    """DDP's all-reduce of a bucket of gradients, each rank's weighted by its share of the batch
    (DDP's own divides each by world_size, which is only right when the parts are equal)."""
    buffer = bucket.buffer().mul_(state.share)
    work = dist.all_reduce(buffer, async_op=True)
    return work.get_future().then(lambda future: future.value()[0])


def join_ranks(device: torch.device, cfg: "TrainerConfig") -> SingleProcess:
    """Under torchrun, join the other ranks (gloo on CPU, NCCL on GPUs, one per rank); else
    this process trains alone."""
    if "RANK" not in os.environ:  # set by torchrun (and by other env:// launchers)
        return SingleProcess(device)
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"torchrun started {os.environ.get('LOCAL_WORLD_SIZE', local_rank + 1)} "
                f"processes on this machine, but it has {torch.cuda.device_count()} CUDA "
                "devices and each rank needs its own; lower --nproc_per_node, or train on "
                "CPUs with trainer.device=cpu."
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend="nccl" if device.type == "cuda" else "gloo",
        # A rank that hangs (or is stopped) makes the others fail after this long, not wait
        # forever; a rank that dies is noticed by torchrun at once.
        timeout=timedelta(seconds=cfg.distributed_timeout),
        device_id=device if device.type == "cuda" else None,
    )
    return DataParallel(device, rank, world_size)


def check_batch_fits_ranks(cfg: "TrainerConfig", n_train: int, world_size: int) -> None:
    """Each rank needs at least one sample of every batch to compute its gradients."""
    batch_size = n_train if cfg.batch_size is None else min(cfg.batch_size, n_train)
    if batch_size < world_size:
        what = (
            "trainer=sgd takes one sample per step"
            if cfg.mode == "sgd"
            else f"a batch of {batch_size} samples"
        )
        raise ConfigError(
            f"trainer.batch_size={cfg.batch_size}: {what}, which cannot be shared among the "
            f"{world_size} ranks torchrun started (each needs at least one sample per step). "
            f"trainer.batch_size is the global batch of all ranks: use trainer=minibatch "
            f"trainer.batch_size={world_size} or more, or fewer processes (--nproc_per_node)."
        )
