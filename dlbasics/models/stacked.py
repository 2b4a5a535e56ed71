"""K models of one architecture trained as one computation (docs/speed.md, "Stacked training").

On small data a training step is mostly overhead, so K small models cost far less as one
batched computation than as K runs. Each member stays an ordinary model of its family, with its
own parameters (its own optimizer settings, its own ordinary checkpoint); ``StackedModel`` runs
them together: its forward pass stacks the members' weights and runs batched operations
(stacked_layers.py), and the Trainer's one loop fits it as it fits any model, with per-member
batches (each member its own shuffle, or its own bootstrap sample), per-member losses, clipping,
early stopping and best epoch.

What members may differ in: their seed (initial weights, shuffling, dropout masks), their data
split (``data.seed``: inputs of shape (K, n, …)), their samples (bagging), and ``optim.lr``,
``optim.weight_decay``, ``reg.l1``, ``reg.l2``. A model family stacks when it has
``forward_stacked`` (mlp, dnn, cnn, rnn); others (perceptron, rbm, dbn) train one by one.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlbasics.losses import Objective, weight_penalty
from dlbasics.models.base import Model


@dataclass(frozen=True)
class MemberSettings:
    """What one member has of its own."""

    seed: int  # initial weights (set before it is built), its shuffle and its dropout masks
    lr: float
    weight_decay: float = 0.0
    l1: float = 0.0
    l2: float = 0.0


def can_stack(model: Model) -> bool:
    """Whether ``model``'s family has a stacked forward pass and learns by backpropagation."""
    return model.learns_by_backprop and type(model).forward_stacked is not Model.forward_stacked


class StackedModel(Model):
    """``members`` (K models of one architecture) as one model whose forward pass takes inputs
    laid out member first, (K, batch, …), and returns scores (K, batch, outputs).

    Parameters
    ----------
    members : K models of one family and shape, each built with its own seed.
    settings : K MemberSettings, in the members' order.
    samples : (K, n) tensor of sample indices, optional
        Member k trains on the training samples ``samples[k]`` (a bootstrap sample, with
        repeats) instead of the whole training split.
    own_data : bool
        Inputs and targets hold one split per member, shape (K, n, …), instead of one split
        the members share.
    """

    def __init__(
        self,
        members: Sequence[Model],
        settings: Sequence[MemberSettings],
        samples: Tensor | None = None,
        own_data: bool = False,
    ):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.settings = list(settings)
        self.own_data = own_data
        # no samples (an empty tensor): every member trains on the whole split
        self.register_buffer("samples", samples if samples is not None else torch.zeros(0).long())
        first = members[0]
        self.output_act = first.output_act
        # An ensemble's combination of its members' scores (soft_vote, hard_vote): what the
        # Trainer validates it by, besides each member; None for members that do not vote.
        self.vote: Callable[[Objective, Tensor], Tensor] | None = None
        self._dropout: dict[torch.device, list[torch.Generator]] = {}

    @property
    def size(self) -> int:
        return len(self.members)

    # bagging's samples: their number is the training split's, known when one is loaded
    resizable_buffers = ("samples",)

    def forward(self, x: Tensor) -> Tensor:
        family = type(self.members[0])
        if family.forward_stacked is Model.forward_stacked:  # no stacked form: one by one
            return torch.stack([member(part) for member, part in zip(self.members, x, strict=True)])
        return family.forward_stacked(self.members, x, self.generators(x.device))

    def generators(self, device: torch.device) -> list[torch.Generator]:
        """Each member's generator of dropout masks on ``device``, seeded by its seed."""
        if device not in self._dropout:
            self._dropout[device] = [
                torch.Generator(device).manual_seed(s.seed) for s in self.settings
            ]
        return self._dropout[device]

    def inputs(self, x: Tensor) -> Tensor:
        """A split as the stacked forward pass reads it: (K, n, …) (a view when shared)."""
        return x if self.own_data else x.expand(self.size, *x.shape)

    def take(self, x: Tensor, index: Tensor) -> Tensor:
        """Each member's batch: ``index`` (K, B) holds member k's sample indices in row k."""
        if not self.own_data:
            return x[index]
        rows = torch.arange(self.size, device=index.device).unsqueeze(1)
        return x[rows, index]

    def epoch_order(self, n: int, shuffles: Sequence[torch.Generator]) -> Tensor:
        """(K, n): member k's samples of this epoch in the order of its own shuffle."""
        order = torch.stack([torch.randperm(n, generator=g) for g in shuffles])
        if self.samples.numel() == 0:
            return order
        return self.samples.cpu().gather(1, order)  # a permutation of its bootstrap sample

    def param_groups(self) -> list[dict]:
        """One torch.optim parameter group per member, with its learning rate and decay."""
        return [
            {"params": list(member.parameters()), "lr": s.lr, "weight_decay": s.weight_decay}
            for member, s in zip(self.members, self.settings, strict=True)
        ]

    def stop_member(self, k: int) -> None:
        """Member k trains no more: its gradients are no longer computed, so the optimizer
        leaves its weights (and their state) as they are."""
        for p in self.members[k].parameters():
            p.requires_grad_(False)
            p.grad = None

    def member_states(self) -> list[dict[str, Tensor]]:
        """Each member's own state dict (loads into a model of its family built alone)."""
        return [member.state_dict() for member in self.members]


