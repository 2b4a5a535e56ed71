"""Sequence-to-sequence data sets (docs/concepts.md §10): a sequence of tokens in, another
out, of a length of its own, as in machine translation.

- ``numbers``: a number written as digits, translated into English words
  (``1 2 5`` → ``one hundred twenty five``).
- ``reverse``: a string of digits, reversed (``3 1 4`` → ``4 1 3``).
- ``sort``: a string of digits, sorted (``3 1 4`` → ``1 3 4``).

Samples are token indices into one vocabulary shared by sources and targets, whose first
three tokens are ``<pad>`` (fills a sequence up to the longest), ``<bos>`` (what the decoder
reads before the first target token) and ``<eos>`` (ends every target). Inputs are (n, S)
source tokens, targets (n, T) target tokens ending in <eos>; both padded with <pad>. No
source appears in two splits: each is drawn once.
"""

import torch
from torch import Tensor

from dlbasics.data.core import DATASETS, DataSpec, DataSplits, SplitDataConfig, split_indices
from dlbasics.errors import ConfigError
from dlbasics.schemas.data import DigitStringDataConfig, NumbersDataConfig

PAD, BOS, EOS = 0, 1, 2  # the indices of the special tokens
SPECIALS = ("<pad>", "<bos>", "<eos>")
DIGITS = tuple("0123456789")
ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
TEENS = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen")  # fmt: skip
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
WORDS = (*ONES, *TEENS, *TENS[2:], "hundred", "thousand")


def number_words(n: int) -> list[str]:
    """``n`` (0 to 999,999) in English words: 125 → one hundred twenty five."""
    if n == 0:
        return ["zero"]
    thousands, rest = divmod(n, 1000)
    words = _below_thousand(thousands) + ["thousand"] if thousands else []
    return words + _below_thousand(rest)


def _below_thousand(n: int) -> list[str]:
    hundreds, rest = divmod(n, 100)
    words = [ONES[hundreds], "hundred"] if hundreds else []
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words += [TENS[tens]] + ([ONES[ones]] if ones else [])
    elif rest >= 10:
        words.append(TEENS[rest - 10])
    elif rest:
        words.append(ONES[rest])
    return words


def encode(sequences: list[list[str]], vocabulary: tuple[str, ...], eos: bool) -> Tensor:
    """Token sequences as a (n, longest) tensor of indices padded with <pad>; ``eos`` ends
    each with <eos> (targets)."""
    index = {token: i for i, token in enumerate(vocabulary)}
    rows = [[index[t] for t in tokens] + ([EOS] if eos else []) for tokens in sequences]
    out = torch.full((len(rows), max(map(len, rows))), PAD, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row)
    return out


def decode(tokens: Tensor, vocabulary: tuple[str, ...]) -> list[str]:
    """Index sequences (n, T) as text, up to each one's first <eos>; <pad> and <bos> left out."""
    texts = []
    for row in tokens.tolist():
        words = []
        for i in row:
            if i == EOS:
                break
            if i not in (PAD, BOS):
                words.append(vocabulary[i])
        texts.append(" ".join(words))
    return texts


def seq2seq_splits(
    name: str,
    sources: list[list[str]],
    targets: list[list[str]],
    vocabulary: tuple[str, ...],
    cfg: SplitDataConfig,
) -> DataSplits:
    """Token sequences as DataSplits of a seq2seq task: a random split by ``cfg.seed``."""
    x = encode(sources, vocabulary, eos=False)
    y = encode(targets, vocabulary, eos=True)
    spec = DataSpec(
        name,
        "seq2seq",
        (x.shape[1],),
        len(vocabulary),
        len(vocabulary),
        per_step=True,
        target_length=y.shape[1],
    )
    train, val, test = split_indices(name, y, cfg, stratified=False)
    return DataSplits(
        spec,
        *(x[train], y[train], x[val], y[val], x[test], y[test]),
        feature_names=tuple(f"token_{i}" for i in range(1, x.shape[1] + 1)),
        vocabulary=vocabulary,
    )


@DATASETS.register("numbers", NumbersDataConfig)
def _numbers(cfg: NumbersDataConfig) -> DataSplits:
    numbers = range(cfg.max_value + 1)
    sources = [list(str(n)) for n in numbers]
    targets = [number_words(n) for n in numbers]
    return seq2seq_splits(cfg.name, sources, targets, (*SPECIALS, *DIGITS, *WORDS), cfg)


def digit_strings(n: int, length: int, seed: int, name: str) -> Tensor:
    """``n`` different random strings of ``length`` digits, (n, length), in a random order."""
    if 10**length < 2 * n:  # drawing n different ones would take long, or never end
        raise ConfigError(
            f"data.n_samples={n}: data={name} at data.length={length} has only {10**length} "
            f"different strings; ask for at most {10**length // 2}, or a longer data.length."
        )
    g = torch.Generator().manual_seed(seed)
    drawn = torch.randint(0, 10, (2 * n, length), generator=g)
    unique = torch.unique(drawn, dim=0)  # sorted: shuffled below
    while len(unique) < n:  # short strings: draw more
        more = torch.randint(0, 10, (2 * n, length), generator=g)
        unique = torch.unique(torch.cat([unique, more]), dim=0)
    return unique[torch.randperm(len(unique), generator=g)[:n]]


def _digit_task(cfg: DigitStringDataConfig, target: Tensor) -> DataSplits:
    x = digit_strings(cfg.n_samples, cfg.length, cfg.seed, cfg.name)
    as_tokens = [[DIGITS[d] for d in row] for row in x.tolist()]
    out = [[DIGITS[d] for d in row] for row in target(x).tolist()]
    return seq2seq_splits(cfg.name, as_tokens, out, (*SPECIALS, *DIGITS), cfg)


@DATASETS.register("reverse", DigitStringDataConfig)
def _reverse(cfg: DigitStringDataConfig) -> DataSplits:
    return _digit_task(cfg, lambda x: x.flip(1))


@DATASETS.register("sort", DigitStringDataConfig)
def _sort(cfg: DigitStringDataConfig) -> DataSplits:
    return _digit_task(cfg, lambda x: x.sort(dim=1).values)
