"""What happens inside the network while it trains (``diag.*``), per layer and per epoch.

The Trainer calls these hooks, and only when some diagnostic is switched on:

    attach(model, logger, tag_prefix)   before the first step: find the layers, hook activations
    after_backward()                    after each step's backward pass, before clipping
    end_epoch(epoch)                    after each epoch's scalars: write the diagnostics
    detach()                            after the last epoch: remove the hooks

Everything per step stays on the device (sums of norms and counts, no ``.item()``); the end of an
epoch costs one host sync for all scalars together. With every diagnostic off no Diagnostics
object exists and the loop runs as it would without this module.

Layers are numbered in the order the model creates them, ``layer01`` first (the input side):
a *weight layer* is a module with a weight matrix or kernel of its own (Linear, Conv2d, a
recurrent stack), and an *activation layer* is the k-th hidden activation, named after the k-th
weight layer it follows. Normalisation layers have no number; their parameters count only in
``grad_norm/total``. TensorBoard names (``tag_prefix`` goes in front of each):

    grad_norm/<layer>         L2 norm of the layer's gradient (weights and bias), mean over steps
    grad_norm/total           L2 norm of the whole model's gradient, mean over the epoch's steps
    grad_norm/total_max       ... and its largest value in the epoch (a spike: exploding gradients)
    diag/weight_norm/<layer>  L2 norm of the layer's weights and bias at the end of the epoch
    diag/act_mean/<layer>     mean of the activation's outputs over the epoch's training batches
    diag/act_std/<layer>      their standard deviation
    diag/saturated/<layer>    sigmoid, tanh: fraction of outputs where the derivative is below
                              10% of its peak (σ' < 0.025, tanh' < 0.1): gradients die there
    diag/dead/<layer>         relu, leaky_relu: fraction of units whose input was <= 0 for every
                              sample of the epoch (a ReLU unit there passes no gradient at all)
    diag/weights/<layer>      histogram of the weight matrices (every ``histograms_every`` epochs
    diag/grads/<layer>        and epoch 1); gradients are the epoch's last step's, after clipping

Under torchrun only rank 0 measures and writes: gradients and weights are the same on every rank
(averaged), activation statistics are those of rank 0's part of each batch.
"""

import torch
from torch import Tensor, nn

from dlbasics.activations import Step
from dlbasics.loggers import Logger
from dlbasics.schemas.diagnostics import DiagConfig

# Below 10% of its peak derivative an activation passes little gradient: sigmoid' = s(1 − s)
# peaks at 0.25, tanh' = 1 − t² at 1.
SATURATION = {nn.Sigmoid: lambda s: s * (1 - s) < 0.025, nn.Tanh: lambda t: 1 - t * t < 0.1}
RECTIFIERS = (nn.ReLU, nn.LeakyReLU)  # units that can die: no (or little) gradient below zero
ACTIVATIONS = (*SATURATION, *RECTIFIERS, nn.GELU, nn.Identity, Step)


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The modules holding a weight matrix or kernel of their own, input side first, named
    layer01, layer02, …"""
    found = [
        module
        for module in model.modules()
        if any(p.ndim >= 2 for p in module.parameters(recurse=False))
    ]
    return {f"layer{i:02d}": module for i, module in enumerate(found, 1)}


def activation_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The hidden activations, named after the weight layer each follows."""
    found = [module for module in model.modules() if isinstance(module, ACTIVATIONS)]
    return {f"layer{i:02d}": module for i, module in enumerate(found, 1)}


class ActivationStats:
    """A forward hook summing one activation layer's outputs over an epoch's training batches."""

    def __init__(self, module: nn.Module):
        self.saturated = SATURATION.get(type(module))
        self.rectifier = isinstance(module, RECTIFIERS)
        self.handle = module.register_forward_hook(self)
        self.reset()

    def reset(self) -> None:
        self.sums: Tensor | None = None  # sum, sum of squares, count, saturated count
        self.active: Tensor | None = None  # per unit: positive for some sample of the epoch

    def __call__(self, module: nn.Module, inputs: tuple, output: Tensor) -> None:
        if not module.training:  # validation and test passes are not training statistics
            return
        with torch.no_grad():
            a = output.detach().flatten(1).float()
            saturated = self.saturated(a).sum() if self.saturated else a.new_zeros(())
            sums = torch.stack([a.sum(), a.square().sum(), a.new_tensor(a.numel()), saturated])
            self.sums = sums if self.sums is None else self.sums + sums
            if self.rectifier:
                active = (a > 0).any(dim=0)
                self.active = active if self.active is None else self.active | active

    def values(self) -> dict[str, Tensor]:
        """This epoch's statistics as 0-d tensors (none if no training batch went through)."""
        if self.sums is None:
            return {}
        total, squares, count, saturated = self.sums
        mean = total / count
        values = {"act_mean": mean, "act_std": (squares / count - mean.square()).clamp(0).sqrt()}
        if self.saturated:
            values["saturated"] = saturated / count
        if self.active is not None:
            values["dead"] = 1 - self.active.float().mean()
        return values