class MemberObjective:
    """The objective of each member of a StackedModel: ``objective(scores, target)`` is the
    (K,) vector of the members' mean losses over their own batches. Their sum is what the
    Trainer backpropagates: member k's weights only reach member k's loss, so each gets the
    gradient it would get alone."""

    def __init__(self, objective: Objective, settings: Sequence[MemberSettings]):
        self.objective = objective
        self.loss, self.output_act, self.task = objective.loss, objective.output_act, objective.task
        self.l1 = [s.l1 for s in settings]
        self.l2 = [s.l2 for s in settings]

    def __call__(self, scores: Tensor, target: Tensor) -> Tensor:
        losses = self.objective.sample_losses(scores.flatten(0, 1), target.flatten(0, 1))
        return losses.view(scores.shape[:2]).mean(dim=1)

    def predict(self, scores: Tensor) -> Tensor:
        return self.objective.predict(scores.flatten(0, 1)).unflatten(0, scores.shape[:2])

    def correct(self, scores: Tensor, target: Tensor) -> Tensor:
        """(K,) correct predictions per member."""
        right = self.predict(scores) == target
        return right.flatten(2).all(dim=2).sum(dim=1) if right.ndim > 2 else right.sum(dim=1)

    @property
    def has_penalty(self) -> bool:
        return any(self.l1) or any(self.l2)

    def penalty(self, model: StackedModel) -> Tensor:
        """(K,): member k's l1·Σ|w| + l2·Σw² over its weight matrices and kernels."""
        members = zip(model.members, self.l1, self.l2, strict=True)
        return torch.stack([weight_penalty(member, l1, l2) for member, l1, l2 in members])


def soft_vote(objective: Objective, scores: Tensor) -> Tensor:
    """The ensemble's scores from its members' (K, B, …): the mean of their probabilities
    (classification), or of their values (regression), as scores the objective reads."""
    if objective.task == "regression":
        return objective.activate(scores).mean(dim=0)
    probabilities = objective.activate(scores).mean(dim=0)
    if objective.task == "binary":
        return torch.logit(probabilities.clamp(1e-7, 1 - 1e-7))  # back to a sigmoid's input
    return probabilities.clamp_min(1e-12).log()  # log-probabilities: softmax gives them back


def hard_vote(objective: Objective, scores: Tensor) -> Tensor:
    """The ensemble's scores by majority vote: each class's share of the members' votes."""
    if objective.task == "regression":
        return objective.activate(scores).median(dim=0).values
    votes = objective.predict(scores.flatten(0, 1)).unflatten(0, scores.shape[:2])
    if objective.task == "binary":
        share = votes.mean(dim=0)
        return torch.logit(share.clamp(1e-7, 1 - 1e-7))
    share = F.one_hot(votes, scores.shape[-1]).to(scores.dtype).mean(dim=0)
    return share.clamp_min(1e-12).log()
