"""The restricted Boltzmann machine (docs/concepts.md §9), trained by contrastive divergence.

Visible units v and hidden units h, connected only across the two layers, with the energy
E(v, h) = −b·v − c·h − hᵀWv (Bernoulli visible units) or ½‖v − b‖² − c·h − hᵀWv (Gaussian
visible units of unit variance). Given one layer, the units of the other are independent:
P(h = 1 | v) = σ(Wv + c) and P(v = 1 | h) = σ(Wᵀh + b) (Gaussian: v ~ Normal(Wᵀh + b, 1)).

The log-likelihood gradient is ⟨v hᵀ⟩_data − ⟨v hᵀ⟩_model. Contrastive divergence (CD-k)
estimates the second term from a Gibbs chain of k steps started at the batch; persistent CD
keeps its chains from one batch to the next instead, so they stray further from the data
and the estimate comes closer to the model's own distribution. The estimate is written into
``.grad`` and the optimizer of ``optim`` applies it (momentum, weight decay included).

Learning needs no labels: the Trainer sees a reconstruction task whose targets are the inputs
(``prepare``), so its loss is the reconstruction error (mean squared difference per visible
unit between the data and its mean-field reconstruction). Each epoch adds the
pseudo-log-likelihood and the free energies of training and validation data.
"""

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlbasics.data import DataSpec, DataSplits
from dlbasics.errors import ConfigError
from dlbasics.images import image_shape, tile
from dlbasics.losses import Objective
from dlbasics.models.base import MODELS, Model
from dlbasics.schemas.models import RBMConfig

if TYPE_CHECKING:
    from dlbasics.config import Config

SAMPLE_CHAINS = 64  # Gibbs chains drawn for TensorBoard's samples image, from validation inputs
MAX_FILTERS = 256  # filters shown, at most
# Completing a partial image (docs/concepts.md §9.4): the lower half of each validation image
# hidden, the upper half clamped, the hidden half filled by the mean of a Gibbs chain's
# visible means over CHAIN_STEPS steps, after the first COMPLETION_BURN_IN (forgotten: where
# the chain started). The samples image shows where free chains are after CHAIN_STEPS steps.
CHAIN_STEPS = 200
COMPLETION_BURN_IN = 20
COMPLETION_SHOWN = 16  # validation images in TensorBoard's completion image
HIDDEN_SHOWN_AS = 0.5  # the hidden half of the masked input, drawn grey
# Pseudo-log-likelihood and sample images use a generator of their own, seeded the same every
# epoch: the same units are flipped each time, so the curve moves only with the model, and
# measuring draws nothing from the RNG that training uses.
MEASURE_SEED = 0
# Visible biases start at log(p / (1 − p)) for the fraction p of training inputs that are on;
# p is kept this far from 0 and 1 so that pixels that are always off get a finite bias.
BIAS_P_MIN = 1e-3


