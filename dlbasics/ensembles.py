"""Ensembles (docs/concepts.md §7.5): many models whose combined answer is better than each.

``ensemble=voting|bagging|boosting|stacking``, ``ensemble.members=K``, for every supervised
model. Members are models of the chosen family, member k built and shuffled with seed
``trainer.seed + k`` (member 0 is the model a plain run trains); they differ by how they are
trained and combined:

- **voting**: K members differing by seed only; soft voting (the mean of their probabilities,
  or values for regression) or ``ensemble.vote=hard`` (the majority's class).
- **bagging** (bootstrap aggregating): each member trains on its own bootstrap sample of the
  training split (n draws with replacement); the samples a member never saw (its out-of-bag
  samples) give an estimate of the accuracy on new data without a validation split.
- **boosting** (AdaBoost; SAMME for several classes): members trained one after another, each
  with sample weights in its loss that grow on the samples the ones before got wrong; member m
  votes with weight α_m = log((1 − err_m)/err_m) + log(C − 1).
- **stacking**: a meta-learner (a logistic-regression layer) learns to combine the members'
  probabilities, from out-of-fold predictions: the training split cut into k folds, members
  trained on k − 1 of them predict the one left out.

Voting and bagging train their K members as one stacked computation (models/stacked.py), as do
stacking's fits; boosting's members depend on each other, so they train one by one.
"""

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dlbasics.checkpoint import save_checkpoint
from dlbasics.data import DataSpec, DataSplits
from dlbasics.early_stopping import EarlyStoppingConfig
from dlbasics.errors import ConfigError
from dlbasics.losses import Objective
from dlbasics.models import Model, build_model
from dlbasics.models.mlp import MLP
from dlbasics.models.stacked import (
    MemberObjective,
    MemberSettings,
    StackedModel,
    hard_vote,
    soft_vote,
)
from dlbasics.optim import AdamConfig

# The ensembles' schemas and registry, kept importable from here (dlbasics/schemas/ensembles.py).
from dlbasics.schemas.ensembles import (  # noqa: F401
    ENSEMBLES,
    BaggingConfig,
    BoostingConfig,
    EnsembleConfig,
    StackingConfig,
    VotingConfig,
)
from dlbasics.trainer import FitResult, Trainer, TrainerConfig

if TYPE_CHECKING:
    from dlbasics.config import Config

log = logging.getLogger("dlbasics")


# Stacking's meta-learner: a logistic regression on the members' probabilities, fitted on the
# whole out-of-fold set at each step (it is small), stopped early on the validation loss.
META_OPTIM = AdamConfig(lr=0.01)


def meta_trainer_config(cfg: "Config") -> TrainerConfig:
    return TrainerConfig(
        mode="batch",
        batch_size=None,
        epochs=cfg.ensemble.meta_epochs,
        device=cfg.trainer.device,
        seed=cfg.trainer.seed,
        threads=cfg.trainer.threads,
        checkpoints=False,
        early_stopping=EarlyStoppingConfig(monitor="val_loss", patience=20),
    )


class Ensemble(Model):
    """An ensemble as one model: ``forward(x)`` runs every member on ``x`` (batch, …) and
    returns the combination's scores, which the objective reads as a single model's.

    Attributes
    ----------
    stacked : StackedModel, the K members.
    alphas : (K,) tensor, boosting's vote weights (zeros for the others).
    meta : MLP or None, stacking's meta-learner on the members' probabilities.
    """

    resumable = False  # set per kind by build_ensemble

    def __init__(self, stacked: StackedModel, kind: str, vote: str, meta: MLP | None = None):
        super().__init__()
        self.stacked = stacked
        self.kind, self.vote_kind = kind, vote
        self.output_act = stacked.output_act
        self.register_buffer("alphas", torch.zeros(stacked.size))
        self.meta = meta
        self.objective: Objective | None = None  # the members' objective, set by the run

    def combination_state(self) -> dict[str, Any]:
        """What combines the members, for checkpoints: boosting's α, stacking's meta-learner."""
        return {"alphas": self.alphas, "meta": self.meta.state_dict() if self.meta else None}

    def load_checkpoint(self, payload: dict[str, Any]) -> None:
        """The members' weights and the combination of a checkpoint of this ensemble."""
        self.stacked.load_state_dict(payload["model"])
        combination = payload.get("ensemble")
        if combination:
            self.alphas.copy_(combination["alphas"])
            if self.meta is not None:
                self.meta.load_state_dict(combination["meta"])

    def forward(self, x: Tensor) -> Tensor:
        scores = self.stacked(self.stacked.inputs(x))  # (K, batch, outputs)
        return self.combine(scores)

    def combine(self, scores: Tensor) -> Tensor:
        """The ensemble's scores from its members' (K, batch, …)."""
        objective = self.objective
        assert objective is not None, "the run sets the objective before using the ensemble"
        if self.kind == "boosting":
            return weighted_vote(objective, scores, self.alphas)
        if self.kind == "stacking":
            assert self.meta is not None
            return self.meta(member_features(objective, scores))
        return (hard_vote if self.vote_kind == "hard" else soft_vote)(objective, scores)


