"""A Transformer encoder for the sequence tasks (docs/concepts.md §10): attention instead of
recurrence. Every step reads every other step directly, in one layer, whatever their distance.

The samples' features at each step are projected to ``d_model`` numbers, their positions
added, then ``layers`` encoder layers (self-attention, feed-forward) follow. Many-to-one
reads the mean over the steps; many-to-many (``data.many_to_many=true``) gives an output at
every step, and then each step attends only to itself and the steps before it (a causal
mask): the targets are the next values, which the later steps hold.
"""

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from dlbasics.data import DataSpec
from dlbasics.models.attention import (
    EncoderLayer,
    PositionalEncoding,
    attention_image,
    causal_mask,
)
from dlbasics.models.base import MODELS, Model, require_sample_rank
from dlbasics.schemas.models import TransformerConfig

if TYPE_CHECKING:
    from dlbasics.config import Config

MAP_SAMPLES = 4  # validation samples drawn in each attention map


class Transformer(Model):
    """Transformer encoder over (batch, time, features) inputs, then a linear output layer."""

    def __init__(self, cfg: TransformerConfig, spec: DataSpec, dropout: float):
        super().__init__()
        steps, features = spec.input_shape
        self.per_step = spec.per_step
        self.embed = nn.Linear(features, cfg.d_model)
        self.positions = PositionalEncoding(cfg.positions, cfg.d_model, steps, dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(cfg.d_model, cfg.heads, cfg.ff, dropout, cfg.norm_first)
            for _ in range(cfg.layers)
        )
        self.norm = nn.LayerNorm(cfg.d_model) if cfg.norm_first else nn.Identity()
        self.head = nn.Linear(cfg.d_model, spec.n_outputs)

    def forward(self, x: Tensor) -> Tensor:
        h = self.positions(self.embed(x))
        mask = causal_mask(h.shape[1], h.device) if self.per_step else None
        for layer in self.layers:
            h = layer(h, mask=mask)
        h = self.norm(h)  # pre-LN leaves the last sum unnormalised
        return self.head(h if self.per_step else h.mean(dim=1))

    @torch.no_grad()
    def epoch_images(self, x_val: Tensor) -> dict[str, Tensor]:
        """Each layer's and head's attention over the first validation samples."""
        return attention_maps(self, self.layers, "self_attention", x_val[:MAP_SAMPLES], "encoder")


def attention_maps(
    model: nn.Module, layers: nn.ModuleList, part: str, run, prefix: str
) -> dict[str, Tensor]:
    """Images of the attention weights of ``part`` (an Attention) in each of ``layers``, per
    head, while ``model`` runs ``run`` (a batch of inputs, or a function to call)."""
    attentions = [getattr(layer, part) for layer in layers]
    for attention in attentions:
        attention.keep_weights = True
    was_training = model.training
    model.eval()
    try:
        run() if callable(run) else model(run)
        images = {}
        for i, attention in enumerate(attentions, start=1):
            weights = attention.weights  # (samples, heads, queries, keys)
            for head in range(weights.shape[1]):
                images[f"attention/{prefix}_layer{i}_head{head + 1}"] = attention_image(
                    weights[:, head]
                )
        return images
    finally:
        model.train(was_training)
        for attention in attentions:
            attention.keep_weights, attention.weights = False, None


@MODELS.register("transformer", TransformerConfig)
def build_transformer(cfg: "Config", spec: DataSpec) -> Transformer:
    require_sample_rank(
        spec,
        "transformer",
        2,
        needs="sequences, samples of shape (time steps, features)",
        use="a sequence data set (data=seq_digits, data=sine, data=adding), or model=seq2seq "
        "for token sequences (data=numbers, data=reverse, data=sort)",
    )
    return Transformer(cfg.model, spec, cfg.reg.dropout)
