"""K models of one architecture trained as one computation (docs/speed.md, "Stacked training").

On small data a training step is mostly overhead, so K small models cost far less as one
batched computation than as K runs. Each member stays an ordinary model of its family (its own
state dict, its own ordinary checkpoint); ``StackedModel`` runs them together. While it trains,
it holds each parameter of the members stacked, one (K, …) tensor that the optimizer updates
(``param_groups``), and each member's own parameter is a view of its row: no weights are copied
per step, one optimizer call updates every member, and a member's state dict always holds what
the optimizer last wrote. The forward pass runs batched operations on the stacked weights
(stacked_layers.py), and the Trainer's one loop fits it as it fits any model, with per-member
batches (each member its own shuffle, or its own bootstrap sample), per-member losses, clipping,
early stopping and best epoch.

What members may differ in: their seed (initial weights, shuffling, dropout masks), their data
split (``data.seed``: inputs of shape (K, n, …)), their samples (bagging), and ``optim.lr``,
``optim.weight_decay``, ``reg.l1``, ``reg.l2``. A model family stacks when it has
``forward_stacked`` (mlp, dnn, cnn, rnn); others (perceptron, rbm, dbn) train one by one.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlbasics.losses import Objective, weight_penalty
from dlbasics.models.base import Model
from dlbasics.models.stacked_layers import stack_weights


@dataclass(frozen=True)
class MemberSettings:
    """What one member has of its own."""

    seed: int  # initial weights (set before it is built), its shuffle and its dropout masks
    lr: float
    weight_decay: float = 0.0
    l1: float = 0.0
    l2: float = 0.0


@dataclass
class StackedGroup:
    """Members ``start`` … ``stop`` − 1, consecutive and alike in lr and weight decay: one
    optimizer parameter group, whose ``parameters`` are their parameters stacked, one
    (stop − start, …) tensor per parameter name, in the members' named_parameters order."""

    start: int
    stop: int
    parameters: list[Tensor] = field(default_factory=list)


