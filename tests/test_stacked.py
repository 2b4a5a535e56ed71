"""Stacked training (dlbasics/models/stacked.py, stacked_runs.py): K members trained as one
computation take the step each would take trained alone, and each job of a stacked group gets
the run directory a run of its own would."""

import dataclasses
import json
import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import assert_each_nearest_its_own, make_config
from dlbasics.data import build_data
from dlbasics.inference import load
from dlbasics.models import build_model
from dlbasics.models.rnn import RNN
from dlbasics.models.stacked import MemberObjective, MemberSettings, StackedModel
from dlbasics.run import model_objective, train
from dlbasics.stacked_runs import group_key, train_group, why_alone
from dlbasics.trainer import Trainer

ONE_STEP = [
    "trainer.epochs=1",
    "trainer.limit_batches=1",
    "logger=none",
    "trainer.checkpoints=false",
]

# How far one step of a member trained stacked may be from the same step trained alone.
#
# Stacked, a member's step runs other kernels than alone: a batched matrix product for its
# matrix products, a grouped convolution for its convolutions, and the optimizer's elementwise
# update over (K, …) tensors, whose vector lanes fall on other elements than on the member's own
# tensor (a lane's fused multiply-add rounds once, the scalar tail twice). That is the same
# arithmetic in another order, and what it changes depends on the CPU: on one machine every
# step was bit-for-bit equal; on an AVX2 one the first update already differed in its last bit,
# and after 20 epochs the test loss of a DNN by 3e-4. So the comparison is one step, in float64:
# each operation rounds by at most u = 2⁻⁵³ of its result, and each entry of a step is a chain
# of under 10⁴ roundings (sums over a batch and a layer's width, for a few layers, forward and
# back), so two orders differ by under 10⁴·u ≈ 1e-12 of the magnitudes involved. RTOL = 1e-9 of
# a tensor's largest entry leaves a margin of 1000 over that and is far below what a mistake of
# stacking does: another member's weights, samples or learning rate change entries by their size.
RTOL = 1e-9


@dataclasses.dataclass
class Step:
    """One member's parameters after one training step, and the gradients that step used."""

    weights: dict[str, torch.Tensor]
    grads: dict[str, torch.Tensor]


def one_step_alone_and_stacked(
    overrides: list[str], members: list[dict]
) -> list[tuple[Step, Step]]:
    """Each member's first training step (Trainer.fit, one batch) in float64, taken alone with
    its seed and settings and taken stacked with the others: (alone, stacked) per member."""
    cfg = make_config(*ONE_STEP, *overrides)
    data = build_data(cfg.data)
    for split in ("x_train", "x_val", "x_test"):
        setattr(data, split, getattr(data, split).double())
    if data.y_train.is_floating_point():
        for split in ("y_train", "y_val", "y_test"):
            setattr(data, split, getattr(data, split).double())
    device = torch.device("cpu")
    settings = [
        MemberSettings(seed=m["seed"], lr=m.get("lr", cfg.optim.lr), l2=m.get("l2", 0.0))
        for m in members
    ]
    alone = []
    for s in settings:
        own = [f"seed={s.seed}", f"optim.lr={s.lr}", f"reg.l2={s.l2}"]
        member_cfg = make_config(*ONE_STEP, *overrides, *own)
        torch.manual_seed(s.seed)
        model = build_model(member_cfg, data.spec).double()
        objective = model_objective(member_cfg, model, data.spec)
        Trainer(member_cfg.trainer, member_cfg.optim, member_cfg.schedule, device).fit(
            model, data, objective
        )
        params = dict(model.named_parameters())
        alone.append(
            Step(
                {name: p.detach().clone() for name, p in params.items()},
                {name: p.grad.clone() for name, p in params.items()},
            )
        )
    models = []
    for s in settings:
        torch.manual_seed(s.seed)
        models.append(build_model(cfg, data.spec).double())
    objective = model_objective(cfg, models[0], data.spec)
    stacked_model = StackedModel(models, settings)
    trainer = Trainer(cfg.trainer, cfg.optim, cfg.schedule, device)
    trainer.fit(stacked_model, data, MemberObjective(objective, settings))
    names = [name for name, _ in models[0].named_parameters()]
    stacked = []
    for k, model in enumerate(models):
        group, row = stacked_model.group_of(k)
        tensors = stacked_model.groups[group].parameters
        weights = {name: p.detach().clone() for name, p in model.named_parameters()}
        grads = {name: tensors[i].grad[row].clone() for i, name in enumerate(names)}
        stacked.append(Step(weights, grads))
    return list(zip(alone, stacked, strict=True))


