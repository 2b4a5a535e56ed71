"""Recurrent networks (docs/concepts.md §9): a hidden state fed back at every time step.

``cell=rnn`` is Elman's network, h_t = tanh(W·x_t + U·h_{t−1} + b), whose gradients shrink or
grow by a factor per step (§8); the LSTM and GRU carry the state through gates instead, which
lets them remember across long sequences (the adding problem shows the difference).
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from dlbasics.data import DataSpec
from dlbasics.models import stacked_layers
from dlbasics.models.base import MODELS, Model, require_sample_rank
from dlbasics.models.stacked_recurrent import stacked_recurrent
from dlbasics.schemas.models import RNNConfig

if TYPE_CHECKING:
    from dlbasics.config import Config

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}  # also the `cell` group's choices


class RNN(Model):
    """Recurrent layers over (batch, time, features) inputs, then a linear output layer.

    Many-to-one (``per_step=False``): the output is read from the final hidden state of the
    last layer (of both directions when bidirectional). Many-to-many (``per_step=True``): the
    output layer is applied at every time step.

    Parameters
    ----------
    n_inputs : int
        Features per time step.
    cell : {"rnn", "lstm", "gru"}
        The recurrent unit.
    hidden_size : int
        Units of the hidden state (per direction).
    num_layers : int
        Stacked recurrent layers; each reads the sequence of states of the one below.
    bidirectional : bool
        Add a layer reading each sequence from its end.
    dropout : float
        Dropout between stacked layers and on the features the output layer reads.
    n_outputs : int
        Output units.
    per_step : bool
        One output per time step instead of one per sequence.
    """

    def __init__(
        self,
        n_inputs: int,
        cell: str,
        hidden_size: int,
        num_layers: int,
        bidirectional: bool,
        dropout: float,
        n_outputs: int,
        per_step: bool,
    ):
        super().__init__()
        self.directions = 2 if bidirectional else 1
        self.per_step = per_step
        self.recurrent = CELLS[cell](
            n_inputs,
            hidden_size,
            num_layers,
            batch_first=True,
            # torch applies it between layers only, and warns when there is one layer
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=bidirectional,
        )
        if cell == "lstm":
            _open_forget_gates(self.recurrent)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.directions * hidden_size, n_outputs)

    def forward(self, x: Tensor) -> Tensor:
        states, final = self.recurrent(x)  # states: (batch, time, directions · hidden)
        if self.per_step:
            features = states
        else:
            final_h = final[0] if isinstance(final, tuple) else final  # LSTM's is (h, c)
            # (layers · directions, batch, hidden) → the last layer's directions, side by side.
            # Not states[:, -1]: there the backward direction has read one step only.
            features = final_h[-self.directions :].permute(1, 0, 2).flatten(1)
        return self.head(self.dropout(features))

    @staticmethod
    def forward_stacked(
        members: Sequence["RNN"],
        x: Tensor,
        generators: Sequence[torch.Generator],
        weights: stacked_layers.Weights = stacked_layers.stack_weights,
    ) -> Tensor:
        """On a GPU, the members' recurrences as batched cells (stacked_recurrent.py). On a CPU
        each member runs torch's own recurrent layer in turn, with its rows of ``weights``
        (``torch.func.functional_call``): its fused oneDNN kernel beats batched cells written
        with public ops (scripts/bench.py has the figures). Dropout then draws from the
        global generator, as a member alone does."""
        if x.device.type == "cpu":
            return stacked_layers.one_by_one(members, x, weights)
        return RNN.forward_batched(members, x, generators, weights)

    @staticmethod
    def forward_batched(
        members: Sequence["RNN"],
        x: Tensor,
        generators: Sequence[torch.Generator],
        weights: stacked_layers.Weights = stacked_layers.stack_weights,
    ) -> Tensor:
        """The members' forward passes as one batched computation, on any device."""
        first = members[0]
        recurrent = [m.recurrent for m in members]
        states, final_h = stacked_recurrent(recurrent, x, generators, weights)
        if first.per_step:
            features = states
        else:  # the last layer's final states of both directions, side by side (as forward)
            features = final_h[:, -first.directions :].permute(0, 2, 1, 3).flatten(2)
        dropped = stacked_layers.dropout(features, first.dropout.p, first.training, generators)
        return stacked_layers.linear([m.head for m in members], dropped, weights)


def _open_forget_gates(lstm: nn.LSTM) -> None:
    """Start every forget gate's bias at 1, so the cell state is kept rather than halved at
    each step until training learns what to forget (Gers et al., 2000; Jozefowicz et al.,
    2015): gradients reach far back from the first step of training. On the adding problem
    the validation loss then falls steadily through the first plateau instead of wandering,
    so early stopping does not end the run there."""
    hidden = lstm.hidden_size
    for name, bias in lstm.named_parameters():
        if name.startswith("bias_ih"):  # gates stacked as input, forget, cell, output
            with torch.no_grad():
                bias[hidden : 2 * hidden].fill_(1.0)


@MODELS.register("rnn", RNNConfig)
def build_rnn(cfg: "Config", spec: DataSpec) -> RNN:
    model = cfg.model
    require_sample_rank(
        spec,
        "rnn",
        2,
        needs="sequences, samples of shape (time steps, features)",
        use="a sequence data set (data=seq_digits, data=sine, data=adding)",
    )
    return RNN(
        spec.input_shape[1],
        model.cell,
        model.hidden_size,
        model.num_layers,
        model.bidirectional,
        cfg.reg.dropout,
        spec.n_outputs,
        spec.per_step,
    )
