"""dlbasics.train: a run from Python is the command line's run (docs/python.md)."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from doc_commands import fenced_blocks, section
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from sklearn.datasets import load_iris

import dlbasics
from conftest import ROOT, cli_env, read_metrics, run_cli
from dlbasics.api import compose_config, make_run_dir
from dlbasics.callbacks import Callback

FAST = ("trainer.epochs=2", "logger=none")
# What differs between two runs of one config: when and how long they ran.
TIMINGS = {"fit_seconds", "host"}


def table(n: int = 120) -> pd.DataFrame:
    """A table as people have them: numbers with a gap, text categories, true/false, and a
    text target that the color decides."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "size": rng.normal(size=n),
            "color": rng.choice(["red", "green", "blue"], n),
            "ok": rng.choice([True, False], n),
        }
    )
    frame.loc[3, "size"] = np.nan
    frame["label"] = np.where(frame["color"] == "red", "yes", "no")
    return frame


def test_a_run_from_python_is_the_command_line_s_run(tmp_path):
    overrides = ("data=iris", "act=tanh", *FAST)
    result = dlbasics.train(*overrides, run_dir=tmp_path / "python")
    run_cli(*overrides, f"hydra.run.dir={tmp_path / 'cli'}").check_returncode()

    assert isinstance(result.run_dir, Path) and result.run_dir == (tmp_path / "python").resolve()
    assert result.metrics == read_metrics(result.run_dir)
    cli = read_metrics(tmp_path / "cli")
    same = {key: value for key, value in cli.items() if key not in TIMINGS}
    assert {key: result.metrics[key] for key in same} == same  # the same run, number for number
    for name in ("config.yaml", "overrides.yaml"):
        assert (result.run_dir / ".hydra" / name).read_text() == (
            tmp_path / "cli" / ".hydra" / name
        ).read_text(), name
    hydra = OmegaConf.load(result.run_dir / ".hydra" / "hydra.yaml").hydra
    assert hydra.job.name == "train" and hydra.runtime.output_dir == str(result.run_dir)
    log = (result.run_dir / "train.log").read_text()
    assert "epoch 2/2" in log and "test_acc" in log
    assert (result.run_dir / "checkpoints" / "best.pt").exists()
    iris = load_iris()
    assert list(result.model.predict(iris.data[:2])) == list(
        dlbasics.load(tmp_path / "cli").predict(iris.data[:2])
    )


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_arrays_train_as_data_arrays(tmp_path, kind):
    x, y = load_iris(return_X_y=True)
    if kind == "torch":
        x, y = torch.from_numpy(x).float(), torch.from_numpy(y)
    result = dlbasics.train(*FAST, data=(x, y), run_dir=tmp_path)
    assert result.metrics["data"] == "arrays" and result.metrics["task"] == "multiclass"
    assert result.metrics["classes"] == [0, 1, 2] and result.metrics["n_train"] == 90
    saved = json.loads((tmp_path / "preprocessing.json").read_text())
    assert saved["data"] == "arrays" and saved["features"] == ["x1", "x2", "x3", "x4"]
    config = yaml.safe_load((tmp_path / ".hydra" / "config.yaml").read_text())
    assert config["data"]["name"] == "arrays"
    assert set(result.model.predict(x[:5].tolist())) <= {0, 1, 2}


def test_text_labels_and_regression_targets_are_told_apart_as_data_csv_does(tmp_path):
    x, y = load_iris(return_X_y=True)
    names = load_iris().target_names[y]  # "setosa", …
    result = dlbasics.train("trainer.epochs=1", "logger=none", data=(x, names), run_dir=tmp_path)
    assert result.metrics["classes"] == ["setosa", "versicolor", "virginica"]
    assert set(result.model.predict(x[:3])) <= set(result.metrics["classes"])
    values = dlbasics.train(*FAST, data=(x[:, :3], x[:, 3]), run_dir=tmp_path / "regression")
    assert values.metrics["task"] == "regression" and values.model.predict(x[:2, :3]).shape == (2,)


