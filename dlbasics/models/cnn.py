"""The convolutional network (docs/concepts.md §9): convolution + pooling blocks, then dense
layers."""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from dlbasics.activations import ActConfig, hidden_activation
from dlbasics.data import DataSpec
from dlbasics.errors import ConfigError
from dlbasics.models import stacked_layers
from dlbasics.models.base import MODELS, Model, require_sample_rank
from dlbasics.models.mlp import MLP
from dlbasics.schemas.models import CNNConfig

if TYPE_CHECKING:
    from dlbasics.config import Config

POOL_LAYERS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


class CNN(Model):
    """Blocks of conv → batch norm → activation → pooling, then an MLP on the flattened maps.

    Convolutions keep the height and width ("same" padding); each pooling divides them by
    ``pool_size``, rounding down.

    Parameters
    ----------
    input_shape : (channels, height, width)
        One image.
    channels : list of int
        Output channels of each block's convolution; one block per entry.
    kernel_size : int
        Height and width of the convolution kernels.
    pool : {"max", "avg"}
        The pooling kind.
    pool_size : int
        Pooling window and stride.
    batch_norm : bool
        Normalise each convolution's output over the batch.
    dense : list of int
        Hidden layer sizes of the MLP after the blocks.
    n_outputs : int
        Output units.
    act : ActConfig
        The activation of the blocks and of the dense layers.
    dropout : float
        Dropout in the dense layers.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        channels: list[int],
        kernel_size: int,
        pool: str,
        pool_size: int,
        batch_norm: bool,
        dense: list[int],
        n_outputs: int,
        act: ActConfig,
        dropout: float,
    ):
        super().__init__()
        in_channels, height, width = input_shape
        blocks: list[nn.Module] = []
        for out_channels in channels:
            blocks.append(nn.Conv2d(in_channels, out_channels, kernel_size, padding="same"))
            if batch_norm:
                blocks.append(nn.BatchNorm2d(out_channels))
            blocks += [hidden_activation(act), POOL_LAYERS[pool](pool_size)]
            in_channels, height, width = out_channels, height // pool_size, width // pool_size
        self.features = nn.Sequential(*blocks)
        self.head = MLP(in_channels * height * width, dense, n_outputs, act, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    @staticmethod
    def forward_stacked(
        members: Sequence["CNN"],
        x: Tensor,
        generators: Sequence[torch.Generator],
        weights: stacked_layers.Weights = stacked_layers.stack_weights,
    ) -> Tensor:
        features = [m.features for m in members]
        maps = stacked_layers.sequential(features, x, generators, weights)
        return MLP.forward_stacked([m.head for m in members], maps, generators, weights)


@MODELS.register("cnn", CNNConfig)
def build_cnn(cfg: "Config", spec: DataSpec) -> CNN:
    model = cfg.model
    require_sample_rank(
        spec,
        "cnn",
        3,
        needs="image-shaped samples (channels, height, width)",
        use="an image data set (data=digits, data=idx) or a dense model (model=mlp, model=dnn)",
    )
    _, height, width = spec.input_shape
    size = f"{height}×{width} images of data={spec.name}"
    for key in ("kernel_size", "pool_size"):
        if getattr(model, key) > min(height, width):
            raise ConfigError(f"model.{key}={getattr(model, key)} is larger than the {size}.")
    side = min(height, width)
    for block in range(1, len(model.channels) + 1):
        side //= model.pool_size
        if side < 1:
            raise ConfigError(
                f"model.channels={list(model.channels)} makes {len(model.channels)} blocks, "
                f"but pooling by model.pool_size={model.pool_size} shrinks the {size} to "
                f"nothing in block {block}; use at most {block - 1} blocks or a smaller "
                "pool_size."
            )
    return CNN(
        spec.input_shape,
        list(model.channels),
        model.kernel_size,
        model.pool,
        model.pool_size,
        model.batch_norm,
        list(model.dense),
        spec.n_outputs,
        cfg.act,
        cfg.reg.dropout,
    )