def assert_same_step(alone: Step, stacked: Step, lr: float, eps: float) -> None:
    """The stacked member's gradients and updated weights are the alone member's within the
    rounding bound (RTOL). Adam's first update is lr·g/(|g| + eps), whose derivative in g is
    lr·eps/(|g| + eps)²: a gradient entry near 0 passes its rounding on to the weight that
    much magnified, so that is added to the weights' bound, entry by entry."""
    for name, grad in alone.grads.items():
        grad_bound = RTOL * grad.abs().max()
        difference = (stacked.grads[name] - grad).abs()
        assert (difference <= grad_bound).all(), (name, difference.max().item())
        weight = alone.weights[name]
        magnified = lr * eps / (grad.abs() + eps) ** 2 * grad_bound
        bound = RTOL * weight.abs().max() + magnified
        difference = (stacked.weights[name] - weight).abs()
        assert (difference <= bound).all(), (name, difference.max().item())
        assert stacked.grads[name].abs().max() > 0 or grad.abs().max() == 0, name


@pytest.mark.parametrize(
    "overrides",
    [
        ["model=mlp", "model.hidden=[32]"],
        ["model=dnn", "model.width=32", "model.depth=2", "model.norm=layer"],
        ["model=cnn", "model.channels=[4]", "model.dense=[16]", "model.batch_norm=false"],
        ["model=rnn", "data=sine", "model.hidden_size=16"],
        ["model=dnn", "model.width=32", "model.depth=2"],
    ],
    ids=["mlp", "dnn", "cnn", "rnn", "dnn-batch-norm"],
)
def test_a_member_trained_stacked_ends_where_it_ends_alone(overrides):
    """Where a member's step ends, stacked: the weights it reaches after one step are those it
    reaches alone (a fit is that step repeated: see RTOL for why one step is compared)."""
    cfg = make_config(*overrides)
    assert cfg.optim.name == "adam"  # assert_same_step's bound is Adam's
    for alone, stacked in one_step_alone_and_stacked(overrides, [{"seed": 0}, {"seed": 1}]):
        assert_same_step(alone, stacked, cfg.optim.lr, cfg.optim.eps)


@pytest.mark.parametrize("mode", ["norm", "value"])
def test_each_member_is_clipped_as_it_would_be_alone(mode):
    """trainer.grad_clip: a norm per member (one over all members would clip them together)."""
    clip = ["trainer.grad_clip=0.05", f"trainer.grad_clip_mode={mode}"]
    overrides = ["model=mlp", "model.hidden=[16]", *clip]
    cfg = make_config(*overrides)
    for alone, stacked in one_step_alone_and_stacked(overrides, [{"seed": 0}, {"seed": 1}]):
        assert_same_step(alone, stacked, cfg.optim.lr, cfg.optim.eps)


def test_members_keep_their_own_learning_rate_and_penalty():
    members = [{"seed": 0, "lr": 0.001}, {"seed": 1, "lr": 0.01, "l2": 1e-3}]
    cfg = make_config("model=mlp")
    steps = one_step_alone_and_stacked(["model=mlp", "model.hidden=[16]"], members)
    for (alone, stacked), member in zip(steps, members, strict=True):
        assert_same_step(alone, stacked, member["lr"], cfg.optim.eps)