def weighted_vote(objective: Objective, scores: Tensor, alphas: Tensor) -> Tensor:
    """AdaBoost's answer: each class's share of the members' votes, member m's weighing α_m,
    as scores (log-shares; a binary task's as the logit of class 1's share)."""
    used = alphas > 0  # members boosting did not add have α = 0
    votes = objective.predict(scores[used].flatten(0, 1)).unflatten(0, (int(used.sum()), -1))
    weights = (alphas[used] / alphas[used].sum()).to(scores.dtype)
    if objective.task == "binary":
        share = (weights.view(-1, 1, 1) * votes).sum(dim=0)
        return torch.logit(share.clamp(1e-7, 1 - 1e-7))
    one_hot = F.one_hot(votes, scores.shape[-1]).to(scores.dtype)
    share = (weights.view(-1, 1, 1) * one_hot).sum(dim=0)
    return share.clamp_min(1e-12).log()


def member_features(objective: Objective, scores: Tensor) -> Tensor:
    """Stacking's meta-features: the members' probabilities side by side, (batch, K·C)."""
    return objective.activate(scores).permute(1, 0, 2).flatten(1)


def build_ensemble(cfg: "Config", spec: DataSpec) -> Ensemble:
    """K members of ``model.name`` (member k initialised with seed trainer.seed + k), as an
    Ensemble of kind ``ensemble.name``."""
    kind = cfg.ensemble.name
    if spec.task == "regression" and kind in ("boosting", "stacking"):
        raise ConfigError(
            f"ensemble={kind} here combines class predictions (AdaBoost's SAMME, a "
            f"logistic-regression meta-learner), but data={spec.name} is a regression; use "
            "ensemble=voting or ensemble=bagging."
        )
    if cfg.trainer.precision == "16-mixed":
        raise ConfigError(
            f"ensemble={kind} trains its members as one computation, and under "
            "trainer.precision=16-mixed one member's overflowing gradients would skip every "
            "member's step; use trainer.precision=32 or bf16."
        )
    if cfg.trainer.on_nan == "skip":
        raise ConfigError(
            f"ensemble={kind} stops a member whose loss diverges, and trainer.on_nan=skip "
            "would skip every member's step for one member's; use trainer.on_nan=stop."
        )
    settings = member_settings(cfg)
    members = []
    for s in settings:
        torch.manual_seed(s.seed)  # as a plain run with that seed initialises its model
        members.append(build_model(cfg, spec))
    if not all(m.learns_by_backprop for m in members[0].modules() if isinstance(m, Model)):
        raise ConfigError(
            f"ensemble={kind} needs a model trained on a loss; model={cfg.model.name} has a "
            "learning rule of its own (or pre-trains one). Use model=mlp, dnn, cnn or rnn."
        )
    if type(members[0]).training_inputs is not Model.training_inputs:  # seq2seq's
        raise ConfigError(
            f"ensemble={kind} combines one output per sample; model={cfg.model.name} decodes "
            "a sequence of its own. Use ensembles with model=mlp, dnn, cnn, rnn or transformer."
        )
    meta = None
    if kind == "stacking":
        meta = MLP(len(members) * spec.n_outputs, [], spec.n_outputs, None, 0.0)
    vote = getattr(cfg.ensemble, "vote", "soft")
    ensemble = Ensemble(StackedModel(members, settings), kind, vote, meta)
    ensemble.resumable = kind in ("voting", "bagging")  # one fit, which the Trainer resumes
    return ensemble