class RBM(Model):
    """A restricted Boltzmann machine with ``n_visible`` visible and ``n_hidden`` hidden units.

    ``k``: Gibbs steps per update; ``pcd``: persistent chains; ``visible``: "bernoulli"
    (inputs in [0, 1]) or "gaussian" (standardised real values); ``init_std``: standard
    deviation of the initial weights; ``shape``: (channels, height, width) when the inputs are
    images, for TensorBoard's pictures of the filters and samples.
    """

    learns_by_backprop = False
    training_step = Model.learning_rule_step  # contrastive divergence, in write_gradients
    resizable_buffers = ("chains",)
    # What epoch_metrics() can report (Gaussian visible units have no pseudo-likelihood).
    epoch_metric_names = (
        *("train_pll", "val_pll"),
        *("train_free_energy", "val_free_energy", "gap_free_energy"),
    )

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        k: int = 1,
        pcd: bool = False,
        visible: str = "bernoulli",
        init_std: float = 0.01,
        shape: tuple[int, int, int] | None = None,
    ):
        super().__init__()
        self.k, self.pcd, self.shape = k, pcd, shape
        self.bernoulli = visible == "bernoulli"
        self.weight = nn.Parameter(torch.randn(n_hidden, n_visible) * init_std)
        self.hidden_bias = nn.Parameter(torch.zeros(n_hidden))
        self.visible_bias = nn.Parameter(torch.zeros(n_visible))  # set from the data: prepare()
        # PCD's chains: their visible states, carried from one batch to the next. A buffer, so
        # checkpoints hold them and a resumed run goes on with them; filled at the first batch
        # (one chain per sample of the batch).
        self.register_buffer("chains", torch.zeros(0, n_visible))
        # The reconstruction is scored as the visible units' means: σ(scores) or the scores.
        self.output_act = "sigmoid" if self.bernoulli else "identity"
        if not self.bernoulli:
            self.epoch_metric_names = tuple(n for n in self.epoch_metric_names if "pll" not in n)

    # --- the two conditionals --------------------------------------------------------------

    def hidden_probs(self, v: Tensor) -> Tensor:
        """P(h = 1 | v) for each hidden unit: the features the RBM has learned."""
        return torch.sigmoid(F.linear(v, self.weight, self.hidden_bias))

    def visible_scores(self, h: Tensor) -> Tensor:
        return F.linear(h, self.weight.t(), self.visible_bias)

    def visible_mean(self, h: Tensor) -> Tensor:
        scores = self.visible_scores(h)
        return torch.sigmoid(scores) if self.bernoulli else scores

    def sample_visible(self, mean: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Visible units drawn around their means: 0/1 (Bernoulli units) or mean + N(0, 1)
        (Gaussian); from ``generator``, a measuring chain's own, when one is given."""
        if self.bernoulli:
            return bernoulli(mean) if generator is None else uniform_draw(mean, generator)
        return mean + torch.randn(mean.shape, generator=generator, device=mean.device)

    def gibbs(
        self,
        v: Tensor,
        steps: int,
        first_hidden: Tensor | None = None,
        sample_last: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """``steps`` rounds of v → h → v, sampling every unit; returns the last visible means
        and, with ``sample_last`` (a chain that goes on from there), samples. ``first_hidden``:
        P(h = 1 | v), when the caller has it already."""
        hidden = self.hidden_probs(v) if first_hidden is None else first_hidden
        for step in range(steps):
            if step:
                hidden = self.hidden_probs(v)
            mean = self.visible_mean(bernoulli(hidden))
            if step < steps - 1 or sample_last:
                v = self.sample_visible(mean)
        return mean, v if sample_last else None

    # --- what the Trainer calls --------------------------------------------------------------

    def forward(self, x: Tensor) -> Tensor:
        """The mean-field reconstruction's scores (before the visible units' activation)."""
        return self.visible_scores(self.hidden_probs(x.flatten(1)))

    @torch.no_grad()
    def transform(self, x: Tensor) -> Tensor:
        """Inputs as hidden-unit probabilities P(h = 1 | x): the RBM as a feature extractor."""
        return self.hidden_probs(x.flatten(1))

    def write_gradients(self, x: Tensor, y: Tensor, objective: Objective) -> tuple[Tensor, Tensor]:
        """Contrastive divergence's estimate of the negative log-likelihood gradient, plus the
        gradient of any reg.l1/reg.l2 penalty on the weights."""
        loss, scores = self._contrastive_divergence(x.flatten(1), y, objective)
        if objective.has_penalty:
            objective.penalty(self).backward()  # added to the .grad written above
        return loss, scores

    @torch.no_grad()
    def _contrastive_divergence(
        self, v_data: Tensor, y: Tensor, objective: Objective
    ) -> tuple[Tensor, Tensor]:
        """Write CD-k's (or PCD-k's) estimate of the gradient into ``.grad``."""
        h_data = self.hidden_probs(v_data)
        if self.pcd:
            chains = self.chains
            if chains.shape[0] == 0:  # the first batch: chains start at the data
                chains = v_data.clone()
            v_model, self.chains = self.gibbs(chains, self.k, sample_last=True)
        else:
            v_model, _ = self.gibbs(v_data, self.k, first_hidden=h_data)
        # Statistics from probabilities rather than samples: less noise, same expectation.
        h_model = self.hidden_probs(v_model)
        # −(⟨v hᵀ⟩_data − ⟨v hᵀ⟩_model) as a gradient, so that optimizers descend on it.
        n, m = v_data.shape[0], v_model.shape[0]
        self.weight.grad = h_model.T @ v_model / m - h_data.T @ v_data / n
        self.hidden_bias.grad = h_model.mean(dim=0) - h_data.mean(dim=0)
        self.visible_bias.grad = v_model.mean(dim=0) - v_data.mean(dim=0)
        scores = self.visible_scores(h_data)
        return objective(scores, y), scores

    def fitted_spec(self, spec: DataSpec) -> DataSpec:
        return reconstruction_spec(spec.name, self.weight.shape[1])

    def prepare(self, data: DataSplits) -> DataSplits:
        """Check that the inputs suit the visible units, set the visible biases from the
        training inputs (Hinton's practical guide, §8), and return the reconstruction task
        over every training input, labelled or not."""
        x_train = data.every_training_input().flatten(1)
        if self.bernoulli:
            check_unit_range(
                x_train, data.spec.name, "rbm", " (or model.visible=gaussian for real values)"
            )
        with torch.no_grad():
            mean = x_train.mean(dim=0).to(self.visible_bias.device)
            if self.bernoulli:
                mean = torch.logit(mean.clamp(BIAS_P_MIN, 1 - BIAS_P_MIN))
            self.visible_bias.copy_(mean)
        return inputs_as_targets(data.spec.name, x_train, data.x_val, data.x_test)

    # --- measures and pictures -----------------------------------------------------------------

    def free_energy(self, v: Tensor) -> Tensor:
        """F(v) = −log Σ_h exp(−E(v, h)), per sample: low where the model puts its mass."""
        if self.bernoulli:
            visible = -v @ self.visible_bias
        else:
            visible = 0.5 * (v - self.visible_bias).square().sum(dim=1)
        return visible - F.softplus(F.linear(v, self.weight, self.hidden_bias)).sum(dim=1)

    def pseudo_log_likelihood(
        self, v: Tensor, generator: torch.Generator | None = None, flip: Tensor | None = None
    ) -> Tensor:
        """scikit-learn's estimator (``BernoulliRBM.score_samples``), per sample: flip one
        visible unit i, drawn at random (or given by ``flip``, one index per sample), and
        take n_visible · log σ(F(v with unit i flipped) − F(v))."""
        v = v.flatten(1)
        rows = torch.arange(len(v), device=v.device)
        if flip is None:
            flip = torch.randint(v.shape[1], (len(v),), generator=generator, device=v.device)
        flipped = v.clone()
        flipped[rows, flip] = 1 - flipped[rows, flip]
        return v.shape[1] * F.logsigmoid(self.free_energy(flipped) - self.free_energy(v))

    @torch.no_grad()
    def epoch_metrics(self, x_train: Tensor, x_val: Tensor) -> dict[str, float]:
        # A training subset as large as the validation set (Hinton's guide, §6): the gap in
        # mean free energy then compares like with like; it grows as the RBM overfits.
        train, val = x_train[: len(x_val)].flatten(1), x_val.flatten(1)
        measures = {
            "train_free_energy": self.free_energy(train).mean(),
            "val_free_energy": self.free_energy(val).mean(),
        }
        measures["gap_free_energy"] = measures["val_free_energy"] - measures["train_free_energy"]
        if self.bernoulli:
            for name, v in (("train_pll", train), ("val_pll", val)):
                measures[name] = self.pseudo_log_likelihood(v, self._measure_rng(v)).mean()
        values = torch.stack(list(measures.values())).tolist()  # one host sync
        named = dict(zip(measures, values, strict=True))
        return {name: named[name] for name in self.epoch_metric_names}

    @torch.no_grad()
    def epoch_images(self, x_val: Tensor) -> dict[str, Tensor]:
        """Each hidden unit's weights as a small image (its filter), where Gibbs chains
        started at validation inputs have wandered after SAMPLE_STEPS steps, and validation
        images completed from their upper half (``completion_image``)."""
        if self.shape is None:
            return {}
        starts = x_val[:SAMPLE_CHAINS].flatten(1).to(self.weight.device)
        shown = x_val[:COMPLETION_SHOWN].flatten(1).to(self.weight.device)
        hidden = self.hidden_half().expand_as(shown)
        # One chain for both pictures, a step of 80 rows costing what one of 64 does: the
        # samples' rows run free from their inputs, the completions' keep their upper half.
        free = torch.cat([torch.ones_like(starts, dtype=torch.bool), hidden])
        start = torch.cat([starts, self._completion_start(shown, hidden)])
        last, averaged = self.clamped_chain(start, free)
        samples, completed = last[: len(starts)], averaged[len(starts) :]
        return {
            "rbm/filters": tile(self.weight[:MAX_FILTERS], self.shape, normalise_each=True),
            "rbm/samples": tile(samples, self.shape, normalise_each=not self.bernoulli),
            "rbm/completion": self.completion_image(shown, completed),
        }

    # --- completing a partial image ------------------------------------------------------------

    def hidden_half(self) -> Tensor:
        """Which visible units the completion hides: the lower half of the image's rows, in
        every channel (True = hidden). Only for image inputs (``shape``)."""
        assert self.shape is not None
        channels, height, width = self.shape
        lower = torch.arange(height, device=self.weight.device) >= height // 2
        return lower.view(1, height, 1).expand(channels, height, width).flatten()

    @torch.no_grad()
    def complete(self, x: Tensor, hidden: Tensor) -> Tensor:
        """``x`` (n, n_visible) with its ``hidden`` units filled in by the model: a Gibbs
        chain with every other unit clamped to its value in ``x`` samples the hidden units
        from P(v_hidden | v_known); the fill is the mean of the chain's visible means E[v | h]
        after COMPLETION_BURN_IN steps, which estimates E[v_hidden | v_known], the fill with
        the least expected squared error. (One sample, or the means of one step, commit to a
        single digit: when it is the wrong one, the error is larger than the blur of the
        mean image.) The hidden units start at the model's means with no hidden unit on,
        σ(b) (the training mean until b learns), and the chain draws from a generator of its
        own, so measuring leaves the training RNG alone."""
        x = x.flatten(1)
        hidden = hidden.expand_as(x)
        _, averaged = self.clamped_chain(self._completion_start(x, hidden), hidden)
        return averaged

    def _completion_start(self, x: Tensor, hidden: Tensor) -> Tensor:
        """``x`` with its ``hidden`` units at the model's means with no hidden unit on."""
        no_feature = torch.zeros(1, self.weight.shape[0], device=x.device)
        return torch.where(hidden, self.visible_mean(no_feature), x)

    @torch.no_grad()
    def clamped_chain(self, start: Tensor, free: Tensor) -> tuple[Tensor, Tensor]:
        """A Gibbs chain of CHAIN_STEPS steps from ``start`` in which only the ``free`` visible
        units change (the others stay as in ``start``), drawn from a generator of its own.
        Returns the last step's visible means, and the free units' mean of the visible means
        after COMPLETION_BURN_IN steps (the others as in ``start``). Its draws compare uniform
        numbers with the probabilities: what torch.bernoulli draws, two to three times faster
        on a CPU (training keeps torch.bernoulli, so that its runs stay as they were)."""
        generator = self._measure_rng(start)
        v, total = start, torch.zeros_like(start)
        for step in range(CHAIN_STEPS):
            mean = self.visible_mean(uniform_draw(self.hidden_probs(v), generator))
            v = torch.where(free, self.sample_visible(mean, generator), start)
            if step >= COMPLETION_BURN_IN:
                total += mean
        averaged = torch.where(free, total / (CHAIN_STEPS - COMPLETION_BURN_IN), start)
        return mean, averaged

    def completion_image(self, x: Tensor, completed: Tensor) -> Tensor:
        """Three rows of the images ``x``: the originals, the upper halves the model is given
        (the hidden half grey), and their ``completed`` forms."""
        assert self.shape is not None
        masked = x.masked_fill(self.hidden_half(), HIDDEN_SHOWN_AS)
        rows = torch.cat([x, masked, completed])
        return tile(rows, self.shape, normalise_each=not self.bernoulli, columns=len(x))

    @torch.no_grad()
    def completion_metrics(self, x_val: Tensor, x_train: Tensor) -> dict[str, float]:
        """How well the model fills in the hidden lower half of the validation images: the
        mean squared error on the hidden units (``completion_error``, in the inputs' scale:
        [0, 1] for Bernoulli units), and that of filling them with the training inputs' mean
        image (``completion_baseline_error``), which a model that learnt anything beats."""
        if self.shape is None:
            return {}
        device = self.weight.device
        x, mean = x_val.flatten(1).to(device), x_train.flatten(1).mean(dim=0).to(device)
        hidden = self.hidden_half()
        error = (self.complete(x, hidden) - x)[:, hidden].square().mean()
        baseline = (mean - x)[:, hidden].square().mean()
        return {"completion_error": error.item(), "completion_baseline_error": baseline.item()}

    def final_metrics(self, data: DataSplits) -> dict[str, float]:
        return self.completion_metrics(data.x_val, data.every_training_input())

    def _measure_rng(self, like: Tensor) -> torch.Generator:
        return torch.Generator(device=like.device).manual_seed(MEASURE_SEED)


def uniform_draw(p: Tensor, generator: torch.Generator) -> Tensor:
    """0/1 samples with P(1) = p, as ``bernoulli``: a uniform number below p is a 1."""
    uniform = torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype)
    return (uniform < p.nan_to_num(0.0)).to(p.dtype)


def bernoulli(p: Tensor) -> Tensor:
    """0/1 samples with P(1) = p. A diverged RBM's probabilities are NaN, which torch.bernoulli
    refuses: drawn as 0 here, the run goes on to report the divergence as any other."""
    return torch.bernoulli(p.nan_to_num(0.0))


def check_unit_range(x: Tensor, data_name: str, model: str, alternative: str = "") -> None:
    """Bernoulli visible units are probabilities: refuse inputs outside [0, 1]."""
    low, high = x.min().item(), x.max().item()
    if low < 0 or high > 1:
        raise ConfigError(
            f"model={model} has Bernoulli visible units, whose inputs must lie in [0, 1], but "
            f"data={data_name} has values from {low:.3g} to {high:.3g} (standardised?); set "
            f"data.unit_range=true (or null, as the model needs) to scale every feature to "
            f"[0, 1]{alternative}."
        )


def inputs_as_targets(name: str, x_train: Tensor, x_val: Tensor, x_test: Tensor) -> DataSplits:
    """Splits whose targets are the inputs (flattened): learning without labels as a
    regression task whose loss is the reconstruction error."""
    x_train, x_val, x_test = (x.flatten(1) for x in (x_train, x_val, x_test))
    spec = reconstruction_spec(name, x_train.shape[1])
    return DataSplits(spec, x_train, x_train, x_val, x_val, x_test, x_test)


def reconstruction_spec(name: str, n_visible: int) -> DataSpec:
    """Reconstructing ``n_visible`` inputs: a regression task with as many outputs."""
    return DataSpec(name, "regression", (n_visible,), n_visible)


@MODELS.register("rbm", RBMConfig)
def build_rbm(cfg: "Config", spec: DataSpec) -> RBM:
    if cfg.loss.name not in ("auto", "mse"):
        raise ConfigError(
            f"loss={cfg.loss.name}: model=rbm learns by contrastive divergence, not from a loss; "
            "the loss it reports is the reconstruction error (mse); use loss=auto."
        )
    if cfg.model.output_act != "auto":
        raise ConfigError(
            f"model.output_act={cfg.model.output_act}: the RBM's output is the reconstruction "
            "of its input, by its visible units (model.visible); use model.output_act=auto."
        )
    if cfg.reg.dropout:
        raise ConfigError(
            "reg.dropout does not apply to contrastive divergence; with model=rbm use reg=l2 "
            "(weight decay on the weights) or optim.weight_decay."
        )
    m = cfg.model
    shape = image_shape(spec.input_shape)
    return RBM(spec.n_features, m.n_hidden, m.k, m.pcd, m.visible, m.init_std, shape)
