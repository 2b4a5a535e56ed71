"""Configs choose components by name: nothing from the command line or from a user's own
config directory can make dlbasics (or Hydra) import and call code."""

import pytest

from conftest import run_cli
from dlbasics.config_guard import refuse_code_in_arguments
from dlbasics.errors import ConfigError

OS_SYSTEM = "_target_: os.system\ncommand: touch {marker}\n"


def test_target_on_the_command_line_is_refused_before_anything_runs(tmp_path):
    marker = tmp_path / "ran"
    result = run_cli(
        f"hydra.run.dir={tmp_path / 'run'}",
        "+hydra.callbacks.evil._target_=os.system",  # Hydra instantiates callbacks first
        f"+hydra.callbacks.evil.command=touch {marker}",
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: hydra.callbacks.evil._target_")
    assert "chosen by name" in result.stderr
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_target_in_a_users_config_dir_is_refused_naming_the_file(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "mine" / "optim").mkdir(parents=True)
    (tmp_path / "mine" / "optim" / "fast.yaml").write_text(OS_SYSTEM.format(marker=marker))
    result = run_cli(
        "--config-dir", str(tmp_path / "mine"), f"hydra.run.dir={tmp_path / 'run'}", "optim=fast"
    )
    assert result.returncode == 2, result.stderr
    assert "_target_ in " in result.stderr and "fast.yaml" in result.stderr
    assert not marker.exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["+optim={_target_: os.system}"],  # hidden in a dict value
        ["hydra.job_logging.handlers.console.class=os.system"],
        ["++hydra.job_logging.handlers.x={class: os.system}"],
        ["--experimental-rerun", "outputs/run/.hydra/config.pickle"],  # a pickle
    ],
)
def test_other_ways_to_name_code_on_the_command_line_are_refused(argv):
    with pytest.raises(ConfigError, match="rerun|does not import"):
        refuse_code_in_arguments(argv)


def test_a_search_path_added_by_a_users_config_is_checked_too(tmp_path):
    (tmp_path / "first").mkdir()
    (tmp_path / "second" / "optim").mkdir(parents=True)
    (tmp_path / "first" / "config.yaml").write_text(
        f"hydra:\n  searchpath:\n    - file://{tmp_path / 'second'}\n"
    )
    (tmp_path / "second" / "optim" / "fast.yaml").write_text(OS_SYSTEM.format(marker="x"))
    with pytest.raises(ConfigError, match="fast.yaml"):
        refuse_code_in_arguments([f"hydra.searchpath=[file://{tmp_path / 'first'}]"])


def test_plain_overrides_and_clean_config_dirs_pass(tmp_path):
    (tmp_path / "optim").mkdir()
    (tmp_path / "optim" / "fast.yaml").write_text("name: sgd\nlr: 0.5\n")
    refuse_code_in_arguments(["--config-dir", str(tmp_path), "optim=fast", "optim.lr=0.1", "-m"])