def member_settings(cfg: "Config") -> list[MemberSettings]:
    """Member k: seed trainer.seed + k, the run's optimizer settings and penalties."""
    return [
        MemberSettings(
            seed=cfg.trainer.seed + k,
            lr=cfg.optim.lr,
            weight_decay=cfg.optim.weight_decay,
            l1=cfg.reg.l1,
            l2=cfg.reg.l2,
        )
        for k in range(cfg.ensemble.members)
    ]


@dataclass
class EnsembleFit:
    """What fitting an ensemble gives: the fit whose numbers the run reports (the members'
    stacked fit, or boosting's last member's) and what metrics.json says of the ensemble."""

    fit: FitResult
    report: dict[str, Any]


def fit_ensemble(
    ensemble: Ensemble,
    data: DataSplits,
    objective: Objective,
    trainer: Trainer,
    cfg: "Config",
    resume: dict[str, Any] | None = None,
) -> EnsembleFit:
    """Train ``ensemble`` on ``data`` as its kind trains, through ``trainer``."""
    ensemble.objective = objective
    stacked = ensemble.stacked
    if ensemble.kind == "boosting":
        return _boost(ensemble, data, objective, trainer)
    if ensemble.kind == "stacking":
        return _stack(ensemble, data, objective, trainer, cfg)
    report: dict[str, Any] = {}
    if ensemble.kind == "bagging":  # n draws with replacement per member, from its own seed
        n = len(data.x_train)
        draws = [torch.Generator().manual_seed(s.seed) for s in stacked.settings]
        stacked.samples = torch.stack([torch.randint(n, (n,), generator=g) for g in draws])
    stacked.vote = hard_vote if ensemble.vote_kind == "hard" else soft_vote
    fit = trainer.fit(stacked, data, MemberObjective(objective, stacked.settings), resume=resume)
    if ensemble.kind == "bagging":
        key = "oob_mse" if objective.task == "regression" else "oob_acc"
        report[key] = out_of_bag_accuracy(ensemble, data, objective, trainer)
    return EnsembleFit(fit, report)


@torch.no_grad()
def out_of_bag_accuracy(
    ensemble: Ensemble, data: DataSplits, objective: Objective, trainer: Trainer
) -> float | None:
    """Accuracy on each training sample of the vote of the members whose bootstrap sample
    left it out (its out-of-bag members), over the samples that have at least one; for a
    regression, the mean squared error instead. Breiman's estimate of the error on new data."""
    stacked = ensemble.stacked
    stacked.eval()
    x = data.x_train.to(trainer.device)
    n = len(x)
    scores = torch.cat(
        [stacked(stacked.inputs(chunk)) for chunk in x.split(8192)], dim=1
    )  # (K, n, C)
    seen = torch.zeros(stacked.size, n, dtype=torch.bool, device=x.device)
    seen.scatter_(1, stacked.samples.to(x.device), True)  # the samples each member drew
    out = ~seen
    covered = out.any(dim=0)
    if not covered.any():
        return None
    y = data.y_train.to(x.device)
    probabilities = objective.activate(scores) * out.unsqueeze(-1)
    mean = probabilities.sum(dim=0)[covered] / out.sum(dim=0)[covered].unsqueeze(-1)
    if objective.task == "regression":
        return F.mse_loss(mean, y[covered]).item()
    if objective.task == "binary":
        predicted = (mean > 0.5).to(y.dtype)
    else:
        predicted = mean.argmax(dim=1)
    return (predicted == y[covered]).float().mean().item()


