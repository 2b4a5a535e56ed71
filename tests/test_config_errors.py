"""Every config a user can type either trains or is refused before training with one line
naming a key (exit status 2): random override lists drawn from the real config tree."""

import re
import tempfile
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import CONFIGS, run_cli, train_or_refuse
from dlbasics.config import CHOICES, Config
from dlbasics.losses import RegConfig

# A refusal names a key: `optim.lr`, `model=…`, `seed`, `hydra/launcher=…`.
GROUP_NAMES = "model|act|loss|optim|schedule|reg|data|trainer|logger|diag|hydra"
NAMES_A_KEY = re.compile(rf"\b(seed\b|({GROUP_NAMES})[.=/\[])")

GROUPS = {
    group.name: sorted(path.stem for path in group.glob("*.yaml"))
    for group in CONFIGS.iterdir()
    if group.is_dir() and group.name != "hydra"
}


def _schema_keys() -> dict[str, type]:
    """Every key of the schema, `group.key` → its type (model and data: all their schemas)."""
    keys: dict[str, type] = {"seed": int}

    def walk(schema: type, prefix: str) -> None:
        for f in fields(schema):
            if is_dataclass(f.type):
                walk(f.type, f"{prefix}{f.name}.")
            elif f.name != "name" or prefix == "act.":  # group choices are drawn as `group=…`
                keys[f"{prefix}{f.name}"] = f.type

    for f in fields(Config):
        if is_dataclass(f.type):
            walk(f.type, f"{f.name}.")
    walk(RegConfig, "reg.")
    for group, registry in CHOICES.items():
        for schema in registry.schemas().values():
            walk(schema, f"{group}.")
    return keys


KEYS = _schema_keys()
# Values a careless or hostile user might type: interpolations through every kind of resolver,
# huge and non-finite numbers, code references.
HOSTILE = [
    "'${oc.create:{_target_: os.system, command: touch x}}'",
    "'${oc.create:[1, 2]}'",
    "'${oc.env:HOME}'",
    "'${oc.env:DLBASICS_UNSET,{_target_: os.system}}'",
    "'${oc.select:trainer}'",
    "'${oc.decode:\"{a: 1}\"}'",
    "'${oc.dict.keys:trainer}'",
    "'${now:%Y}'",
    "ext://os.system",
    "inf",
    "-inf",
    "nan",
    "1e400",
    "99999999999999999999",
]
JUNK = st.sampled_from(["x", "", "null", "[1,2]", "-1", "1e9", "{a: 1}", "[1,", *HOSTILE])
# hydra.* overrides a user might try; only the allowlisted ones pass (config_guard.py).
HYDRA_OVERRIDES = [
    "+hydra.callbacks.x._target_=os.system",
    "+hydra.callbacks.x='${oc.create:{_target_: builtins.open, file: victim.txt, mode: w}}'",
    "+hydra.job_logging.handlers.x.filename=made.log",
    "++hydra.job.env_set.X=1",
    "+hydra.launcher.setup=[touch x]",
    "+hydra.sweeper.custom_search_space=os.system",
    "hydra/launcher=mine",
    "hydra.job.name=../escaped",
    "hydra.verbose=true",
    "hydra.job.chdir=false",
]
NUMBERS = st.sampled_from(["-1", "0", "0.001", "0.1", "0.5", "0.99", "1", "1.5", "20"])


def _values(key: str, kind: type) -> st.SearchStrategy[str]:
    """Valid and invalid values for one key, bounded so that one epoch stays cheap."""
    if key == "trainer.epochs":
        return st.sampled_from(["-1", "0", "1", "x"])
    if key == "data.path":
        return st.sampled_from(["/nonexistent/table.csv", str(CONFIGS)])
    if key == "trainer.resume":
        return st.sampled_from(["null", "/nonexistent/run", str(CONFIGS / "config.yaml")])
    if key == "trainer.device":
        return st.sampled_from(["auto", "cpu", "cuda", "tpu"])
    text = str(kind)
    if "list" in text:
        items = st.lists(st.sampled_from(["-1", "0", "1", "8", "0.5", "x"]), max_size=3)
        return items.map(lambda xs: "[" + ",".join(xs) + "]") | JUNK
    if kind is bool:
        return st.sampled_from(["true", "false", "maybe"])
    if kind is str:
        words = ["auto", "relu", "min", "max", "val_acc", "cosine", "skip", "value", "bogus"]
        return st.sampled_from(words) | JUNK
    if "None" in text:
        return st.sampled_from(["null", "1", "4", "16", "64", "500", "0"]) | NUMBERS | JUNK
    if kind is int:
        return st.sampled_from(["-1", "0", "1", "2", "8", "64", "300"]) | JUNK
    return NUMBERS | JUNK  # floats, and `trainer.threads` (Any)


