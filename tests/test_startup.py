"""Start-up without torch: ``scripts/train.py --help`` and a config mistake answer before torch
is imported (it takes seconds to load), because the schemas and the registries' names live in
dlbasics/schemas/, and the builders that use torch are imported only to build a run.

Whether torch was imported is read from the process itself (``-X importtime`` lists every
module it imports), never from a clock. scripts/bench.py (``--only startup``) times the same
commands."""

import subprocess
import sys

import pytest

from conftest import ROOT, TRAIN_SCRIPT, cli_env
from dlbasics.config import CHOICES
from dlbasics.registry import Registry
from dlbasics.schemas.activations import OUTPUT_ACTIVATIONS
from dlbasics.schemas.losses import LOSSES
from dlbasics.schemas.models import CELLS, INITS, NORMS, POOLS, ModelConfig
from dlbasics.schemas.trainer import PRECISIONS


def started(*args: str) -> tuple[subprocess.CompletedProcess, list[str], list[str]]:
    """Run ``scripts/train.py args``: the result, the modules it imported, and the lines of
    stderr that are not ``-X importtime``'s."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(TRAIN_SCRIPT), *args],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = result.stderr.splitlines()
    imported = [line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")]
    return result, imported, [line for line in lines if not line.startswith("import time:")]


def torch_modules(imported: list[str]) -> list[str]:
    return [name for name in imported if name == "torch" or name.startswith("torch.")]


@pytest.mark.cli
@pytest.mark.parametrize(
    "args, expected",
    [
        (["model=mlpp"], "error: model=mlpp is not a choice of model; choose one of: cnn, dbn"),
        (["optim.lr=abc"], "error: optim.lr='abc' is not allowed: a number expected."),
        (["optim.lr=-1"], "error: optim.lr=-1.0 is not allowed: a learning rate > 0, and finite."),
        (["--help", "model=mlpp"], "error: model=mlpp is not a choice of model; choose one of:"),
    ],
    ids=["unknown-choice", "wrong-type", "out-of-range", "help-unknown-choice"],
)
def test_a_config_mistake_exits_2_with_one_line_and_never_imports_torch(args, expected):
    result, imported, message = started(*args)
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(message) == 1 and message[0].startswith(expected), message
    assert "dlbasics.config" in imported  # the config was checked, ...
    assert torch_modules(imported) == []  # ... without torch


@pytest.mark.cli
def test_help_lists_the_groups_and_the_default_choices_keys_without_torch():
    result, imported, message = started("--help")
    assert result.returncode == 0 and message == [], result.stderr[-2000:]
    assert torch_modules(imported) == []
    out = result.stdout
    assert "model: cnn, dbn, dnn, mlp, perceptron, rbm, rnn, seq2seq, transformer" in out
    assert "(default: mlp)" in out
    # each default choice's keys, with its value and what it is (the schema's comment)
    assert "optim=adam: " in out and "  optim.lr=0.001  # the learning rate" in out
    assert "  trainer.early_stopping.patience=10  # epochs without improvement" in out
    assert "Exit status: 0 the run finished" in out


@pytest.mark.cli
def test_help_with_a_choice_shows_that_choices_keys_alone_without_torch():
    result, imported, message = started("--help", "model=cnn")
    assert result.returncode == 0 and message == [], result.stderr[-2000:]
    assert torch_modules(imported) == []
    out = result.stdout
    assert "model=cnn: " in out
    assert "  model.channels=[32, 64]  # one conv block per entry" in out
    assert "  model.output_act=auto  # Output layer activation" in out  # ModelConfig's key
    assert "optim=adam" not in out  # only the group asked about


def test_importing_the_config_modules_imports_no_torch():
    modules = "dlbasics.config, dlbasics.cli, dlbasics.help, dlbasics.sweeps.callback"
    check = f"import sys, {modules}; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --- the schemas' names and the builders that use torch agree ---------------------------------


@pytest.mark.parametrize("group", [g for g, r in CHOICES.items() if r.builders is not None])
def test_every_choice_of_a_group_has_its_builder(group):
    registry = CHOICES[group]
    for name in registry.names():
        registry.get(name)  # a LookupError for a choice whose builder no module registers


def test_every_output_activation_has_its_function():
    assert all(callable(OUTPUT_ACTIVATIONS.get(name)) for name in OUTPUT_ACTIVATIONS.names())


def test_the_names_the_schemas_check_are_those_the_builders_know():
    from dlbasics.losses import DEFAULT_LOSS
    from dlbasics.models.cnn import POOL_LAYERS
    from dlbasics.models.dnn import INITIALIZERS
    from dlbasics.models.mlp import NORM_LAYERS
    from dlbasics.models.rnn import CELLS as CELL_CLASSES
    from dlbasics.trainer import AUTOCAST_DTYPES

    assert set(NORMS) == set(NORM_LAYERS)
    assert set(INITS) == set(INITIALIZERS)
    assert set(POOLS) == set(POOL_LAYERS)
    assert set(CELLS) == set(CELL_CLASSES)
    assert set(PRECISIONS) == {"32", *AUTOCAST_DTYPES}
    assert set(LOSSES) == {"auto", *DEFAULT_LOSS.values()}


def test_a_registry_takes_a_new_choice_with_its_schema_and_refuses_a_second_schema():
    class Mine(ModelConfig):
        pass

    registry = Registry("model", {"mlp": ModelConfig}, builders=None)
    registry.register("mine", Mine)(print)
    assert registry.names() == ["mine", "mlp"] and registry.get("mine") is print
    with pytest.raises(ValueError, match="declared with ModelConfig"):
        registry.register("mlp", Mine)(print)
    with pytest.raises(LookupError, match="no builder"):
        registry.get("mlp")