def _boost(
    ensemble: Ensemble, data: DataSplits, objective: Objective, trainer: Trainer
) -> EnsembleFit:
    """AdaBoost (SAMME): member m trains on the training split with the current sample
    weights in its loss; its weighted error err_m sets its vote α_m and the next weights."""
    stacked = ensemble.stacked
    n, classes = len(data.x_train), max(objective.n_classes, 2)
    weights = torch.full((n,), 1.0 / n, dtype=torch.float64)
    y = data.y_train.to(trainer.device)
    report: dict[str, Any] = {"alphas": [], "weighted_errors": [], "stopped": None}
    fits = []
    for m, member in enumerate(stacked.members):
        seed = stacked.settings[m].seed  # its shuffle's, as a plain run with that seed
        member_trainer = trainer.for_phase(  # a plain run's settings, with that seed
            f"member/{m}/",
            replace(trainer.cfg, seed=seed),
            trainer.optim,
            trainer.lr_key,
            trainer.schedule,
        )
        weighted = "the samples weighted by the members before" if m else "every sample alike"
        log.info(f"boosting: member {m + 1} of {stacked.size} (seed {seed}), {weighted}")
        fit = member_trainer.fit(member, data, objective, sample_weights=(weights * n).float())
        fits.append(fit)
        member.eval()
        with torch.no_grad():
            predicted = objective.predict(member(data.x_train.to(trainer.device)))
        wrong = (predicted != y).reshape(n, -1).any(dim=1).cpu()
        error = float(weights[wrong].sum() / weights.sum())
        report["weighted_errors"].append(error)
        if error <= 0:  # α would be infinite: this member alone is right everywhere
            ensemble.alphas[m] = 1.0
            ensemble.alphas[:m] = 0.0
            report["alphas"].append(None)  # infinite: it alone decides
            report["stopped"] = (
                f"member {m}'s weighted training error is 0: its α would be infinite, so it "
                f"decides alone and boosting adds no more members ({m + 1} trained)"
            )
            break
        if error >= 1 - 1 / classes:  # no better than chance: its vote would count against it
            report["stopped"] = (
                f"member {m}'s weighted training error {error:.3f} is no better than chance "
                f"(1 − 1/{classes}); boosting stops with {m} members"
            )
            if m == 0:
                ensemble.alphas[0] = 1.0
            break
        alpha = math.log((1 - error) / error) + math.log(classes - 1)
        ensemble.alphas[m] = alpha
        report["alphas"].append(alpha)
        weights = weights * torch.exp(alpha * wrong.double())
        weights = weights / weights.sum()
    if report["stopped"]:
        log.info(f"boosting: {report['stopped']}")
    report["members_used"] = int((ensemble.alphas > 0).sum())
    last = fits[-1]
    members = [
        {
            "epochs_run": f.epochs_run,
            "stop_reason": f.stop_reason,
            "best_epoch": f.best_epoch,
            "best_monitor": f.best_monitor,
            "best_val_loss": f.best_val_loss,
            **f.last,
        }
        for f in fits
    ]
    steps = sum(f.steps for f in fits)
    seconds = sum(f.fit_seconds for f in fits)
    combined = replace(last, steps=steps, fit_seconds=seconds, members=members)
    return EnsembleFit(combined, report)