@st.composite
def override_lists(draw: st.DrawFn) -> list[str]:
    overrides = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["group", "key", "key", "key", "unknown", "hydra"]))
        if kind == "group":
            group = draw(st.sampled_from(sorted(GROUPS)))
            choice = draw(st.sampled_from([*GROUPS[group], "bogus"]))
            overrides.append(f"{group}={choice}")
        elif kind == "key":
            key = draw(st.sampled_from(sorted(KEYS)))
            overrides.append(f"{key}={draw(_values(key, KEYS[key]))}")
        elif kind == "hydra":
            overrides.append(draw(st.sampled_from(HYDRA_OVERRIDES)))
        else:
            key = draw(st.sampled_from(["optim.lrr", "+trainer.epoch", "+model._target_", "foo"]))
            overrides.append(f"{key}=1")
    if not any(o.startswith("trainer.epochs=") for o in overrides):
        overrides.append("trainer.epochs=1")
    return overrides


def names_a_key(message: str, overrides: list[str]) -> bool:
    typed = {o.lstrip("+~").partition("=")[0] for o in overrides}
    return bool(NAMES_A_KEY.search(message)) or any(key in message for key in typed)


def check_trains_or_refuses(overrides: list[str]) -> None:
    with tempfile.TemporaryDirectory() as run_dir:
        outcome = train_or_refuse([*overrides, "logger=none"], Path(run_dir))
    trained = outcome in ("trained", "diverged")
    assert trained or names_a_key(outcome, overrides), (overrides, outcome)
    assert "\n" not in outcome


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,  # the same examples on every run of the fast suite
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
@given(overrides=override_lists())
def test_random_overrides_train_one_epoch_or_are_refused_naming_a_key(overrides):
    check_trains_or_refuses(overrides)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, database=None)
@given(overrides=override_lists())
def test_many_random_overrides_train_one_epoch_or_are_refused_naming_a_key(overrides):
    check_trains_or_refuses(overrides)


@settings(max_examples=3, deadline=None, derandomize=True, database=None)
@given(overrides=override_lists())
def test_random_overrides_on_the_real_command_line_exit_0_or_2_without_traceback(overrides):
    # Started in an empty directory: afterwards it holds the run directory alone, or nothing.
    with tempfile.TemporaryDirectory() as here:
        run_dir = Path(here) / "run"
        result = run_cli(
            f"hydra.run.dir={run_dir}", "logger=none", *overrides, timeout=300, cwd=Path(here)
        )
        assert [p.name for p in Path(here).iterdir()] in ([], ["run"]), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode in (0, 2), result.stderr
    if result.returncode == 2:
        assert result.stderr.startswith("error: ") and names_a_key(result.stderr, overrides)


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["model=mlpp"], ["model=mlpp", "mlp, perceptron"]),
        (["optim.lrr=0.1"], ["optim.lrr", "eps, lr, name"]),
        (["optim=sgd", "optim.momentum=0.5"], ["optim.momentum", "optim=momentum, nesterov"]),
        (["model=perceptron", "act=tanh"], ["act=tanh", "model=cnn, dnn, mlp"]),
        (["model=perceptron", "reg.dropout=0.1"], ["reg.dropout=0.1", "takes no reg"]),
        (["optim.schedule=cosine"], ["optim.schedule", "schedule=…"]),
        (["trainer.batch_size=x"], ["trainer.batch_size='x'", "an integer or null"]),
        (["reg.dropout=true"], ["reg.dropout", "a number"]),
        (["trainer.deterministic=maybe"], ["trainer.deterministic", "true or false"]),
        (["model.hidden=[a]"], ["model.hidden[0]", "'a'"]),
        (["optim.lr=[1,"], ["'optim.lr=[1,'", "cannot be parsed"]),
        (["trainer=sgdd"], ["trainer=sgdd", "batch, minibatch, sgd"]),
        (["data=csv"], ["data.path", "required"]),
        (["trainer.on_nan=ignore"], ["trainer.on_nan", "stop, skip"]),
        (["trainer.distributed_timeout=0"], ["trainer.distributed_timeout", "seconds > 0"]),
    ],
)
def test_each_kind_of_mistake_gets_one_line_with_the_key_and_what_is_allowed(
    tmp_path, overrides, words
):
    message = train_or_refuse([*overrides, "trainer.epochs=1", "logger=none"], tmp_path)
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["data=iris", "trainer.batch_size=500"], ["trainer.batch_size=500", "90 training"]),
        (["data=iris", "loss=bce"], ["loss=bce", "binary"]),
    ],
)
def test_settings_that_do_not_fit_the_data_are_refused_before_training(tmp_path, overrides, words):
    message = train_or_refuse([*overrides, "logger=none"], tmp_path)
    for word in words:
        assert word in message, (word, message)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "tb").exists()


def test_the_default_batch_size_on_a_four_row_gate_takes_the_whole_table(tmp_path):
    assert train_or_refuse(["data=and", "trainer.epochs=1", "logger=none"], tmp_path) == "trained"
