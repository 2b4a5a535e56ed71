"""Pictures of what a model holds, for TensorBoard: many small images tiled into one."""

import math

import torch
from torch import Tensor


def image_shape(input_shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """(channels, height, width) for samples that are images, else None: (C, H, W) with one or
    three channels, (H, W), or a flat vector whose length is a square of at least 8×8 (scikit-
    learn's digits, MNIST rows), shown as a square grey image."""
    if len(input_shape) == 3 and input_shape[0] in (1, 3):
        channels, height, width = input_shape
        return (channels, height, width)
    if len(input_shape) == 2:
        return (1, *input_shape)
    if len(input_shape) == 1:
        side = math.isqrt(input_shape[0])
        if side >= 8 and side * side == input_shape[0]:
            return (1, side, side)
    return None


def tile(
    images: Tensor,
    shape: tuple[int, int, int],
    normalise_each: bool = False,
    columns: int | None = None,
) -> Tensor:
    """``images`` (n, C·H·W) as one (C, rows·(H+1)−1, columns·(W+1)−1) grid in [0, 1],
    one pixel of black between them, filled row by row; ``columns``: as many as rows (about)
    unless given. ``normalise_each`` stretches every image to [0, 1] on its own (filter
    weights have no common scale); otherwise values are clipped to [0, 1]."""
    channels, height, width = shape
    images = torch.nan_to_num(images.detach().float().cpu()).reshape(-1, *shape)
    if normalise_each:
        low = images.amin(dim=(1, 2, 3), keepdim=True)
        high = images.amax(dim=(1, 2, 3), keepdim=True)
        images = (images - low) / (high - low).clamp_min(1e-12)
    images = images.clamp(0, 1)
    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    grid = torch.zeros(channels, rows * (height + 1) - 1, columns * (width + 1) - 1)
    for index, image in enumerate(images):
        top, left = (index // columns) * (height + 1), (index % columns) * (width + 1)
        grid[:, top : top + height, left : left + width] = image
    return grid
