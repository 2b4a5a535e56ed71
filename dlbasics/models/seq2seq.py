"""Encoder-decoder models for sequence-to-sequence tasks (docs/concepts.md §10): an encoder
reads the source tokens, a decoder writes the target tokens one at a time, each step reading
the tokens before it, until it writes <eos>.

``arch=transformer``: a Transformer encoder and decoder (Vaswani et al., 2017); the decoder's
cross-attention reads the encoder's outputs at every step. ``arch=recurrent``: recurrent
encoder and decoder (Sutskever et al., 2014), the decoder starting from the encoder's final
state, with ``attention=none`` (that state is all it knows of the source: a bottleneck that
long sequences overflow), ``dot`` (Luong et al., 2015) or ``additive`` (Bahdanau et al.,
2015): at each step, a mean of the encoder's states weighted by how well each matches the
decoder's state.

Training uses teacher forcing: the decoder reads the true previous target token, so every
step is learned at once (``forward(x, y)``; the Trainer passes the targets while training).
Validation, test and predict.py decode greedily: the most likely token at each step is what
the next step reads (``forward(x)``). Scores are (batch, target steps, vocabulary).
"""

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from dlbasics.data import DataSpec, DataSplits
from dlbasics.data.translation import BOS, PAD, decode
from dlbasics.errors import ConfigError
from dlbasics.models.attention import (
    DecoderLayer,
    EncoderLayer,
    PositionalEncoding,
    attention_image,
    causal_mask,
)
from dlbasics.models.base import MODELS, Batch, Model
from dlbasics.models.rnn import CELLS, _open_forget_gates
from dlbasics.models.transformer import attention_maps
from dlbasics.schemas.models import Seq2SeqConfig

if TYPE_CHECKING:
    from dlbasics.config import Config

MEASURED_TRAIN_SAMPLES = 1000  # train_token_acc, train_exact: on the first this many
DECODE_CHUNK = 1024  # samples decoded at once when measuring, to bound memory
SHOWN_SAMPLES = 4  # validation samples in the attention maps and the text panel