def test_batched_recurrent_forward_matches_each_member():
    """The GPU's path (batched cells) computes what each member's own layers do."""
    torch.manual_seed(0)
    members = [RNN(2, "lstm", 8, 2, True, 0.0, 3, per_step) for per_step in (False,) * 3]
    x = torch.randn(3, 5, 7, 2)
    batched = RNN.forward_batched(members, x, [torch.Generator() for _ in members])
    alone = torch.stack([m(part) for m, part in zip(members, x, strict=True)])
    assert torch.allclose(batched, alone, atol=1e-5)


def test_members_alike_share_a_parameter_group_and_a_stopped_member_stays_as_it_stopped():
    """The optimizer updates the members' stacked parameters, one group per run of members
    alike in lr and decay; each member's own parameters are views of its rows."""
    cfg = make_config("model=mlp", "model.hidden=[8]")
    data = build_data(cfg.data)
    settings = [MemberSettings(seed=k, lr=lr) for k, lr in enumerate([0.01, 0.01, 0.1, 0.1])]
    models = []
    for s in settings:
        torch.manual_seed(s.seed)
        models.append(build_model(cfg, data.spec))
    initial = [m.state_dict() for m in models]
    initial = [{key: value.clone() for key, value in state.items()} for state in initial]
    stacked = StackedModel(models, settings)
    groups = stacked.param_groups()
    assert [group["lr"] for group in groups] == [0.01, 0.1]
    assert all(p.shape[0] == 2 for group in groups for p in group["params"])
    for model, state in zip(models, initial, strict=True):  # the same weights, now views
        assert all(torch.equal(model.state_dict()[key], value) for key, value in state.items())
    optimizer = torch.optim.Adam(groups)
    objective = MemberObjective(model_objective(cfg, models[0], data.spec), settings)
    x, y = stacked.inputs(data.x_train[:32]), data.y_train[:32].expand(4, 32)

    def step() -> None:
        optimizer.zero_grad()
        objective(stacked(x), y).sum().backward()
        optimizer.step()
        stacked.hold_stopped()

    step()
    stacked.stop_member(2, optimizer)
    stopped = {key: value.clone() for key, value in models[2].state_dict().items()}
    going = {key: value.clone() for key, value in models[3].state_dict().items()}
    moments = [optimizer.state[p]["exp_avg"][0].clone() for p in groups[1]["params"]]
    step()
    assert all(torch.equal(models[2].state_dict()[key], v) for key, v in stopped.items())
    assert not torch.equal(models[3].state_dict()["net.0.weight"], going["net.0.weight"])
    for p, before in zip(groups[1]["params"], moments, strict=True):  # its Adam state as well
        assert torch.equal(optimizer.state[p]["exp_avg"][0], before)


def test_each_member_stops_early_on_its_own(tmp_path):
    """A member whose learning rate is too small to improve stops; the others go on."""
    cfg = make_config(
        "model=mlp",
        "model.hidden=[16]",
        "trainer.epochs=30",
        "logger=none",
        "trainer.early_stopping.patience=2",
        "trainer.early_stopping.min_delta=0.01",
    )
    data = build_data(cfg.data)
    settings = [MemberSettings(seed=0, lr=1e-7), MemberSettings(seed=1, lr=1e-2)]
    models = []
    for s in settings:
        torch.manual_seed(s.seed)
        models.append(build_model(cfg, data.spec))
    objective = model_objective(cfg, models[0], data.spec)
    trainer = Trainer(cfg.trainer, cfg.optim, cfg.schedule, torch.device("cpu"))
    fit = trainer.fit(StackedModel(models, settings), data, MemberObjective(objective, settings))
    slow, fast = fit.members
    assert slow["stop_reason"] == "early_stopping" and slow["epochs_run"] <= 5
    assert fast["epochs_run"] > slow["epochs_run"]


