"""A config from someone else (a command line, a --config-dir, a search-path entry) cannot run
code or write outside the run directory (dlbasics/config_guard.py)."""

import os

import pytest

from conftest import cli_env, run_cli, train_or_refuse
from dlbasics.config_guard import HYDRA_CHOICES, RESOLVERS, refuse_code_in_arguments
from dlbasics.errors import ConfigError

OPEN = "{_target_:builtins.open,file:victim.txt,mode:w}"
FILE_HANDLER = "{class:logging.FileHandler,filename:made.log,mode:w}"


def files_under(directory):
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


@pytest.mark.parametrize(
    "override",
    [
        f"+hydra.callbacks.x='${{oc.create:{OPEN}}}'",
        f"+hydra.job_logging.handlers.x='${{oc.create:{FILE_HANDLER}}}'",
    ],
    ids=["callback", "log-handler"],
)
def test_the_reported_command_lines_exit_2_and_touch_nothing(tmp_path, override):
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "victim.txt").write_text("keep me")
    result = run_cli(override, cwd=tmp_path, env={**cli_env(), "HOME": str(home)})
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: hydra.") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert files_under(tmp_path) == ["home", "victim.txt"]  # no run directory, no made.log
    assert (tmp_path / "victim.txt").read_text() == "keep me"


