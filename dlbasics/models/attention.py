"""The parts of a Transformer (docs/concepts.md §10): positional encodings, and encoder and
decoder layers built on torch's ``nn.MultiheadAttention``.

torch's own ``nn.TransformerEncoderLayer`` computes the same as ``EncoderLayer`` here, but calls
its attention with ``need_weights=False``: these layers keep each head's attention weights
when asked (``keep_weights``), for the attention maps in TensorBoard.

Attention, in one line: every position asks a query, every position offers a key and a
value, and each output is the mean of the values weighted by softmax(query · key / √d). A
head does that in a subspace of its own; ``heads`` of them run side by side.
"""

import math

import torch
from torch import Tensor, nn


class PositionalEncoding(nn.Module):
    """Adds to each position's vector a vector that says where it is: attention itself does
    not know the order of what it reads.

    ``sinusoidal`` (Vaswani et al., 2017): sin and cos of the position at wavelengths from 2π
    to 10000·2π, fixed, for any length up to ``max_length``. ``learned``: one trained vector
    per position, up to ``max_length``.
    """

    def __init__(self, kind: str, d_model: int, max_length: int, dropout: float):
        super().__init__()
        self.kind = kind
        self.dropout = nn.Dropout(dropout)
        if kind == "learned":
            self.table = nn.Embedding(max_length, d_model)
        else:
            position = torch.arange(max_length).unsqueeze(1)
            rate = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
            table = torch.zeros(max_length, d_model)
            table[:, 0::2] = torch.sin(position * rate)
            table[:, 1::2] = torch.cos(position * rate[: d_model // 2])
            self.register_buffer("sinusoids", table, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (batch, time, d_model) with each step's position added."""
        steps = x.shape[1]
        if self.kind == "learned":
            where = self.table(torch.arange(steps, device=x.device))
        else:
            where = self.sinusoids[:steps]
        return self.dropout(x + where)


class Attention(nn.Module):
    """``nn.MultiheadAttention`` (batch first) that keeps each head's weights of its last call,
    (batch, heads, queries, keys), when ``keep_weights`` is set."""

    def __init__(self, d_model: int, heads: int, dropout: float):
        super().__init__()
        self.attend = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.keep_weights = False
        self.weights: Tensor | None = None

    def forward(
        self,
        query: Tensor,
        memory: Tensor,
        key_padding_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
    ) -> Tensor:
        out, weights = self.attend(
            query,
            memory,
            memory,
            key_padding_mask=key_padding_mask,
            attn_mask=attn_mask,
            need_weights=self.keep_weights,  # computing them costs time: only when asked
            average_attn_weights=False,
        )
        self.weights = weights.detach() if self.keep_weights else None
        return out


class FeedForward(nn.Sequential):
    """The position-wise part of a layer: linear → ReLU → dropout → linear."""

    def __init__(self, d_model: int, ff: int, dropout: float):
        super().__init__(
            nn.Linear(d_model, ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff, d_model)
        )


class Residual(nn.Module):
    """x + dropout(f(x)) with layer normalisation: before f (``norm_first``, pre-LN: trains
    stably without a learning-rate warm-up) or after the sum (the original, post-LN)."""

    def __init__(self, d_model: int, dropout: float, norm_first: bool):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: Tensor, sublayer) -> Tensor:
        if self.norm_first:
            return x + self.dropout(sublayer(self.norm(x)))
        return self.norm(x + self.dropout(sublayer(x)))


class EncoderLayer(nn.Module):
    """Self-attention over the sequence, then the feed-forward part, each with a residual."""

    def __init__(self, d_model: int, heads: int, ff: int, dropout: float, norm_first: bool):
        super().__init__()
        self.self_attention = Attention(d_model, heads, dropout)
        self.feed_forward = FeedForward(d_model, ff, dropout)
        self.first = Residual(d_model, dropout, norm_first)
        self.second = Residual(d_model, dropout, norm_first)

    def forward(
        self, x: Tensor, padding: Tensor | None = None, mask: Tensor | None = None
    ) -> Tensor:
        """``padding`` (batch, time): True where a step is <pad> (no one attends to it);
        ``mask`` (time, time): True where a query may not look (the future, when causal)."""
        x = self.first(x, lambda h: self.self_attention(h, h, padding, mask))
        return self.second(x, self.feed_forward)


class DecoderLayer(nn.Module):
    """Masked self-attention over the target so far, attention over the encoder's outputs
    (cross-attention: where in the source to look), then the feed-forward part."""

    def __init__(self, d_model: int, heads: int, ff: int, dropout: float, norm_first: bool):
        super().__init__()
        self.self_attention = Attention(d_model, heads, dropout)
        self.cross_attention = Attention(d_model, heads, dropout)
        self.feed_forward = FeedForward(d_model, ff, dropout)
        self.first = Residual(d_model, dropout, norm_first)
        self.second = Residual(d_model, dropout, norm_first)
        self.third = Residual(d_model, dropout, norm_first)

    def forward(self, y: Tensor, memory: Tensor, causal: Tensor, source_padding: Tensor) -> Tensor:
        y = self.first(y, lambda h: self.self_attention(h, h, attn_mask=causal))
        y = self.second(y, lambda h: self.cross_attention(h, memory, source_padding))
        return self.third(y, self.feed_forward)


def causal_mask(steps: int, device: torch.device) -> Tensor:
    """(steps, steps), True above the diagonal: step t may look at steps 0 … t only."""
    return torch.ones(steps, steps, dtype=torch.bool, device=device).triu(1)


def attention_image(weights: Tensor, cell: int = 8, gap: int = 1) -> Tensor:
    """Attention weights of a few samples, (samples, queries, keys) in [0, 1], as one image
    (1, height, width) for TensorBoard: the samples side by side, each weight a ``cell``-pixel
    square (queries down, keys across; bright: attended)."""
    tiles = [w.repeat_interleave(cell, 0).repeat_interleave(cell, 1) for w in weights.float()]
    height = tiles[0].shape[0]
    parts = []
    for tile in tiles:
        parts += [tile, torch.ones(height, gap * cell // 2 or 1)]  # a white line between
    return torch.cat(parts[:-1], dim=1).clamp(0, 1).unsqueeze(0).cpu()