JOBS = [["seed=0"], ["seed=1", "optim.lr=0.01"], ["seed=2", "reg=l2"]]
COMMON = ["model=mlp", "model.hidden=[32]", "trainer.epochs=6"]


def test_a_stacked_group_writes_each_job_as_its_own_run(tmp_path):
    cfgs = [make_config(*COMMON, *job) for job in JOBS]
    assert len({group_key(c) for c in cfgs}) == 1 and group_key(cfgs[0]) is not None
    alone = [
        train(c, tmp_path / f"alone{i}", progress=False, name=",".join(JOBS[i]))
        for i, c in enumerate(cfgs)
    ]
    stacked = train_group(
        [(c, tmp_path / f"stacked{i}", ",".join(JOBS[i])) for i, c in enumerate(cfgs)]
    )
    # each job's numbers: its own alone, to rounding (conftest: comparing runs)
    assert_each_nearest_its_own(
        {str(i): tmp_path / f"stacked{i}" for i in range(len(JOBS))},
        {str(i): tmp_path / f"alone{i}" for i in range(len(JOBS))},
    )
    for i, (one, group) in enumerate(zip(alone, stacked, strict=True)):
        for key in ("test_loss", "test_acc", "best_val_loss", "final_train_loss", "val_loss"):
            assert math.isfinite(group[key]) and math.isfinite(one[key]), key
        for key in ("epochs_run", "steps", "best_epoch", "stop_reason", "n_params"):
            assert group[key] == one[key], key
        run = tmp_path / f"stacked{i}"
        assert json.loads((run / "metrics.json").read_text())["stacked_with"] == 3
        assert (run / "preprocessing.json").is_file()
        # its own TensorBoard run, under the usual tags
        (events,) = (run / "tb").iterdir()
        tags = EventAccumulator(str(events)).Reload().Tags()["scalars"]
        assert {"loss/train", "loss/val", "acc/val", "lr"} <= set(tags)
        # its checkpoint loads as a run of its own, and predicts as it tested
        own_run = load(tmp_path / f"alone{i}").model.state_dict()
        assert load(run).model.state_dict().keys() == own_run.keys()


@pytest.mark.parametrize(
    ("jobs", "k"),
    [
        (JOBS[:2], 0),  # members of different lr: a parameter group each
        ([["seed=0"], ["seed=1"], ["seed=2"]], 1),  # one group: the job is its row 1
    ],
    ids=["own-group", "row-of-a-group"],
)
def test_a_stacked_jobs_last_checkpoint_resumes_as_a_run_of_its_own(jobs, k, tmp_path):
    cfgs = [make_config(*COMMON, *job) for job in jobs]
    train_group([(c, tmp_path / f"s{i}", f"job{i}") for i, c in enumerate(cfgs)])
    longer = [*COMMON[:2], "trainer.epochs=9", *jobs[k]]
    resume = f"trainer.resume={tmp_path / f's{k}'}"
    resumed = train(make_config(*longer, resume), tmp_path / "resumed", progress=False)
    straight = train(make_config(*longer), tmp_path / "straight", progress=False)
    for key in ("epochs_run", "steps", "stop_reason"):
        assert resumed[key] == straight[key], key
    # it went on from its own 6 epochs as the job would alone: nearer the job trained 9 epochs
    # straight than to where it started or to the other jobs (conftest: comparing runs)
    assert_each_nearest_its_own(
        {"straight": tmp_path / "resumed"},
        {
            "straight": tmp_path / "straight",
            **{f"s{i}": tmp_path / f"s{i}" for i in range(len(jobs))},
        },
    )


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ("model=perceptron", "does not stack"),
        ("trainer.precision=bf16", None),
        ("schedule=plateau", "plateau"),
        ("ensemble=voting", "ensemble"),
    ],
)
def test_what_cannot_stack_says_why(override, reason):
    extra = ["data=and", "optim=sgd"] if override == "model=perceptron" else []
    why = why_alone(make_config(override, *extra))
    assert (why is None) if reason is None else (reason in why)