class Seq2Seq(Model):
    """What both architectures share: teacher forcing or greedy decoding, and the measures
    (token accuracy, exact match), attention maps and translations they report."""

    epoch_metric_names = ("train_token_acc", "val_token_acc", "train_exact", "val_exact")

    def training_inputs(self, batch: Batch) -> tuple[Tensor, ...]:
        """Teacher forcing: while training, the decoder reads the right previous token at
        every step (the targets); in eval mode forward(x) decodes alone."""
        return batch.x, batch.y

    def __init__(self, spec: DataSpec):
        super().__init__()
        self.target_length = spec.target_length
        self.vocabulary: tuple[str, ...] | None = None
        self.measured: dict[str, Tensor] = {}  # the targets of the splits measured per epoch

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Scores (batch, steps, vocabulary): teacher-forced on the targets ``y`` while
        training, else greedily decoded for the data's longest target."""
        x = x.long()  # check_output_shape sends blank float samples
        if y is not None and self.training:
            return self.teacher_forced(x, y)
        return self.greedy(x, self.target_length)

    def teacher_forced(self, x: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    def greedy(self, x: Tensor, steps: int) -> Tensor:
        raise NotImplementedError

    @staticmethod
    def decoder_inputs(y: Tensor) -> Tensor:
        """What the decoder reads at each step under teacher forcing: <bos>, then the targets
        shifted one step right (step t reads target t − 1)."""
        return torch.cat([torch.full_like(y[:, :1], BOS), y[:, :-1]], dim=1)

    # --- measures --------------------------------------------------------------------------

    def prepare(self, data: DataSplits) -> DataSplits:
        """Keeps the vocabulary (to write translations) and the training and validation
        targets (to measure token accuracy and exact match each epoch)."""
        if data.spec.task != "seq2seq":
            raise ConfigError(
                f"model=seq2seq needs a sequence-to-sequence data set (data=numbers, reverse, "
                f"sort), but data={data.spec.name} is a {data.spec.task} task."
            )
        self.vocabulary = data.vocabulary
        self.measured = {"train": data.y_train[:MEASURED_TRAIN_SAMPLES], "val": data.y_val}
        return data

    @torch.no_grad()
    def tokens(self, x: Tensor) -> Tensor:
        """Greedily decoded tokens (n, target steps), in chunks, in eval mode."""
        was_training = self.training
        self.eval()
        try:
            device = next(self.parameters()).device
            chunks = [self(c.to(device)).argmax(dim=-1) for c in x.split(DECODE_CHUNK)]
            return torch.cat(chunks)
        finally:
            self.train(was_training)

    def measure(self, x: Tensor, y: Tensor, split: str) -> dict[str, float]:
        """``<split>_token_acc``: the target tokens (not <pad>) decoded right;
        ``<split>_exact``: the sequences right at every one of them."""
        predicted = self.tokens(x)
        y = y.to(predicted.device)
        kept = y != PAD
        right = predicted == y
        token_acc = (right & kept).sum().item() / kept.sum().item()
        exact = (right | ~kept).all(dim=1).float().mean().item()
        return {f"{split}_token_acc": token_acc, f"{split}_exact": exact}

    def epoch_metrics(self, x_train: Tensor, x_val: Tensor) -> dict[str, float]:
        train = self.measure(x_train[:MEASURED_TRAIN_SAMPLES], self.measured["train"], "train")
        val = self.measure(x_val, self.measured["val"], "val")
        return {key: {**train, **val}[key] for key in self.epoch_metric_names}

    def final_metrics(self, data: DataSplits) -> dict[str, float]:
        return self.measure(data.x_test, data.y_test, "test")

    @torch.no_grad()
    def epoch_text(self, x_val: Tensor) -> dict[str, str]:
        """A Markdown table of the first validation samples: source, target, prediction."""
        if self.vocabulary is None:
            return {}
        x = x_val[:SHOWN_SAMPLES]
        y = self.measured["val"][:SHOWN_SAMPLES]
        rows = zip(
            decode(x, self.vocabulary),
            decode(y, self.vocabulary),
            decode(self.tokens(x), self.vocabulary),
            strict=True,
        )
        lines = ["| source | target | prediction |", "|---|---|---|"]
        lines += [f"| {s} | {t} | {p} |" for s, t, p in rows]
        return {"translations/val": "\n".join(lines)}


class TransformerSeq2Seq(Seq2Seq):
    """Transformer encoder and decoder, one token embedding shared by source and target (one
    vocabulary), and a linear layer from the decoder's outputs to the vocabulary's scores."""

    def __init__(self, cfg: Seq2SeqConfig, spec: DataSpec, dropout: float):
        super().__init__(spec)
        d = cfg.d_model
        self.scale = d**0.5  # embeddings scaled up to the size of the positional encodings
        self.embed = nn.Embedding(spec.n_outputs, d, padding_idx=PAD)
        longest = max(spec.input_shape[0], spec.target_length)
        self.positions = PositionalEncoding(cfg.positions, d, longest, dropout)
        self.encoder = nn.ModuleList(
            EncoderLayer(d, cfg.heads, cfg.ff, dropout, cfg.norm_first) for _ in range(cfg.layers)
        )
        self.decoder = nn.ModuleList(
            DecoderLayer(d, cfg.heads, cfg.ff, dropout, cfg.norm_first) for _ in range(cfg.layers)
        )
        # pre-LN leaves each stack's last sum unnormalised
        self.encoder_norm = nn.LayerNorm(d) if cfg.norm_first else nn.Identity()
        self.decoder_norm = nn.LayerNorm(d) if cfg.norm_first else nn.Identity()
        self.head = nn.Linear(d, spec.n_outputs)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The encoder's outputs (batch, source steps, d_model) and where the source is <pad>."""
        padding = x == PAD
        h = self.positions(self.embed(x) * self.scale)
        for layer in self.encoder:
            h = layer(h, padding)
        return self.encoder_norm(h), padding

    def decode(self, memory: Tensor, padding: Tensor, inputs: Tensor) -> Tensor:
        """Scores for every step of ``inputs`` (the tokens read so far), each step seeing only
        itself and the steps before it."""
        h = self.positions(self.embed(inputs) * self.scale)
        causal = causal_mask(inputs.shape[1], inputs.device)
        for layer in self.decoder:
            h = layer(h, memory, causal, padding)
        return self.head(self.decoder_norm(h))

    def teacher_forced(self, x: Tensor, y: Tensor) -> Tensor:
        memory, padding = self.encode(x)
        return self.decode(memory, padding, self.decoder_inputs(y))

    def greedy(self, x: Tensor, steps: int) -> Tensor:
        memory, padding = self.encode(x)
        inputs = torch.full((x.shape[0], 1), BOS, dtype=torch.long, device=x.device)
        for _ in range(steps):  # the whole prefix again at every step (no cache: simpler)
            scores = self.decode(memory, padding, inputs)
            inputs = torch.cat([inputs, scores[:, -1:].argmax(dim=-1)], dim=1)
        return scores

    @torch.no_grad()
    def epoch_images(self, x_val: Tensor) -> dict[str, Tensor]:
        """Per layer and head: the encoder's self-attention, and the decoder's attention over
        the source (rows: output steps; columns: source tokens)."""
        x = x_val[:SHOWN_SAMPLES]
        images = attention_maps(self, self.encoder, "self_attention", x, "encoder")
        images |= attention_maps(self, self.decoder, "cross_attention", x, "decoder_source")
        return images


class RecurrentSeq2Seq(Seq2Seq):
    """A recurrent encoder and decoder (the cell of ``model.cell``), with or without
    attention over the encoder's states."""

    def __init__(self, cfg: Seq2SeqConfig, spec: DataSpec, dropout: float):
        super().__init__(spec)
        hidden, vocabulary = cfg.hidden_size, spec.n_outputs
        self.embed = nn.Embedding(vocabulary, cfg.d_model, padding_idx=PAD)
        between = dropout if cfg.layers > 1 else 0.0  # torch warns for one layer
        self.encoder = CELLS[cfg.cell](
            cfg.d_model, hidden, cfg.layers, batch_first=True, dropout=between
        )
        self.decoder = CELLS[cfg.cell](
            cfg.d_model, hidden, cfg.layers, batch_first=True, dropout=between
        )
        if cfg.cell == "lstm":
            _open_forget_gates(self.encoder)
            _open_forget_gates(self.decoder)
        self.attention = cfg.attention
        if cfg.attention == "additive":  # score = v · tanh(W·encoder state + U·decoder state)
            self.keys = nn.Linear(hidden, hidden, bias=False)
            self.queries = nn.Linear(hidden, hidden)
            self.v = nn.Linear(hidden, 1, bias=False)
        if cfg.attention != "none":  # the decoder's state and the context, into one
            self.combine = nn.Linear(2 * hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, vocabulary)
        self.keep_weights = False
        self.weights: Tensor | None = None  # (batch, target steps, source steps), when kept

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The encoder's states (batch, source steps, hidden), its final state (the decoder's
        first), and where the source is <pad>. Each source is read up to its own length only:
        <pad> steps would change the final state."""
        padding = x == PAD
        lengths = (~padding).sum(dim=1).clamp(min=1).cpu()
        packed = pack_padded_sequence(
            self.dropout(self.embed(x)), lengths, batch_first=True, enforce_sorted=False
        )
        states, final = self.encoder(packed)
        states, _ = pad_packed_sequence(states, batch_first=True, total_length=x.shape[1])
        return states, final, padding

    def attend(self, queries: Tensor, states: Tensor, padding: Tensor) -> Tensor:
        """The decoder's outputs (batch, steps, hidden) with the source's context: for each
        step, the mean of the encoder's ``states`` weighted by softmax(scores)."""
        if self.attention == "none":
            return queries
        if self.attention == "dot":  # Luong: how well a state matches the decoder's
            scores = queries @ states.transpose(1, 2)
        else:  # Bahdanau: a one-layer network scores each pair
            pairs = self.keys(states).unsqueeze(1) + self.queries(queries).unsqueeze(2)
            scores = self.v(torch.tanh(pairs)).squeeze(-1)
        scores = scores.masked_fill(padding.unsqueeze(1), float("-inf"))
        weights = F.softmax(scores, dim=-1)  # (batch, steps, source steps)
        if self.keep_weights:
            self.weights = weights.detach()
        context = weights @ states
        return torch.tanh(self.combine(torch.cat([queries, context], dim=-1)))

    def step_scores(self, outputs: Tensor, states: Tensor, padding: Tensor) -> Tensor:
        return self.head(self.dropout(self.attend(outputs, states, padding)))

    def teacher_forced(self, x: Tensor, y: Tensor) -> Tensor:
        states, final, padding = self.encode(x)
        outputs, _ = self.decoder(self.dropout(self.embed(self.decoder_inputs(y))), final)
        return self.step_scores(outputs, states, padding)

    def greedy(self, x: Tensor, steps: int) -> Tensor:
        states, state, padding = self.encode(x)
        token = torch.full((x.shape[0], 1), BOS, dtype=torch.long, device=x.device)
        scores, weights = [], []
        for _ in range(steps):
            output, state = self.decoder(self.embed(token), state)
            scores.append(self.step_scores(output, states, padding))
            weights.append(self.weights)
            token = scores[-1].argmax(dim=-1)
        if self.keep_weights and self.attention != "none":
            self.weights = torch.cat(weights, dim=1)
        return torch.cat(scores, dim=1)

    @torch.no_grad()
    def epoch_images(self, x_val: Tensor) -> dict[str, Tensor]:
        """The decoder's attention over the source (rows: output steps; columns: source
        tokens), for the first validation samples."""
        if self.attention == "none":
            return {}
        was_training = self.training
        self.eval()
        self.keep_weights = True
        try:
            self(x_val[:SHOWN_SAMPLES])
            return {"attention/decoder_source": attention_image(self.weights)}
        finally:
            self.keep_weights, self.weights = False, None
            self.train(was_training)


@MODELS.register("seq2seq", Seq2SeqConfig)
def build_seq2seq(cfg: "Config", spec: DataSpec) -> Seq2Seq:
    if spec.task != "seq2seq":
        raise ConfigError(
            f"model=seq2seq needs a sequence-to-sequence data set (data=numbers, reverse, "
            f"sort), but data={spec.name} is a {spec.task} task."
        )
    build = TransformerSeq2Seq if cfg.model.arch == "transformer" else RecurrentSeq2Seq
    return build(cfg.model, spec, cfg.reg.dropout)