def test_the_same_in_a_config_directory_is_refused_naming_the_file(tmp_path):
    mine = tmp_path / "mine" / "experiment"
    mine.mkdir(parents=True)
    (mine / "evil.yaml").write_text(
        f"# @package _global_\nhydra:\n  callbacks:\n    x: '${{oc.create:{OPEN}}}'\n"
    )
    result = run_cli("--config-dir", str(tmp_path / "mine"), "+experiment=evil", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "hydra.callbacks.x in " in result.stderr and "evil.yaml" in result.stderr
    assert files_under(tmp_path) == ["mine", "mine/experiment", "mine/experiment/evil.yaml"]


# Under hydra, what the issue names and more: each could run code or write anywhere.
REFUSED_OVERRIDES = [
    "+hydra.sweeper.custom_search_space=os.system",
    "+hydra.launcher.setup=[touch x]",
    "hydra.job_logging.handlers.console.stream=ext://os.system",
    "+hydra.job_logging.handlers.file.filename=/root/.bashrc",
    "+hydra.job.env_set.LD_PRELOAD=/tmp/evil.so",
    "hydra.job.name=../../escaped",
    "hydra/launcher=mine",
    "hydra/job_logging=evil",
    "hydra/callbacks=anything",
    "+model@hydra.callbacks.x=mlp",
    "+model@_global_=mlp",
    "hydra.launcher.n_jobs={a: 1}",
    "hydra.sweeper.storage=sqlite:////root/.bashrc",
    "~hydra.callbacks",
    "+optim.x={_target_: os.system}",
    "model.hidden=ext://os.system",
]


@pytest.mark.parametrize("override", REFUSED_OVERRIDES)
def test_hydra_keys_and_choices_outside_the_allowlist_are_refused(override):
    with pytest.raises(ConfigError, match=r"under hydra|does not import|Optuna storage"):
        refuse_code_in_arguments([override])


ALLOWED_OVERRIDES = [
    "hydra.run.dir=outputs/mine",
    "hydra.sweep.dir=multirun/mine",
    "hydra.sweep.subdir=${hydra.job.num}",
    "hydra/launcher=joblib",
    "hydra.launcher.n_jobs=2",
    "hydra/launcher=slurm",
    "hydra.launcher.partition=gpu",
    "hydra/sweeper=optuna",
    "hydra.sweeper.n_trials=50",
    "hydra.sweeper.storage=sqlite:///optuna.db",
    "hydra.sweeper.params.optim.lr='tag(log, interval(0.0001, 0.3))'",
    "hydra/job_logging=stdout",
    "hydra.output_subdir=null",
    "hydra.searchpath=[pkg://dlbasics]",
    "model.hidden=[64,32]",
    "optim.lr=0.01",
]


@pytest.mark.parametrize("override", ALLOWED_OVERRIDES)
def test_the_documented_settings_pass(override):
    refuse_code_in_arguments([override])


def test_every_allowed_hydra_choice_exists():
    # The allowlist names options that Hydra, its plugins or configs/hydra provide.
    assert set(HYDRA_CHOICES["hydra/launcher"]) >= {"basic", "joblib", "slurm"}
    assert "dlbasics" in HYDRA_CHOICES["hydra/job_logging"]


@pytest.mark.parametrize(
    "relative_path, text",
    [
        ("hydra/launcher/joblib.yaml", "n_jobs: 2\n"),  # shadows a trusted hydra config
        ("config.yaml", "hydra:\n  job:\n    env_set:\n      X: y\n"),
        ("top.yaml", "hydra:\n  callbacks:\n    x: 1\n"),  # the top of a directory: global
        ("experiment/x.yaml", "# @package hydra.callbacks\nx: 1\n"),
        ("experiment/y.yaml", "# @package _global_\ndefaults:\n  - /model/mlp@hydra.x\n"),
        ("experiment/z.yaml", "# @package _global_\ndefaults:\n  - override /hydra/sweeper: x\n"),
        ("data/mine.yaml", "path: ext://os.system\n"),
        ("hydra/job_logging/mine.yaml", "handlers:\n  x:\n    '()': os.system\n"),
        ("experiment.yaml", "model:\n  layers:\n    - _target_: os.system\n"),
    ],
)
def test_a_users_config_directory_names_no_code_and_reaches_hydra_only_through_the_allowlist(
    tmp_path, relative_path, text
):
    path = tmp_path / relative_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    with pytest.raises(ConfigError, match=str(path)):
        refuse_code_in_arguments(["-cd", str(tmp_path)])


def test_a_users_experiment_with_documented_hydra_settings_passes(tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /hydra/sweeper: optuna\n"
        "hydra:\n  sweeper:\n    n_trials: 5\n    params:\n      optim.lr: interval(0.001, 0.1)\n"
    )
    refuse_code_in_arguments(["--config-dir", str(tmp_path), "+experiment=mine"])


# --- resolvers: an interpolation gives a value, never a node ------------------------------------

MAKES_A_NODE = [
    "${oc.create:{_target_: os.system}}",
    "${oc.create:[1, 2]}",
    "${oc.decode:${oc.env:DLBASICS_TEST_YAML}}",
    "${oc.env:DLBASICS_UNSET_VARIABLE,{_target_: os.system}}",
    "${oc.select:no.such.key,{_target_: os.system}}",
    "${oc.select:trainer}",
    "${oc.deprecated:trainer}",
    "${oc.dict.keys:trainer}",
    "${oc.dict.values:trainer}",
    "${oc.create:${oc.env:DLBASICS_TEST_YAML}}",
]


def test_every_omegaconf_resolver_is_covered():
    names = {text.split(":")[0].removeprefix("${") for text in MAKES_A_NODE}
    assert names == set(RESOLVERS)


@pytest.mark.filterwarnings("ignore:.*is deprecated:UserWarning")  # oc.deprecated says so
@pytest.mark.parametrize("interpolation", MAKES_A_NODE)
def test_no_resolver_makes_a_dict_or_a_list(tmp_path, monkeypatch, interpolation):
    monkeypatch.setenv("DLBASICS_TEST_YAML", "{_target_: os.system}")
    message = train_or_refuse([f"model.output_act='{interpolation}'", "logger=none"], tmp_path)
    # Refused: a node is never made (oc.env hands back its default as text, not a dict).
    assert message.startswith("model.output_act"), message
    assert "makes a" in message or "is not allowed" in message, message


def test_resolvers_that_give_values_still_work(tmp_path, monkeypatch):
    monkeypatch.setenv("DLBASICS_TEST_LR", "0.01")
    overrides = ["optim.lr=${oc.env:DLBASICS_TEST_LR}", "trainer.epochs=1", "logger=none"]
    assert train_or_refuse(overrides, tmp_path) == "trained"


def test_a_run_with_hostile_values_touches_no_file_outside_its_directory(tmp_path):
    # One process, every resolver: whatever it refuses, the file system keeps what it had.
    home = tmp_path / "home"
    home.mkdir()
    before = files_under(tmp_path)
    env = {**cli_env(), "HOME": str(home), "DLBASICS_TEST_YAML": "{_target_: os.system}"}
    for interpolation in MAKES_A_NODE[:3]:
        result = run_cli(
            f"hydra.run.dir={tmp_path / 'run'}",
            f"model.output_act='{interpolation}'",
            cwd=tmp_path,
            env=env,
        )
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    after = [name for name in files_under(tmp_path) if not name.startswith("run")]
    assert after == before
    assert os.listdir(home) == []


# --- read as Hydra reads it: the holes a hostile probe found ------------------------------------

CALLBACK = "hydra:\n  callbacks:\n    x:\n      _target_: os.makedirs\n      name: pwned\n"


def experiment_dir(tmp_path, name="mine", text=f"# @package _global_\n{CALLBACK}"):
    """A config directory whose experiment/pwn.yaml holds ``text``."""
    (tmp_path / name / "experiment").mkdir(parents=True)
    (tmp_path / name / "experiment" / "pwn.yaml").write_text(text)
    return tmp_path / name


def test_a_flag_given_by_a_prefix_is_read_as_hydra_reads_it(tmp_path):
    """argparse takes any unambiguous prefix: --config-d is --config-dir, --e
    --experimental-rerun."""
    mine = experiment_dir(tmp_path)
    with pytest.raises(ConfigError, match="pwn.yaml"):
        refuse_code_in_arguments(["--config-d", str(mine), "experiment=pwn"])
    with pytest.raises(ConfigError, match="--experimental-rerun"):
        refuse_code_in_arguments(["--e", str(tmp_path / "config.pickle")])
    result = run_cli("--config-d", str(mine), "experiment=pwn", cwd=tmp_path)
    assert result.returncode == 2 and "pwn.yaml" in result.stderr, result.stderr
    assert not (tmp_path / "pwned").exists()


def test_a_config_name_that_leaves_the_config_directories_is_refused():
    with pytest.raises(ConfigError, match="--config-name"):
        refuse_code_in_arguments(["--config-name", "../../../some/dir/x"])
    refuse_code_in_arguments(["--config-name", "config"])  # the usual one passes


def test_a_linked_subdirectory_is_read_as_hydra_reads_it(tmp_path):
    elsewhere = experiment_dir(tmp_path, "elsewhere")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "experiment").symlink_to(elsewhere / "experiment")
    with pytest.raises(ConfigError, match="pwn.yaml"):
        refuse_code_in_arguments(["--config-dir", str(mine), "experiment=pwn"])


