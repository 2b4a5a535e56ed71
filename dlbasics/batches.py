"""The training split on the device, and each step's batch cut from it by index slices.

A DataLoader copies every batch through Python; here the whole split lives on the device, and
a step's batch is one indexing of it by the step's slice of the epoch's shuffled order. Batch
gradient descent (one batch of the whole set) indexes nothing at all.
"""

from typing import TYPE_CHECKING

from torch import Tensor

from dlbasics.data import DataSplits
from dlbasics.distributed import SingleProcess
from dlbasics.models.base import Batch, Model
from dlbasics.models.stacked import StackedModel

if TYPE_CHECKING:
    from dlbasics.trainer import TrainerConfig


class TrainingBatches:
    """The training inputs ``x`` and targets ``y`` on the device, ``count`` samples, taken
    ``size`` at a time up to ``end`` in each epoch's order."""

    def __init__(
        self,
        model: Model,
        data: DataSplits,
        sample_weights: Tensor | None,
        cfg: "TrainerConfig",
        parallel: SingleProcess,
    ):
        device = parallel.device
        self.model = model
        self.parallel = parallel
        self.x = data.x_train.to(device)
        # an RBM's targets are its inputs: one tensor, moved once
        self.y = self.x if data.y_train is data.x_train else data.y_train.to(device)
        self.weights = sample_weights.to(device) if sample_weights is not None else None
        self.stacked = isinstance(model, StackedModel)
        own_data = self.stacked and model.own_data  # (K, n, …): a split per member
        self.count = self.x.shape[1] if own_data else len(self.x)
        self.size = self.count if cfg.batch_size is None else min(cfg.batch_size, self.count)
        # Under torchrun, a last batch too small to give each rank a sample waits for the
        # next epoch's shuffle.
        short = self.count % self.size < parallel.world_size
        self.end = self.count - self.count % self.size if short else self.count
        if cfg.limit_batches is not None:  # the first limit_batches batches of each epoch
            self.end = min(self.end, cfg.limit_batches * self.size)

    def take(self, index: Tensor) -> Batch:
        """The batch of the samples ``index`` (a stacked fit's: (K, B), member k's in row k)."""
        if self.stacked:
            x, y = self.model.take(self.x, index), self.model.take(self.y, index)
            return Batch(x, y, y.shape[1], self._weights(index))
        if self.size == self.count:  # batch gradient descent: the whole set, no copy
            x, y = self.parallel.local_batch(self.x), self.parallel.local_batch(self.y)
            return Batch(x, y, x.shape[0], self.weights)
        index = self.parallel.local_batch(index)  # under torchrun, this rank's part
        x = self.x[index]
        y = x if self.y is self.x else self.y[index]
        return Batch(x, y, x.shape[0], self._weights(index))

    def _weights(self, index: Tensor) -> Tensor | None:
        return self.weights[index] if self.weights is not None else None