class Diagnostics:
    """The diagnostics ``cfg`` switches on, for one fit at a time (see the module docstring)."""

    def __init__(self, cfg: DiagConfig):
        self.cfg = cfg
        self.logger: Logger | None = None
        self.prefix = ""
        self.hooks: dict[str, ActivationStats] = {}

    def attach(self, model: nn.Module, logger: Logger, tag_prefix: str = "") -> None:
        self.logger, self.prefix = logger, tag_prefix
        self.layers = weight_layers(model)
        self.params = list(model.parameters())
        # Each parameter's slot among the layers; those of no layer (normalisation) go to an
        # extra slot that only the total sees.
        slot_of = {
            id(p): i
            for i, module in enumerate(self.layers.values())
            for p in module.parameters(recurse=False)
        }
        device = self.params[0].device
        n_layers = len(self.layers)
        slots = [slot_of.get(id(p), n_layers) for p in self.params]
        self.slots = torch.tensor(slots, device=device)
        self.grad_sums = torch.zeros(n_layers + 1, device=device)  # per layer, then the total
        self.grad_max = torch.zeros((), device=device)
        self.steps = 0
        self.zero = torch.zeros((), device=device)
        if self.cfg.activations:
            self.hooks = {
                name: ActivationStats(module) for name, module in activation_layers(model).items()
            }

    def after_backward(self) -> None:
        """Add this step's gradient norms to the epoch's sums (on the device: no host sync)."""
        if not self.cfg.grad_norms:
            return
        grads = [self.zero if p.grad is None else p.grad.detach() for p in self.params]
        squares = torch.stack([torch.linalg.vector_norm(g) for g in grads]).float().square()
        norms = torch.zeros_like(self.grad_sums).index_add_(0, self.slots, squares).sqrt()
        total = squares.sum().sqrt()
        norms[-1] = total
        self.grad_sums += norms
        self.grad_max = torch.maximum(self.grad_max, total)
        self.steps += 1

    def end_epoch(self, epoch: int) -> None:
        """Write this epoch's diagnostics (one host sync for all scalars) and start afresh."""
        assert self.logger is not None, "attach() first"
        values: dict[str, Tensor] = {}
        if self.cfg.grad_norms and self.steps:
            means = self.grad_sums / self.steps
            for i, name in enumerate(self.layers):
                values[f"grad_norm/{name}"] = means[i]
            values["grad_norm/total"] = means[-1]
            values["grad_norm/total_max"] = self.grad_max
        if self.cfg.weight_norms:
            for name, module in self.layers.items():
                weights = [p.detach().flatten() for p in module.parameters(recurse=False)]
                values[f"diag/weight_norm/{name}"] = torch.linalg.vector_norm(torch.cat(weights))
        for name, stats in self.hooks.items():
            for kind, value in stats.values().items():
                values[f"diag/{kind}/{name}"] = value
            stats.reset()
        if values:
            numbers = torch.stack([v.float() for v in values.values()]).tolist()  # the sync
            tags = [f"{self.prefix}{tag}" for tag in values]
            self.logger.log_scalars(dict(zip(tags, numbers, strict=True)), epoch)
        self.grad_sums.zero_()
        self.grad_max.zero_()
        self.steps = 0
        every = self.cfg.histograms_every
        if every and (epoch == 1 or epoch % every == 0):
            self.logger.log_histograms(self._histograms(), epoch)

    def detach(self) -> None:
        for stats in self.hooks.values():
            stats.handle.remove()
        self.hooks = {}

    def _histograms(self) -> dict[str, Tensor]:
        found = {}
        for name, module in self.layers.items():
            matrices = [p for p in module.parameters(recurse=False) if p.ndim >= 2]
            found[f"{self.prefix}diag/weights/{name}"] = _flat(p.detach() for p in matrices)
            grads = [p.grad.detach() for p in matrices if p.grad is not None]
            if grads:
                found[f"{self.prefix}diag/grads/{name}"] = _flat(grads)
        return found


def _flat(tensors) -> Tensor:
    return torch.cat([t.flatten() for t in tensors]).float().cpu()