def test_a_dataframe_is_encoded_exactly_as_data_csv_encodes_its_file(tmp_path):
    frame = table()
    frame.to_csv(tmp_path / "table.csv", index=False)
    result = dlbasics.train(*FAST, data=frame, target="label", run_dir=tmp_path / "frame")
    dlbasics.train(
        *FAST, "data=csv", f"data.path={tmp_path / 'table.csv'}", "data.target=label",
        run_dir=tmp_path / "csv",
    )  # fmt: skip
    from_frame = json.loads((tmp_path / "frame" / "preprocessing.json").read_text())
    from_file = json.loads((tmp_path / "csv" / "preprocessing.json").read_text())
    assert (from_frame.pop("data"), from_file.pop("data")) == ("dataframe", "csv")
    assert from_frame == from_file
    assert result.metrics["data"] == "dataframe"
    csv_metrics = read_metrics(tmp_path / "csv")
    assert result.metrics["test_loss"] == csv_metrics["test_loss"]


def test_predict_takes_a_dataframe_and_a_list_of_dicts_of_raw_rows(tmp_path):
    frame = table()
    model = dlbasics.train(*FAST, data=frame, target="label", run_dir=tmp_path).model
    rows = frame.head(6)
    expected = model.predict(rows)  # the target column is skipped, as predict.py skips it
    features = rows.drop(columns="label")
    assert list(model.predict(features)) == list(expected)
    records = features.astype(object).where(features.notna(), None).to_dict("records")
    assert list(model.predict(records)) == list(expected)
    assert model.predict_proba(records).shape == (6, 2)
    with pytest.raises(dlbasics.DataError, match="lacks the feature column"):
        model.predict([{"size": 1.0}])


def test_predict_matches_a_run_s_feature_names_in_a_dataframe(tmp_path):
    iris = load_iris(as_frame=True)
    x = iris.data
    result = dlbasics.train(*FAST, data=(x, iris.target), run_dir=tmp_path)
    saved = json.loads((tmp_path / "preprocessing.json").read_text())
    assert saved["features"] == list(x.columns)
    shuffled = x[list(reversed(x.columns))].head(4)  # matched by name, not by position
    assert list(result.model.predict(shuffled)) == list(result.model.predict(x.head(4).values))


class EpochsSeen(Callback):
    """Notes each epoch's validation loss, and stops the fit after the second epoch."""

    def __init__(self):
        self.val_losses = []

    def on_validation_end(self, loop):
        self.val_losses.append(loop.metrics["val_loss"])
        if loop.epoch == 2:
            loop.wants_stop = "seen_enough"  # why the fit stops: metrics.json's stop_reason


def test_your_callbacks_are_called_in_the_fit(tmp_path):
    seen = EpochsSeen()
    result = dlbasics.train("data=iris", "logger=none", callbacks=[seen], run_dir=tmp_path)
    assert result.metrics["epochs_run"] == 2 and len(seen.val_losses) == 2
    assert result.metrics["stop_reason"] == "seen_enough"
    assert seen.val_losses[-1] == pytest.approx(result.metrics["val_loss"])


@pytest.mark.parametrize(
    "overrides",
    [["optim.lr=abc"], ["model=nope"], ["optim.nope=1"], ["act=tanh", "model=perceptron"]],
)
def test_a_config_mistake_raises_config_error_with_the_command_line_s_line(overrides, tmp_path):
    with pytest.raises(dlbasics.ConfigError) as raised:
        dlbasics.train(*overrides, run_dir=tmp_path / "run")
    cli = run_cli(*overrides, f"hydra.run.dir={tmp_path / 'cli'}")
    assert cli.returncode == 2
    assert cli.stderr.strip() == f"error: {raised.value}"
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_data_and_target_that_do_not_go_together_are_refused(tmp_path):
    x, y = load_iris(return_X_y=True)
    with pytest.raises(dlbasics.ConfigError, match="target='column'"):
        dlbasics.train(data=table())
    with pytest.raises(dlbasics.ConfigError, match="with data=\\(X, y\\) y is the target"):
        dlbasics.train(data=(x, y), target="label")
    with pytest.raises(dlbasics.ConfigError, match="data is chosen twice"):
        dlbasics.train("data=digits", data=(x, y))
    with pytest.raises(dlbasics.DataError, match="X has shape"):
        dlbasics.train(*FAST, data=(x, y[:10]), run_dir=tmp_path)