@pytest.mark.parametrize("entry", ['["file://{dir}"]', "[file://{escaped}]"], ids=["quoted", "\\,"])
def test_a_search_path_with_a_comma_is_read_as_hydra_reads_it(tmp_path, entry):
    mine = experiment_dir(tmp_path, "dir,x")
    escaped = str(mine).replace(",", "\\,")
    override = "hydra.searchpath=" + entry.format(dir=mine, escaped=escaped)
    with pytest.raises(ConfigError, match="pwn.yaml"):
        refuse_code_in_arguments([override, "experiment=pwn"])


@pytest.mark.parametrize(
    "header",
    ["  # @package _global_\n", "# @package model\n# @package _global_\n"],
    ids=["leading-spaces", "two-headers"],
)
def test_a_package_header_is_read_as_hydra_reads_it(tmp_path, header):
    mine = experiment_dir(tmp_path, text=header + "hydra:\n  job:\n    env_set:\n      X: '1'\n")
    with pytest.raises(ConfigError, match="hydra.job.env_set"):
        refuse_code_in_arguments(["--config-dir", str(mine), "experiment=pwn"])


def test_the_sweepers_params_are_checked_as_the_overrides_they_become():
    with pytest.raises(ConfigError, match="hydra.job.env_set"):
        refuse_code_in_arguments(["-m", "hydra.sweeper.params.hydra.job.env_set.X=1,2"])
    with pytest.raises(ConfigError, match="_target_"):
        refuse_code_in_arguments(["-m", "+hydra.sweeper.params.model._target_=os.system"])
    refuse_code_in_arguments(["-m", "hydra.sweeper.params.optim.lr=interval(0.001,0.1)"])