def _stack(
    ensemble: Ensemble, data: DataSplits, objective: Objective, trainer: Trainer, cfg: "Config"
) -> EnsembleFit:
    """Stacking: the members' out-of-fold probabilities on the training split (k fits of all
    members on k − 1 folds, each stacked), the members on the whole split, then the
    meta-learner on the out-of-fold probabilities."""
    stacked = ensemble.stacked
    folds = cfg.ensemble.folds
    n = len(data.x_train)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.trainer.seed))
    parts = order.tensor_split(folds)
    out_of_fold: Tensor | None = None
    fits = []  # every fit of the ensemble: k fold fits, the members', the meta-learner's
    for j, held_out in enumerate(parts):
        kept = torch.cat([p for i, p in enumerate(parts) if i != j])
        fold_members = []
        for s in stacked.settings:
            torch.manual_seed(s.seed)
            fold_members.append(build_model(cfg, data.spec))
        fold = StackedModel(fold_members, stacked.settings)
        fold_data = replace(data, x_train=data.x_train[kept], y_train=data.y_train[kept])
        log.info(
            f"stacking: fold {j + 1} of {folds}, the {stacked.size} members on the other "
            f"folds ({len(kept)} samples), for their predictions on this one"
        )
        fold_trainer = trainer.for_phase(
            f"fold/{j}/", trainer.cfg, trainer.optim, trainer.lr_key, trainer.schedule
        )
        fits.append(fold_trainer.fit(fold, fold_data, MemberObjective(objective, stacked.settings)))
        fold.eval()
        with torch.no_grad():
            x = data.x_train[held_out].to(trainer.device)
            probs = member_features(objective, fold(fold.inputs(x))).cpu()
        if out_of_fold is None:
            out_of_fold = torch.zeros(n, probs.shape[1])
        out_of_fold[held_out] = probs
    assert out_of_fold is not None
    log.info(f"stacking: the {stacked.size} members on the whole training split")
    fit = trainer.fit(stacked, data, MemberObjective(objective, stacked.settings))
    fits.append(fit)
    stacked.eval()
    with torch.no_grad():
        x_val = stacked.inputs(data.x_val.to(trainer.device))
        val_features = member_features(objective, stacked(x_val)).cpu()
    meta_data = replace(
        data,
        x_train=out_of_fold,
        x_val=val_features,
        spec=replace(data.spec, input_shape=(out_of_fold.shape[1],)),
    )
    assert ensemble.meta is not None
    log.info("stacking: the meta-learner on the members' out-of-fold predictions")
    meta_fit = trainer.for_phase("meta/", meta_trainer_config(cfg), META_OPTIM, "").fit(
        ensemble.meta, meta_data, objective
    )
    fits.append(meta_fit)
    report = {
        "folds": folds,
        "meta_epochs_run": meta_fit.epochs_run,
        "meta_val_loss": meta_fit.last.get("val_loss"),
    }
    steps, seconds = sum(f.steps for f in fits), sum(f.fit_seconds for f in fits)
    return EnsembleFit(replace(fit, steps=steps, fit_seconds=seconds), report)


def ensemble_metrics(
    ensemble: Ensemble,
    fitted: EnsembleFit,
    data: DataSplits,
    trainer: Trainer,
    objective: Objective,
) -> dict[str, Any]:
    """metrics.json's ``members`` (each member's test measures, seed and fit) and ``ensemble``
    (its kind and size, the members' mean and spread of test accuracy, and what the kind
    reports: bagging's out-of-bag accuracy, boosting's α)."""
    members = []
    stacked = ensemble.stacked
    fits = fitted.fit.members or [{}] * stacked.size
    # boosting may stop before its last member: those it never trained are left out
    for member, settings, fit in zip(stacked.members, stacked.settings, fits, strict=False):
        loss, accuracy = trainer.evaluate(member, data.x_test, data.y_test, objective)
        members.append({"seed": settings.seed, "test_loss": loss, "test_acc": accuracy, **fit})
    used = members
    if ensemble.kind == "boosting":  # the members it added
        used = [m for m, alpha in zip(members, ensemble.alphas.tolist(), strict=False) if alpha > 0]
    key = "test_loss" if objective.task == "regression" else "test_acc"
    values = torch.tensor([m[key] for m in used], dtype=torch.float64)
    summary = {
        "kind": ensemble.kind,
        "members": ensemble.stacked.size,
        "vote": ensemble.vote_kind if ensemble.kind in ("voting", "bagging") else None,
        f"mean_member_{key}": values.mean().item(),
        f"member_{key}_std": values.std().item() if len(values) > 1 else 0.0,
        f"best_member_{key}": (values.min() if key == "test_loss" else values.max()).item(),
        f"worst_member_{key}": (values.max() if key == "test_loss" else values.min()).item(),
        **fitted.report,
    }
    return {"members": members, "ensemble": summary}


def save_ensemble(
    ensemble: Ensemble, checkpoint_dir: Path, config_yaml: str, early: EarlyStoppingConfig
) -> None:
    """best.pt and last.pt of an ensemble fitted in several fits (boosting, stacking): every
    member, and its combination (α, the meta-learner), once trained; not resumable."""
    payload = {
        "config": config_yaml,
        "monitor": early.monitor,
        "epoch": 0,
        "stop_reason": "ensemble",
        "model": ensemble.stacked.state_dict(),
        "ensemble": ensemble.combination_state(),
    }
    for name in ("best.pt", "last.pt"):
        save_checkpoint(payload, checkpoint_dir / name)