def test_hydra_s_global_state_is_left_as_it_was(tmp_path):
    x, y = load_iris(return_X_y=True)
    assert not GlobalHydra.instance().is_initialized()
    dlbasics.train("debug=fast", data=(x, y), run_dir=tmp_path / "a")
    assert not GlobalHydra.instance().is_initialized()

    mine = tmp_path / "my_configs"
    mine.mkdir()
    (mine / "app.yaml").write_text("greeting: hello\n")
    with initialize_config_dir(config_dir=str(mine), version_base="1.3"):  # a notebook's own
        dlbasics.train("debug=fast", data=(x, y), run_dir=tmp_path / "b")
        assert compose(config_name="app").greeting == "hello"
    assert not GlobalHydra.instance().is_initialized()


def test_logging_and_torch_settings_are_left_as_they_were(tmp_path):
    logger = logging.getLogger("dlbasics")
    handlers, level = list(logger.handlers), logger.level
    threads = torch.get_num_threads()
    dlbasics.train("debug=fast", "trainer.threads=1", data="iris", run_dir=tmp_path)
    assert (logger.handlers, logger.level) == (handlers, level)
    assert torch.get_num_threads() == threads


def test_default_run_directories_are_new_even_in_the_same_second(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    composed = compose_config([])
    OmegaConf.update(composed, "hydra.run.dir", "outputs/2024-01-01/12-00-00")
    first, second = make_run_dir(None, composed, []), make_run_dir(None, composed, [])
    assert (str(first), str(second)) == (
        "outputs/2024-01-01/12-00-00",
        "outputs/2024-01-01/12-00-00-2",
    )
    runs = [dlbasics.train("debug=fast", data="iris").run_dir for _ in range(2)]
    assert runs[0] != runs[1]
    assert all(run.parent.parent == tmp_path / "outputs" for run in runs)


def test_evaluate_on_an_arrays_run_exits_2_asking_for_data(tmp_path):
    x, y = load_iris(return_X_y=True)
    dlbasics.train(*FAST, data=(x, y), run_dir=tmp_path)
    evaluated = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
    )
    assert evaluated.returncode == 2, evaluated.stderr
    assert "data=arrays" in evaluated.stderr and "data=NAME" in evaluated.stderr
    assert len(evaluated.stderr.strip().splitlines()) == 1


def test_the_python_page_s_examples_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    page = (ROOT / "docs" / "python.md").read_text()
    namespace = {}
    for language, code in fenced_blocks(page):
        if language == "python":
            exec(code, namespace)  # noqa: S102  the page's code, as written, one block after another
    assert len(list(tmp_path.glob("outputs/*/*/metrics.json"))) == 3


def test_a_notebook_trains_and_predicts(tmp_path):
    """A small notebook, run by a Jupyter kernel as a user's would be: the epoch lines show in
    the cell's output, and the progress display knows it is in a notebook (tqdm.auto)."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    cells = [
        "import dlbasics\nfrom dlbasics.progress import in_notebook\nassert in_notebook()",
        "from sklearn.datasets import load_iris\nX, y = load_iris(return_X_y=True)\n"
        "result = dlbasics.train('trainer.epochs=2', 'logger=none', data=(X, y), run_dir='run')",
        "print(result.model.predict(X[:3]), result.metrics['test_acc'])",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    env = {**cli_env(), "PYTHONPATH": str(ROOT)}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        client = nbclient.NotebookClient(
            notebook, timeout=240, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
        )
        client.execute()
    training = "".join(output.get("text", "") for output in notebook.cells[1].outputs)
    assert "epoch 2/2" in training and "test_acc" in training
    assert (tmp_path / "run" / "train.log").exists()


def test_the_readme_s_python_example_runs_in_a_fresh_interpreter(tmp_path):
    """The quick start's Python, as written, in a new process (as a notebook's kernel would
    run it), after a run of the command line's default data has trained in outputs/."""
    quick_start = section((ROOT / "README.md").read_text(), "Quick start")
    (program,) = [text for lang, text in fenced_blocks(quick_start) if lang == "python"]
    assert "dlbasics.train(" in program
    lazy = "import sys, dlbasics\nassert not {'torch', 'pandas'} & set(sys.modules)\n"
    a_digits_run = "dlbasics.train('trainer.epochs=1', 'logger=none')\n"
    env = {**cli_env(), "PYTHONPATH": str(ROOT)}
    ran = subprocess.run(
        [sys.executable, "-c", lazy + a_digits_run + program],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "test_acc" in ran.stdout and (tmp_path / "runs" / "tanh" / "metrics.json").exists()
    assert os.listdir(tmp_path / "outputs")