@dataclass
class HeldRows:
    """A tensor of a StackedGroup (a stacked parameter, or the optimizer's state of one) whose
    rows of stopped members are put back to ``saved`` after every step (``rows`` True)."""

    live: Tensor
    saved: Tensor
    rows: Tensor


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
        self.groups: list[StackedGroup] = []  # while it trains (param_groups); else none
        self._pieces: dict[int, list[Tensor]] = {}  # id(member 0's parameter) → its groups'
        self._held: dict[int, HeldRows] = {}  # id(live tensor) → stopped members' rows

    @property
    def size(self) -> int:
        return len(self.members)

    # bagging's samples: their number is the training split's, known when one is loaded
    resizable_buffers = ("samples",)

    def forward(self, x: Tensor) -> Tensor:
        family = type(self.members[0])
        if family.forward_stacked is Model.forward_stacked:  # no stacked form: one by one
            return torch.stack([member(part) for member, part in zip(self.members, x, strict=True)])
        if self.groups and not self._shares_memory():  # moved since (.to): their own again
            self.groups, self._pieces, self._held = [], {}, {}
        return family.forward_stacked(self.members, x, self.generators(x.device), self.weights)

    def weights(self, modules: Sequence[nn.Module], name: str) -> Tensor:
        """Parameter ``name`` of ``modules`` (the same module of every member, in order) as one
        (K, …) tensor: while training, the stacked parameters themselves (joined when the
        members form several groups); else the members' own, stacked."""
        pieces = self._pieces.get(id(modules[0].get_parameter(name)))
        if pieces is None:
            return stack_weights(modules, name)
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces)

    def stacked_parameters(self) -> list[Tensor]:
        """Every parameter of the members as one (K, …) tensor each."""
        names = [name for name, _ in self.members[0].named_parameters()]
        return [self.weights(self.members, name) for name in names]

    def _shares_memory(self) -> bool:
        first = next(self.members[0].parameters())
        return first.data_ptr() == self.groups[0].parameters[0].data_ptr()

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
        # one split per member, (K, n, …): row k·n + i of the splits laid end to end
        start = torch.arange(0, x.shape[0] * x.shape[1], x.shape[1], device=index.device)
        picked = x.flatten(0, 1).index_select(0, (index + start.unsqueeze(1)).flatten())
        return picked.unflatten(0, index.shape)

    def epoch_order(self, n: int, shuffles: Sequence[torch.Generator]) -> Tensor:
        """(K, n): member k's samples of this epoch in the order of its own shuffle."""
        order = torch.stack([torch.randperm(n, generator=g) for g in shuffles])
        if self.samples.numel() == 0:
            return order
        return self.samples.cpu().gather(1, order)  # a permutation of its bootstrap sample

    def param_groups(self) -> list[dict]:
        """The optimizer's parameter groups: the members' parameters stacked, one (k, …)
        tensor per parameter name for each run of consecutive members alike in lr and weight
        decay (one group of K when all are), with that lr and decay. From here on member k's
        parameters are views of row k of those tensors, and are not trained themselves."""
        self.groups, self._pieces, self._held = [], {}, {}
        start = 0
        for stop in range(1, self.size + 1):
            if stop < self.size and self._alike(start, stop):
                continue
            self.groups.append(self._stack(start, stop))
            start = stop
        return [
            {
                "params": group.parameters,
                "lr": self.settings[group.start].lr,
                "weight_decay": self.settings[group.start].weight_decay,
            }
            for group in self.groups
        ]

    def _alike(self, k: int, other: int) -> bool:
        a, b = self.settings[k], self.settings[other]
        return (a.lr, a.weight_decay) == (b.lr, b.weight_decay)

    def _stack(self, start: int, stop: int) -> StackedGroup:
        group = StackedGroup(start, stop)
        members = self.members[start:stop]
        for name, _ in self.members[0].named_parameters():
            stacked = stack_weights(members, name).detach().requires_grad_()
            group.parameters.append(stacked)
            module_name, _, leaf = name.rpartition(".")
            for row, member in enumerate(members):
                own = nn.Parameter(stacked.detach()[row], requires_grad=False)
                setattr(member.get_submodule(module_name), leaf, own)
            first = self.members[0].get_parameter(name)
            self._pieces.setdefault(id(first), []).append(stacked)
        return group

    def group_of(self, k: int) -> tuple[int, int]:
        """Member k's parameter group and its row there."""
        for index, group in enumerate(self.groups):
            if group.start <= k < group.stop:
                return index, k - group.start
        raise IndexError(f"member {k} is in no parameter group (param_groups not called)")

    def clip_gradients(self, mode: str, limit: float | None) -> None:
        """Clip each member's gradients as torch.nn.utils.clip_grad_norm_ (``mode`` norm) or
        clip_grad_value_ (value) would clip them alone: a norm per member, over its rows."""
        if limit is None:
            return
        for group in self.groups:
            grads = [p.grad for p in group.parameters if p.grad is not None]
            if mode == "value":
                for g in grads:
                    g.clamp_(-limit, limit)
                continue
            norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads]).norm(dim=0)
            scale = (limit / (norms + 1e-6)).clamp(max=1.0)
            for g in grads:
                g.mul_(scale.view(-1, *[1] * (g.ndim - 1)))

    def stop_member(self, k: int, optimizer: torch.optim.Optimizer) -> None:
        """Member k trains no more: its rows of the stacked parameters and of ``optimizer``'s
        state are kept as they are now (``hold_stopped`` puts them back after every step)."""
        index, row = self.group_of(k)
        for p in self.groups[index].parameters:
            state = optimizer.state.get(p, {})
            moments = [v for v in state.values() if torch.is_tensor(v) and v.shape == p.shape]
            for live in [p, *moments]:
                held = self._held.get(id(live))
                if held is None:
                    stopped = live.new_zeros(len(live), dtype=torch.bool)
                    held = self._held[id(live)] = HeldRows(live, live.detach().clone(), stopped)
                held.saved[row] = live.detach()[row]
                held.rows[row] = True

    @torch.no_grad()
    def hold_stopped(self) -> None:
        """Put the stopped members' rows back as they were when they stopped: a step moves
        every row of a stacked tensor, so theirs are restored after it."""
        for held in self._held.values():
            rows = held.rows.view(-1, *[1] * (held.live.ndim - 1))
            held.live.copy_(torch.where(rows, held.saved, held.live))

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
        self._strengths: dict[torch.device, tuple[Tensor, Tensor]] = {}  # (l1, l2) as tensors

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
        weights = [w for w in model.stacked_parameters() if w.ndim > 2]  # a member's ndim > 1
        device = weights[0].device
        if device not in self._strengths:  # copied to the device once, not at every step
            l1, l2 = (weights[0].new_tensor(strengths) for strengths in (self.l1, self.l2))
            self._strengths[device] = (l1, l2)
        return weight_penalty(weights, *self._strengths[device])


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
